"""The sans-I/O session: what it sends is GA-valid, and what it remembers follows the server."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from device.errors import LocalProtocolError, RemoteProtocolError
from device.realtime.events import (
    AudioDelta,
    ResponseDone,
    ServerError,
    SessionCreated,
    SpeechStarted,
    TranscriptDelta,
    TranscriptDone,
)
from device.realtime.session import (
    MAX_APPEND_BYTES,
    RealtimeSession,
    SessionCounters,
    SessionSettings,
)
from tests.contract.oracle import client_problems

SERVER_VAD = {
    "type": "server_vad",
    "threshold": 0.6,
    "silence_duration_ms": 500,
    "interrupt_response": True,
    "create_response": True,
}
SEMANTIC_VAD = {"type": "semantic_vad", "eagerness": "low"}


def pcm_ms(ms: int) -> bytes:
    """That many milliseconds of PCM16 mono 24 kHz (48 bytes per ms)."""
    return b"\x01\x00" * 24 * ms


def sent_events(session: RealtimeSession) -> list[dict[str, Any]]:
    events = session.data_to_send()
    for event in events:
        assert client_problems(event) == [], event
        json.dumps(event)  # must go on the wire as it is
    return events


def server(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "event_id": f"event_{kind}", **fields})


def response_created(response_id: str) -> str:
    return server(
        "response.created",
        response={
            "id": response_id,
            "status": "in_progress",
            "object": "realtime.response",
            "output": [],
        },
    )


def response_done(response_id: str, status: str = "completed") -> str:
    return server(
        "response.done",
        response={"id": response_id, "status": status, "object": "realtime.response", "output": []},
    )


def audio_delta(response_id: str, item_id: str, pcm: bytes, content_index: int = 0) -> str:
    return server(
        "response.output_audio.delta",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=content_index,
        delta=base64.b64encode(pcm).decode(),
    )


def transcript_delta(response_id: str, item_id: str, text: str) -> str:
    return server(
        "response.output_audio_transcript.delta",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
        delta=text,
    )


def audio_done(response_id: str, item_id: str) -> str:
    return server(
        "response.output_audio.done",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
    )


def error(client_event_id: str | None, code: str = "unknown_parameter") -> str:
    return server(
        "error",
        error={
            "type": "invalid_request_error",
            "code": code,
            "message": "Unknown parameter: 'session.temperature'.",
            "param": "session.temperature",
            "event_id": client_event_id,
        },
    )


SESSION_UPDATED = server("session.updated", session={"type": "realtime"})


def speaking(
    session: RealtimeSession, response_id: str = "resp_1", item_id: str = "item_a", ms: int = 100
) -> None:
    """Script the server side of a reply that has streamed ``ms`` of audio so far."""
    session.receive(response_created(response_id))
    session.receive(
        server(
            "response.output_item.added",
            response_id=response_id,
            output_index=0,
            item={"id": item_id, "type": "message", "role": "assistant", "content": []},
        )
    )
    for _ in range(ms // 20):
        session.receive(audio_delta(response_id, item_id, pcm_ms(20)))


# ------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_rate_hz": 16000},
        {"output_modalities": ("audio", "text")},
        {"output_modalities": ()},
        {"turn_detection": {"type": "client_vad"}},
        {"turn_detection": {}},
        {"voice": ""},
        {"tool_choice": "sometimes"},
        {"tools": ({"type": "function"},)},
        {"tools": ({"type": "function", "name": ""},)},
        {"tools": ({"type": "mcp", "name": "x"},)},
        {"tools": ({"name": "x"},)},
    ],
)
def test_settings_the_service_would_refuse_fail_at_once(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        SessionSettings(**kwargs)


@pytest.mark.parametrize("prefix", ["", "p" * 13])
def test_id_prefix_must_leave_room_for_the_counter(prefix: str) -> None:
    with pytest.raises(LocalProtocolError):
        RealtimeSession(SessionSettings(), id_prefix=prefix)


# ------------------------------------------------------------------- outgoing


@pytest.mark.parametrize(
    "turn_detection",
    [SERVER_VAD, SEMANTIC_VAD, None],
    ids=["server_vad", "semantic_vad", "push_to_talk"],
)
def test_configure_sends_a_ga_session_update(turn_detection: dict[str, Any] | None) -> None:
    settings = SessionSettings(
        voice="cedar", instructions="Answer in one sentence.", turn_detection=turn_detection
    )
    session = RealtimeSession(settings)
    event_id = session.configure()
    [event] = sent_events(session)
    assert event["type"] == "session.update" and event["event_id"] == event_id
    body = event["session"]
    assert body["type"] == "realtime"
    assert "model" not in body
    assert body["output_modalities"] == ["audio"]
    assert body["instructions"] == "Answer in one sentence."
    assert body["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert body["audio"]["input"]["turn_detection"] == turn_detection
    assert "turn_detection" in body["audio"]["input"]  # None must be sent: it turns VAD off
    assert body["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "cedar",
    }


def test_configure_leaves_out_empty_instructions_to_keep_the_service_default() -> None:
    session = RealtimeSession(SessionSettings(output_modalities=("text",)))
    session.configure()
    [event] = sent_events(session)
    assert "instructions" not in event["session"]
    assert event["session"]["output_modalities"] == ["text"]


VOLUME_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "volume",
    "description": "Read or change the playback volume.",
    "parameters": {
        "type": "object",
        "properties": {"percent": {"type": "integer", "minimum": 0, "maximum": 100}},
        "additionalProperties": False,
    },
}


@pytest.mark.parametrize("tool_choice", ["auto", "none", "required"])
def test_configure_offers_the_tools_and_the_tool_choice(tool_choice: str) -> None:
    mcp = {"type": "mcp", "server_label": "home", "server_url": "https://mcp.example/sse",
           "require_approval": "never"}  # fmt: skip
    settings = SessionSettings(tools=(VOLUME_TOOL, mcp), tool_choice=tool_choice)
    session = RealtimeSession(settings)
    session.configure()
    [event] = sent_events(session)
    assert event["session"]["tools"] == [VOLUME_TOOL, mcp]
    assert event["session"]["tool_choice"] == tool_choice
    event["session"]["tools"][0]["parameters"]["properties"].clear()
    assert VOLUME_TOOL["parameters"]["properties"], "the update holds a copy"


def test_configure_without_tools_leaves_the_service_tools_alone() -> None:
    session = RealtimeSession(SessionSettings(tool_choice="required"))
    session.configure()
    [event] = sent_events(session)
    assert "tools" not in event["session"] and "tool_choice" not in event["session"]


def test_every_client_event_is_ga_valid_with_unique_short_ids() -> None:
    session = RealtimeSession(SessionSettings(turn_detection=None), id_prefix="speaker42")
    speaking(session)
    ids = [
        session.configure(),
        session.append_audio(pcm_ms(20)),
        session.commit(),
        session.clear_input(),
        session.create_response(),
        session.create_response(
            {
                "output_modalities": ["text"],
                "instructions": "Be brief.",
                "conversation": "none",
                "metadata": {"purpose": "greeting"},
            }
        ),
        session.create_item(
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What time is it?"}],
            }
        ),
        session.create_item(
            {"type": "function_call_output", "call_id": "call_1", "output": '{"ok": true}'},
            previous_item_id="item_a",
        ),
        session.truncate("item_a", 50.0),
        session.cancel_response(),
        session.delete_item("item_a"),
    ]
    events = sent_events(session)
    assert [e["event_id"] for e in events] == ids
    assert [e["type"] for e in events] == [
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "response.create",
        "response.create",
        "conversation.item.create",
        "conversation.item.create",
        "conversation.item.truncate",
        "response.cancel",
        "conversation.item.delete",
    ]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(i, str) and len(i) <= 32 for i in ids)
    assert session.data_to_send() == []  # drained
    assert session.counters.events_sent == len(ids)


def test_event_ids_stay_within_32_characters_over_a_long_session() -> None:
    session = RealtimeSession(SessionSettings(), id_prefix="p" * 12)
    session._next_id = 10**19 - 1  # as if the session had sent that many events
    assert len(session.commit()) <= 32


def test_append_audio_encodes_pcm_and_counts_bytes() -> None:
    session = RealtimeSession(SessionSettings())
    session.append_audio(pcm_ms(20))
    session.append_audio(pcm_ms(10))
    events = sent_events(session)
    assert base64.b64decode(events[0]["audio"]) == pcm_ms(20)
    assert session.counters.audio_bytes_sent == 30 * 48


@pytest.mark.parametrize(
    "pcm", [b"", b"\x00" * 3, b"\x00" * (MAX_APPEND_BYTES + 2)], ids=["empty", "odd", "over_15_MiB"]
)
def test_append_audio_refuses_what_the_service_would(pcm: bytes) -> None:
    session = RealtimeSession(SessionSettings())
    with pytest.raises(LocalProtocolError):
        session.append_audio(pcm)
    assert session.data_to_send() == []
    assert session.counters.audio_bytes_sent == 0


def test_create_item_with_a_user_text_message() -> None:
    session = RealtimeSession(SessionSettings())
    item = {
        "type": "message",
        "role": "user",
        "id": "note_1",
        "content": [{"type": "input_text", "text": "Earlier you said it would rain."}],
    }
    session.create_item(item, previous_item_id="root")
    [event] = sent_events(session)
    assert event["item"] == item and event["previous_item_id"] == "root"


def test_create_item_refuses_an_id_over_32_characters() -> None:
    session = RealtimeSession(SessionSettings())
    with pytest.raises(LocalProtocolError):
        session.create_item(
            {
                "type": "message",
                "role": "user",
                "id": "x" * 33,
                "content": [{"type": "input_text", "text": "hi"}],
            }
        )
    assert session.data_to_send() == []


# ------------------------------------------------------------------- incoming


def test_scripted_turn_tracks_session_response_and_audio() -> None:
    session = RealtimeSession(SessionSettings())
    [created] = session.receive(
        server(
            "session.created",
            session={
                "type": "realtime",
                "id": "sess_1",
                "object": "realtime.session",
                "expires_at": 1_900_000_000,
            },
        )
    )
    assert isinstance(created, SessionCreated)
    assert session.session_id == "sess_1" and session.expires_at == 1_900_000_000
    assert not session.configured

    session.configure()
    assert not session.configured  # asked, not yet answered
    session.receive(SESSION_UPDATED)
    assert session.configured

    session.receive(
        server("input_audio_buffer.speech_started", item_id="item_u", audio_start_ms=120)
    )
    assert session.active_response_id is None
    speaking(session, "resp_1", "item_a", ms=0)
    assert session.active_response_id == "resp_1"
    returned = [session.receive(audio_delta("resp_1", "item_a", pcm_ms(n))) for n in (20, 40)]
    assert [type(e) for [e] in returned] == [AudioDelta, AudioDelta]
    assert session.audio_received_ms("item_a") == 60.0
    assert session.audio_received_ms("item_unknown") == 0.0
    session.receive(audio_delta("resp_1", "item_a", b"\x00\x00" * 12))  # half a millisecond
    assert session.audio_received_ms("item_a") == 60.5
    [done] = session.receive(response_done("resp_1"))
    assert isinstance(done, ResponseDone)
    assert session.active_response_id is None
    assert session.counters.events_received == 9


def test_unknown_events_are_counted_and_not_returned() -> None:
    session = RealtimeSession(SessionSettings())
    assert session.receive(server("mcp_list_tools.in_progress", item_id="item_m")) == []
    assert session.receive(server("output_audio_buffer.started", response_id="r")) == []
    counters = session.counters
    assert counters.unknown_events == 2 and counters.events_received == 2


def test_bad_frame_raises_remote_protocol_error_and_changes_nothing() -> None:
    session = RealtimeSession(SessionSettings())
    speaking(session, ms=40)
    before = session.counters
    for frame in (b"\x00", "nope", server("response.output_audio.delta", delta=1)):
        with pytest.raises(RemoteProtocolError):
            session.receive(frame)
    assert session.counters == before
    assert session.audio_received_ms("item_a") == 40.0


def test_cancel_without_active_response_sends_nothing() -> None:
    session = RealtimeSession(SessionSettings())
    assert session.cancel_response() is None
    speaking(session)
    session.receive(response_done("resp_1"))
    assert session.cancel_response() is None
    assert session.data_to_send() == []


def test_cancel_drops_late_deltas_of_that_response_only() -> None:
    session = RealtimeSession(SessionSettings())
    speaking(session, "resp_1", "item_a", ms=100)
    event_id = session.cancel_response()
    assert event_id is not None
    [cancel] = sent_events(session)
    assert cancel == {"type": "response.cancel", "event_id": event_id, "response_id": "resp_1"}
    assert session.cancel_response() is None  # once is enough
    assert session.data_to_send() == []

    assert session.receive(audio_delta("resp_1", "item_a", pcm_ms(20))) == []
    assert session.receive(transcript_delta("resp_1", "item_a", "and then")) == []
    assert session.receive(audio_done("resp_1", "item_a")) == []
    assert session.counters.late_deltas_dropped == 3
    assert session.audio_received_ms("item_a") == 100.0  # dropped audio is not counted
    # The end of the transcript is not a delta: the app may still log it.
    final = server(
        "response.output_audio_transcript.done",
        response_id="resp_1",
        item_id="item_a",
        output_index=0,
        content_index=0,
        transcript="Hi",
    )
    assert [type(e) for e in session.receive(final)] == [TranscriptDone]
    assert session.active_response_id == "resp_1"  # until the service says it is done
    [done] = session.receive(response_done("resp_1", "cancelled"))
    assert isinstance(done, ResponseDone) and done.status == "cancelled"
    assert session.active_response_id is None

    speaking(session, "resp_2", "item_b", ms=0)
    [delta] = session.receive(audio_delta("resp_2", "item_b", pcm_ms(20)))
    assert isinstance(delta, AudioDelta)
    [text] = session.receive(transcript_delta("resp_2", "item_b", "Sure"))
    assert isinstance(text, TranscriptDelta)
    assert session.counters.late_deltas_dropped == 3


def test_truncate_is_clamped_to_received_audio() -> None:
    session = RealtimeSession(SessionSettings())
    speaking(session, "resp_1", "item_a", ms=100)
    session.receive(response_done("resp_1"))  # generation finished, playback has not
    event_id = session.truncate("item_a", 250.7)
    [event] = sent_events(session)
    assert event == {
        "type": "conversation.item.truncate",
        "event_id": event_id,
        "item_id": "item_a",
        "content_index": 0,
        "audio_end_ms": 100,
    }


def test_truncate_floors_played_ms() -> None:
    session = RealtimeSession(SessionSettings())
    speaking(session, ms=100)
    session.truncate("item_a", 42.9)
    [event] = sent_events(session)
    assert event["audio_end_ms"] == 42


def test_truncate_uses_the_content_index_of_the_audio() -> None:
    session = RealtimeSession(SessionSettings())
    session.receive(audio_delta("resp_1", "item_a", pcm_ms(20), content_index=1))
    session.truncate("item_a", 10)
    [event] = sent_events(session)
    assert event["content_index"] == 1


@pytest.mark.parametrize(
    ("item_id", "played_ms"), [("item_unknown", 50.0), ("item_a", 0.0), ("item_a", 0.9)]
)
def test_truncate_sends_nothing_when_nothing_was_heard(item_id: str, played_ms: float) -> None:
    session = RealtimeSession(SessionSettings())
    speaking(session, ms=100)
    assert session.truncate(item_id, played_ms) is None
    assert session.data_to_send() == []


def test_truncate_of_an_item_with_no_audio_yet_sends_nothing() -> None:
    session = RealtimeSession(SessionSettings())
    speaking(session, ms=0)  # output item announced, no audio arrived
    assert session.truncate("item_a", 300.0) is None


@pytest.mark.parametrize("played_ms", [-1.0, -0.001, float("nan")])
def test_truncate_refuses_a_negative_or_undefined_time(played_ms: float) -> None:
    session = RealtimeSession(SessionSettings())
    speaking(session, ms=100)
    with pytest.raises(LocalProtocolError):
        session.truncate("item_a", played_ms)
    assert session.data_to_send() == []


def test_truncated_item_drops_its_late_deltas() -> None:
    # Server VAD cancels the response itself; the device only truncates what it played.
    session = RealtimeSession(SessionSettings())
    speaking(session, "resp_1", "item_a", ms=100)
    [started] = session.receive(
        server("input_audio_buffer.speech_started", item_id="item_u", audio_start_ms=900)
    )
    assert isinstance(started, SpeechStarted)
    assert session.truncate("item_a", 60.0) is not None
    assert session.receive(audio_delta("resp_1", "item_a", pcm_ms(20))) == []
    assert session.counters.late_deltas_dropped == 1
    assert session.audio_received_ms("item_a") == 100.0


def test_rejected_configure_is_reported_not_silent() -> None:
    session = RealtimeSession(SessionSettings())
    first = session.configure()
    [err] = session.receive(error(first))
    assert isinstance(err, ServerError) and err.client_event_id == first
    assert not session.configured
    assert session.last_error == err
    assert session.counters.errors == 1
    session.receive(SESSION_UPDATED)  # unrelated: no update of ours is waiting
    assert not session.configured

    second = session.configure()
    session.receive(SESSION_UPDATED)
    assert session.configured
    session.receive(error(second))  # late, e.g. duplicate: it no longer waits for an answer
    assert session.configured


def test_error_for_another_event_leaves_configuration_alone() -> None:
    session = RealtimeSession(SessionSettings())
    session.configure()
    session.receive(SESSION_UPDATED)
    cancel_id = "ev_999"
    [err] = session.receive(error(cancel_id, code="response_cancel_not_active"))
    assert session.configured
    assert session.last_error == err and err.code == "response_cancel_not_active"


def test_two_configures_are_configured_after_both_answers() -> None:
    session = RealtimeSession(SessionSettings())
    first = session.configure()
    session.configure()
    session.receive(error(first))
    assert not session.configured
    session.receive(SESSION_UPDATED)
    assert session.configured


def test_forget_item_and_server_delete_release_item_memory() -> None:
    session = RealtimeSession(SessionSettings())
    speaking(session, "resp_1", "item_a", ms=100)
    speaking(session, "resp_2", "item_b", ms=100)
    session.forget_item("item_a")
    assert session.audio_received_ms("item_a") == 0.0
    assert session.truncate("item_a", 50.0) is None
    session.receive(server("conversation.item.deleted", item_id="item_b"))
    assert session.audio_received_ms("item_b") == 0.0


def test_item_memory_stays_bounded_without_forget() -> None:
    session = RealtimeSession(SessionSettings())
    for n in range(500):
        session.receive(audio_delta(f"resp_{n}", f"item_{n}", pcm_ms(20)))
    assert session.audio_received_ms("item_0") == 0.0
    assert session.audio_received_ms("item_499") == 20.0
    assert len(session._items) <= 64


def test_counters_are_a_snapshot() -> None:
    session = RealtimeSession(SessionSettings())
    snapshot = session.counters
    snapshot.events_sent = 99
    assert session.counters == SessionCounters()
