"""Parsing of every GA server event, leniency where the protocol asks for it, and bad frames."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from device.errors import RemoteProtocolError
from device.realtime.events import (
    AudioDelta,
    AudioDone,
    BufferCleared,
    BufferCommitted,
    BufferTimeout,
    ContentPartAdded,
    ContentPartDone,
    FunctionCallArgumentsDone,
    InputTranscriptionCompleted,
    InputTranscriptionDelta,
    InputTranscriptionFailed,
    ItemAdded,
    ItemDeleted,
    ItemDone,
    ItemTruncated,
    McpCallDone,
    McpListToolsDone,
    OutputItemAdded,
    OutputItemDone,
    RateLimitsUpdated,
    ResponseCreated,
    ResponseDone,
    ServerError,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    TranscriptDelta,
    TranscriptDone,
    Unknown,
    Usage,
)
from device.realtime.parse import parse_server_event
from tests.contract.oracle import server_problems

PCM = bytes(range(256)) * 4  # 1024 bytes, every byte value: 10.67 ms at 24 kHz
PCM_B64 = base64.b64encode(PCM).decode()

SESSION: dict[str, Any] = {
    "type": "realtime",
    "object": "realtime.session",
    "id": "sess_C9G5QPteg4UIbotdKLoYQ",
    "model": "gpt-realtime-1.5",
    "output_modalities": ["audio"],
    "instructions": "Your knowledge cutoff is 2023-10. You are a helpful, witty, and friendly AI.",
    "tools": [],
    "tool_choice": "auto",
    "max_output_tokens": "inf",
    "tracing": None,
    "truncation": "auto",
    "prompt": None,
    "expires_at": 1_756_324_625,
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": None,
            "noise_reduction": None,
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 200,
                "idle_timeout_ms": None,
                "create_response": True,
                "interrupt_response": True,
            },
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0},
    },
    "include": None,
}
USER_ITEM: dict[str, Any] = {
    "id": "item_C9G8Pjb8qYEvVfBlRLvJr",
    "type": "message",
    "object": "realtime.item",
    "status": "completed",
    "role": "user",
    "content": [{"type": "input_audio", "transcript": None}],
}
ASSISTANT_ITEM_STARTED: dict[str, Any] = {
    "id": "item_C9G8Q8oj4mD6WfMbMs8ii",
    "type": "message",
    "object": "realtime.item",
    "status": "in_progress",
    "role": "assistant",
    "content": [],
}
ASSISTANT_ITEM: dict[str, Any] = {
    **ASSISTANT_ITEM_STARTED,
    "status": "completed",
    "content": [{"type": "output_audio", "transcript": "Hi there! How can I help?"}],
}
RESP = "resp_C9G8QEqaOb4Tvzkn1ebBn"
ITEM = ASSISTANT_ITEM["id"]
USAGE: dict[str, Any] = {
    "total_tokens": 253,
    "input_tokens": 132,
    "output_tokens": 121,
    "input_token_details": {
        "text_tokens": 119,
        "audio_tokens": 13,
        "image_tokens": 0,
        "cached_tokens": 64,
        "cached_tokens_details": {"text_tokens": 60, "audio_tokens": 4, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
}

# One realistic frame per GA server event type the daemon acts on, keyed by type.
GA_FIXTURES: dict[str, dict[str, Any]] = {
    "session.created": {"type": "session.created", "event_id": "event_1", "session": SESSION},
    "session.updated": {"type": "session.updated", "event_id": "event_2", "session": SESSION},
    "input_audio_buffer.speech_started": {
        "type": "input_audio_buffer.speech_started",
        "event_id": "event_3",
        "audio_start_ms": 1000,
        "item_id": USER_ITEM["id"],
    },
    "input_audio_buffer.speech_stopped": {
        "type": "input_audio_buffer.speech_stopped",
        "event_id": "event_4",
        "audio_end_ms": 2480,
        "item_id": USER_ITEM["id"],
    },
    "input_audio_buffer.committed": {
        "type": "input_audio_buffer.committed",
        "event_id": "event_5",
        "previous_item_id": "item_prev",
        "item_id": USER_ITEM["id"],
    },
    "input_audio_buffer.cleared": {"type": "input_audio_buffer.cleared", "event_id": "event_6"},
    "input_audio_buffer.timeout_triggered": {
        "type": "input_audio_buffer.timeout_triggered",
        "event_id": "event_7",
        "audio_start_ms": 13216,
        "audio_end_ms": 19232,
        "item_id": "item_timeout",
    },
    "conversation.item.added": {
        "type": "conversation.item.added",
        "event_id": "event_8",
        "previous_item_id": None,
        "item": USER_ITEM,
    },
    "conversation.item.done": {
        "type": "conversation.item.done",
        "event_id": "event_9",
        "previous_item_id": "item_prev",
        "item": ASSISTANT_ITEM,
    },
    "conversation.item.truncated": {
        "type": "conversation.item.truncated",
        "event_id": "event_10",
        "item_id": ITEM,
        "content_index": 0,
        "audio_end_ms": 1500,
    },
    "conversation.item.deleted": {
        "type": "conversation.item.deleted",
        "event_id": "event_11",
        "item_id": ITEM,
    },
    "conversation.item.input_audio_transcription.delta": {
        "type": "conversation.item.input_audio_transcription.delta",
        "event_id": "event_12",
        "item_id": USER_ITEM["id"],
        "content_index": 0,
        "delta": "Hello,",
    },
    "conversation.item.input_audio_transcription.completed": {
        "type": "conversation.item.input_audio_transcription.completed",
        "event_id": "event_13",
        "item_id": USER_ITEM["id"],
        "content_index": 0,
        "transcript": "Hello, how are you?",
        "usage": {"type": "duration", "seconds": 2.4},
    },
    "conversation.item.input_audio_transcription.failed": {
        "type": "conversation.item.input_audio_transcription.failed",
        "event_id": "event_14",
        "item_id": USER_ITEM["id"],
        "content_index": 0,
        "error": {
            "type": "transcription_error",
            "code": "audio_unintelligible",
            "message": "The audio could not be transcribed.",
            "param": None,
        },
    },
    "response.created": {
        "type": "response.created",
        "event_id": "event_15",
        "response": {
            "object": "realtime.response",
            "id": RESP,
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": "conv_C9G8Pjb",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
            "usage": None,
            "metadata": None,
        },
    },
    "response.output_item.added": {
        "type": "response.output_item.added",
        "event_id": "event_16",
        "response_id": RESP,
        "output_index": 0,
        "item": ASSISTANT_ITEM_STARTED,
    },
    "response.output_item.done": {
        "type": "response.output_item.done",
        "event_id": "event_17",
        "response_id": RESP,
        "output_index": 0,
        "item": ASSISTANT_ITEM,
    },
    "response.content_part.added": {
        "type": "response.content_part.added",
        "event_id": "event_18",
        "response_id": RESP,
        "item_id": ITEM,
        "output_index": 0,
        "content_index": 0,
        "part": {"type": "audio", "transcript": ""},
    },
    "response.content_part.done": {
        "type": "response.content_part.done",
        "event_id": "event_19",
        "response_id": RESP,
        "item_id": ITEM,
        "output_index": 0,
        "content_index": 0,
        "part": {"type": "audio", "transcript": "Hi there! How can I help?"},
    },
    "response.output_audio.delta": {
        "type": "response.output_audio.delta",
        "event_id": "event_20",
        "response_id": RESP,
        "item_id": ITEM,
        "output_index": 0,
        "content_index": 0,
        "delta": PCM_B64,
    },
    "response.output_audio.done": {
        "type": "response.output_audio.done",
        "event_id": "event_21",
        "response_id": RESP,
        "item_id": ITEM,
        "output_index": 0,
        "content_index": 0,
    },
    "response.output_audio_transcript.delta": {
        "type": "response.output_audio_transcript.delta",
        "event_id": "event_22",
        "response_id": RESP,
        "item_id": ITEM,
        "output_index": 0,
        "content_index": 0,
        "delta": "Hi there!",
    },
    "response.output_audio_transcript.done": {
        "type": "response.output_audio_transcript.done",
        "event_id": "event_23",
        "response_id": RESP,
        "item_id": ITEM,
        "output_index": 0,
        "content_index": 0,
        "transcript": "Hi there! How can I help?",
    },
    "response.output_text.delta": {
        "type": "response.output_text.delta",
        "event_id": "event_24",
        "response_id": RESP,
        "item_id": ITEM,
        "output_index": 0,
        "content_index": 0,
        "delta": "Hi",
    },
    "response.output_text.done": {
        "type": "response.output_text.done",
        "event_id": "event_25",
        "response_id": RESP,
        "item_id": ITEM,
        "output_index": 0,
        "content_index": 0,
        "text": "Hi there!",
    },
    "response.function_call_arguments.done": {
        "type": "response.function_call_arguments.done",
        "event_id": "event_26",
        "response_id": RESP,
        "item_id": "item_fc",
        "output_index": 1,
        "call_id": "call_ABC",
        "name": "set_volume",
        "arguments": '{"level": 40}',
    },
    "response.done": {
        "type": "response.done",
        "event_id": "event_27",
        "response": {
            "object": "realtime.response",
            "id": RESP,
            "status": "completed",
            "status_details": None,
            "output": [ASSISTANT_ITEM],
            "conversation_id": "conv_C9G8Pjb",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "usage": USAGE,
            "metadata": None,
        },
    },
    "mcp_list_tools.completed": {
        "type": "mcp_list_tools.completed",
        "event_id": "event_31",
        "item_id": "mcpl_1",
    },
    "mcp_list_tools.failed": {
        "type": "mcp_list_tools.failed",
        "event_id": "event_32",
        "item_id": "mcpl_2",
    },
    "response.mcp_call.completed": {
        "type": "response.mcp_call.completed",
        "event_id": "event_33",
        "item_id": "mcp_1",
        "output_index": 0,
    },
    "response.mcp_call.failed": {
        "type": "response.mcp_call.failed",
        "event_id": "event_34",
        "item_id": "mcp_2",
        "output_index": 1,
    },
    "rate_limits.updated": {
        "type": "rate_limits.updated",
        "event_id": "event_28",
        "rate_limits": [
            {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
            {"name": "tokens", "limit": 50000, "remaining": 49421, "reset_seconds": 0.694},
        ],
    },
    "error": {
        "type": "error",
        "event_id": "event_29",
        "error": {
            "type": "invalid_request_error",
            "code": "unknown_parameter",
            "message": "Unknown parameter: 'session.temperature'.",
            "param": "session.temperature",
            "event_id": "ev_1",
        },
    },
}

# GA events the daemon does not act on: they must come out as Unknown.
GA_UNMODELLED: list[dict[str, Any]] = [
    {"type": "conversation.item.retrieved", "event_id": "event_40", "item": USER_ITEM},
    {
        "type": "response.function_call_arguments.delta",
        "event_id": "event_41",
        "response_id": RESP,
        "item_id": "item_fc",
        "output_index": 1,
        "call_id": "call_ABC",
        "delta": '{"lev',
    },
    {"type": "mcp_list_tools.in_progress", "event_id": "event_42", "item_id": "item_mcp"},
    {"type": "output_audio_buffer.started", "event_id": "event_43", "response_id": RESP},
    {
        "type": "conversation.item.input_audio_transcription.segment",
        "event_id": "event_44",
        "item_id": "item_u",
        "content_index": 0,
        "id": "seg_1",
        "start": 0.0,
        "end": 1.2,
        "speaker": "A",
        "text": "Hello",
    },
    {"type": "input_audio_buffer.dtmf_event_received", "event": "5", "received_at": 1_756_324_625},
]

LEGACY_ITEM_CREATED: dict[str, Any] = {
    "type": "conversation.item.created",
    "event_id": "event_30",
    "previous_item_id": "item_prev",
    "item": USER_ITEM,
}

USAGE_PARSED = Usage(
    total_tokens=253,
    input_tokens=132,
    output_tokens=121,
    input_text_tokens=119,
    input_audio_tokens=13,
    input_image_tokens=0,
    cached_tokens=64,
    cached_text_tokens=60,
    cached_audio_tokens=4,
    cached_image_tokens=0,
    output_text_tokens=30,
    output_audio_tokens=91,
)
FX = GA_FIXTURES
EXPECTED: dict[str, ServerEvent] = {
    "session.created": SessionCreated(SESSION, SESSION["id"], 1_756_324_625, event_id="event_1"),
    "session.updated": SessionUpdated(SESSION, event_id="event_2"),
    "input_audio_buffer.speech_started": SpeechStarted(USER_ITEM["id"], 1000, event_id="event_3"),
    "input_audio_buffer.speech_stopped": SpeechStopped(USER_ITEM["id"], 2480, event_id="event_4"),
    "input_audio_buffer.committed": BufferCommitted(
        USER_ITEM["id"], "item_prev", event_id="event_5"
    ),
    "input_audio_buffer.cleared": BufferCleared(event_id="event_6"),
    "input_audio_buffer.timeout_triggered": BufferTimeout(
        "item_timeout", 13216, 19232, event_id="event_7"
    ),
    "conversation.item.added": ItemAdded(USER_ITEM, None, event_id="event_8"),
    "conversation.item.done": ItemDone(ASSISTANT_ITEM, "item_prev", event_id="event_9"),
    "conversation.item.truncated": ItemTruncated(ITEM, 0, 1500, event_id="event_10"),
    "conversation.item.deleted": ItemDeleted(ITEM, event_id="event_11"),
    "conversation.item.input_audio_transcription.delta": InputTranscriptionDelta(
        USER_ITEM["id"], "Hello,", event_id="event_12"
    ),
    "conversation.item.input_audio_transcription.completed": InputTranscriptionCompleted(
        USER_ITEM["id"], "Hello, how are you?", event_id="event_13"
    ),
    "conversation.item.input_audio_transcription.failed": InputTranscriptionFailed(
        USER_ITEM["id"],
        FX["conversation.item.input_audio_transcription.failed"]["error"],
        event_id="event_14",
    ),
    "response.created": ResponseCreated(RESP, event_id="event_15"),
    "response.output_item.added": OutputItemAdded(
        RESP, 0, ASSISTANT_ITEM_STARTED, event_id="event_16"
    ),
    "response.output_item.done": OutputItemDone(RESP, 0, ASSISTANT_ITEM, event_id="event_17"),
    "response.content_part.added": ContentPartAdded(
        RESP, ITEM, 0, {"type": "audio", "transcript": ""}, event_id="event_18"
    ),
    "response.content_part.done": ContentPartDone(
        RESP,
        ITEM,
        0,
        {"type": "audio", "transcript": "Hi there! How can I help?"},
        event_id="event_19",
    ),
    "response.output_audio.delta": AudioDelta(RESP, ITEM, 0, 0, PCM, event_id="event_20"),
    "response.output_audio.done": AudioDone(RESP, ITEM, event_id="event_21"),
    "response.output_audio_transcript.delta": TranscriptDelta(
        RESP, ITEM, "Hi there!", event_id="event_22"
    ),
    "response.output_audio_transcript.done": TranscriptDone(
        RESP, ITEM, "Hi there! How can I help?", event_id="event_23"
    ),
    "response.output_text.delta": TextDelta(RESP, ITEM, "Hi", event_id="event_24"),
    "response.output_text.done": TextDone(RESP, ITEM, "Hi there!", event_id="event_25"),
    "response.function_call_arguments.done": FunctionCallArgumentsDone(
        RESP, "item_fc", "call_ABC", "set_volume", '{"level": 40}', event_id="event_26"
    ),
    "response.done": ResponseDone(
        RESP, "completed", None, USAGE_PARSED, (ASSISTANT_ITEM,), event_id="event_27"
    ),
    "mcp_list_tools.completed": McpListToolsDone("mcpl_1", event_id="event_31"),
    "mcp_list_tools.failed": McpListToolsDone("mcpl_2", failed=True, event_id="event_32"),
    "response.mcp_call.completed": McpCallDone("mcp_1", 0, event_id="event_33"),
    "response.mcp_call.failed": McpCallDone("mcp_2", 1, failed=True, event_id="event_34"),
    "rate_limits.updated": RateLimitsUpdated(
        tuple(FX["rate_limits.updated"]["rate_limits"]), event_id="event_28"
    ),
    "error": ServerError(
        "invalid_request_error",
        "unknown_parameter",
        "Unknown parameter: 'session.temperature'.",
        "session.temperature",
        "ev_1",
        event_id="event_29",
    ),
}


def frame(event: dict[str, Any]) -> str:
    return json.dumps(event)


def test_every_fixture_is_a_valid_ga_server_event() -> None:
    for kind, event in [*GA_FIXTURES.items(), *((e["type"], e) for e in GA_UNMODELLED)]:
        assert server_problems(event) == [], kind


def test_fixtures_cover_every_modelled_type() -> None:
    assert set(EXPECTED) == set(GA_FIXTURES)


@pytest.mark.parametrize("kind", sorted(GA_FIXTURES))
def test_each_ga_event_parses_to_its_typed_event(kind: str) -> None:
    event = parse_server_event(frame(GA_FIXTURES[kind]))
    assert type(event) is type(EXPECTED[kind])
    assert event == EXPECTED[kind]
    assert event.raw == GA_FIXTURES[kind]


def test_audio_delta_carries_decoded_pcm_and_hides_it_from_repr() -> None:
    event = parse_server_event(frame(GA_FIXTURES["response.output_audio.delta"]))
    assert isinstance(event, AudioDelta)
    assert event.pcm == PCM
    assert PCM_B64[:16] not in repr(event) and "pcm" not in repr(event)


def test_legacy_item_created_reads_as_item_added() -> None:
    event = parse_server_event(frame(LEGACY_ITEM_CREATED))
    assert event == ItemAdded(USER_ITEM, "item_prev", event_id="event_30")


@pytest.mark.parametrize("event", GA_UNMODELLED, ids=lambda e: str(e["type"]))
def test_unmodelled_ga_events_are_unknown(event: dict[str, Any]) -> None:
    parsed = parse_server_event(frame(event))
    assert parsed == Unknown(event["type"], event_id=event.get("event_id", ""))


def test_unknown_type_is_kept_whatever_its_fields() -> None:
    event = {"type": "response.brand_new", "event_id": 7, "whatever": [1, {"x": None}]}
    parsed = parse_server_event(frame(event))
    assert parsed == Unknown("response.brand_new", event_id="")
    assert parsed.raw == event


@pytest.mark.parametrize(
    ("part_type", "kind"),
    [("audio", "audio"), ("output_audio", "audio"), ("text", "text"), ("output_text", "text")],
)
def test_content_part_type_accepts_both_spellings(part_type: str, kind: str) -> None:
    for name in ("response.content_part.added", "response.content_part.done"):
        event = copy.deepcopy(GA_FIXTURES[name])
        event["part"]["type"] = part_type
        parsed = parse_server_event(frame(event))
        assert isinstance(parsed, (ContentPartAdded, ContentPartDone))
        assert parsed.kind == kind


def test_content_part_without_type_has_no_kind() -> None:
    event = {**GA_FIXTURES["response.content_part.added"], "part": {}}
    parsed = parse_server_event(frame(event))
    assert isinstance(parsed, ContentPartAdded)
    assert parsed.kind is None


def without(event: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in keys}


def test_optional_fields_missing_read_as_none() -> None:
    committed = parse_server_event(
        frame(without(GA_FIXTURES["input_audio_buffer.committed"], "previous_item_id"))
    )
    assert committed == BufferCommitted(USER_ITEM["id"], None, event_id="event_5")
    call = parse_server_event(
        frame(without(GA_FIXTURES["response.function_call_arguments.done"], "name"))
    )
    assert isinstance(call, FunctionCallArgumentsDone) and call.name is None
    created = parse_server_event(
        frame(
            {
                "type": "session.created",
                "event_id": "e",
                "session": without(SESSION, "expires_at"),
            }
        )
    )
    assert isinstance(created, SessionCreated) and created.expires_at is None
    error = parse_server_event(
        frame(
            {
                "type": "error",
                "event_id": "e",
                "error": {"type": "server_error", "message": "The server had an error."},
            }
        )
    )
    assert error == ServerError(
        "server_error", None, "The server had an error.", None, None, event_id="e"
    )


def test_response_done_without_usage_or_output() -> None:
    event = {
        "type": "response.done",
        "event_id": "e",
        "response": {
            "id": RESP,
            "status": "cancelled",
            "status_details": {"type": "cancelled", "reason": "turn_detected"},
        },
    }
    parsed = parse_server_event(frame(event))
    details = {"type": "cancelled", "reason": "turn_detected"}
    assert parsed == ResponseDone(RESP, "cancelled", details, None, (), event_id="e")


def test_usage_fields_missing_read_as_zero() -> None:
    event = copy.deepcopy(GA_FIXTURES["response.done"])
    event["response"]["usage"] = {
        "total_tokens": 10,
        "output_tokens": 10,
        "output_token_details": {"audio_tokens": 9},
    }
    parsed = parse_server_event(frame(event))
    assert isinstance(parsed, ResponseDone)
    assert parsed.usage == Usage(total_tokens=10, output_tokens=10, output_audio_tokens=9)


def test_extra_fields_are_ignored() -> None:
    event = {**GA_FIXTURES["input_audio_buffer.speech_started"], "novel": {"a": 1}}
    assert parse_server_event(frame(event)) == EXPECTED["input_audio_buffer.speech_started"]


def test_missing_event_id_reads_as_empty() -> None:
    event = without(GA_FIXTURES["conversation.item.deleted"], "event_id")
    assert parse_server_event(frame(event)) == ItemDeleted(ITEM, event_id="")


def test_transcription_delta_without_text_reads_as_empty() -> None:
    event = without(GA_FIXTURES["conversation.item.input_audio_transcription.delta"], "delta")
    parsed = parse_server_event(frame(event))
    assert parsed == InputTranscriptionDelta(USER_ITEM["id"], "", event_id="event_12")


# Top-level keys each modelled event cannot do without.
REQUIRED: dict[str, set[str]] = {
    "session.created": {"session"},
    "session.updated": {"session"},
    "input_audio_buffer.speech_started": {"item_id", "audio_start_ms"},
    "input_audio_buffer.speech_stopped": {"item_id", "audio_end_ms"},
    "input_audio_buffer.committed": {"item_id"},
    "input_audio_buffer.cleared": set(),
    "input_audio_buffer.timeout_triggered": {"item_id", "audio_start_ms", "audio_end_ms"},
    "conversation.item.added": {"item"},
    "conversation.item.done": {"item"},
    "conversation.item.truncated": {"item_id", "content_index", "audio_end_ms"},
    "conversation.item.deleted": {"item_id"},
    "conversation.item.input_audio_transcription.delta": {"item_id"},
    "conversation.item.input_audio_transcription.completed": {"item_id", "transcript"},
    "conversation.item.input_audio_transcription.failed": {"item_id", "error"},
    "response.created": {"response"},
    "response.output_item.added": {"response_id", "output_index", "item"},
    "response.output_item.done": {"response_id", "output_index", "item"},
    "response.content_part.added": {"response_id", "item_id", "content_index", "part"},
    "response.content_part.done": {"response_id", "item_id", "content_index", "part"},
    "response.output_audio.delta": {
        "response_id",
        "item_id",
        "output_index",
        "content_index",
        "delta",
    },
    "response.output_audio.done": {"response_id", "item_id"},
    "response.output_audio_transcript.delta": {"response_id", "item_id", "delta"},
    "response.output_audio_transcript.done": {"response_id", "item_id", "transcript"},
    "response.output_text.delta": {"response_id", "item_id", "delta"},
    "response.output_text.done": {"response_id", "item_id", "text"},
    "response.function_call_arguments.done": {"response_id", "item_id", "call_id", "arguments"},
    "response.done": {"response"},
    "mcp_list_tools.completed": {"item_id"},
    "mcp_list_tools.failed": {"item_id"},
    "response.mcp_call.completed": {"item_id", "output_index"},
    "response.mcp_call.failed": {"item_id", "output_index"},
    "rate_limits.updated": {"rate_limits"},
    "error": {"error"},
}


@pytest.mark.parametrize("kind", sorted(GA_FIXTURES))
def test_dropping_a_field_rejects_only_required_ones(kind: str) -> None:
    fixture = GA_FIXTURES[kind]
    for key in fixture.keys() - {"type", "event_id"}:
        if key in REQUIRED[kind]:
            with pytest.raises(RemoteProtocolError) as caught:
                parse_server_event(frame(without(fixture, key)))
            assert kind in str(caught.value) and repr(key) in str(caught.value)
        else:
            parsed = parse_server_event(frame(without(fixture, key)))
            assert isinstance(parsed, type(EXPECTED[kind]))


def replaced(kind: str, path: tuple[str, ...], value: Any) -> str:
    event = copy.deepcopy(GA_FIXTURES[kind])
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return frame(event)


# (event type, path to the field, bad value, text the error must contain)
WRONG_FIELDS: list[tuple[str, tuple[str, ...], Any, str]] = [
    ("response.output_audio.delta", ("delta",), 42, "'delta'"),
    ("response.output_audio.delta", ("delta",), "not base64!", "base64"),
    ("response.output_audio.delta", ("delta",), "AAA", "base64"),  # bad padding
    ("response.output_audio.delta", ("delta",), "AA*AA", "base64"),  # valid once "*" is skipped
    ("response.output_audio.delta", ("delta",), "AAé=", "base64"),  # not ASCII
    ("response.output_audio.delta", ("content_index",), "0", "'content_index'"),
    ("response.output_audio_transcript.delta", ("delta",), None, "'delta'"),
    ("response.output_text.delta", ("delta",), ["Hi"], "'delta'"),
    ("input_audio_buffer.speech_stopped", ("audio_end_ms",), True, "'audio_end_ms'"),
    ("input_audio_buffer.speech_stopped", ("audio_end_ms",), 2480.5, "'audio_end_ms'"),
    ("input_audio_buffer.speech_stopped", ("audio_end_ms",), "2480", "'audio_end_ms'"),
    ("input_audio_buffer.speech_started", ("item_id",), 7, "'item_id'"),
    ("input_audio_buffer.committed", ("previous_item_id",), 3, "'previous_item_id'"),
    ("conversation.item.added", ("item",), "item_1", "'item'"),
    ("conversation.item.truncated", ("content_index",), False, "'content_index'"),
    ("session.created", ("session",), [], "'session'"),
    ("session.created", ("session", "id"), None, "'session.id'"),
    ("session.created", ("session", "expires_at"), "soon", "'session.expires_at'"),
    ("response.created", ("response",), None, "'response'"),
    ("response.created", ("response", "id"), 5, "'response.id'"),
    ("response.done", ("response", "status"), None, "'response.status'"),
    ("response.done", ("response", "output"), {"0": {}}, "'response.output'"),
    ("response.done", ("response", "output"), ["item"], "'response.output'"),
    ("response.done", ("response", "usage"), 253, "'response.usage'"),
    (
        "response.done",
        ("response", "usage", "input_tokens"),
        "132",
        "'response.usage.input_tokens'",
    ),
    (
        "response.done",
        ("response", "usage", "input_token_details", "cached_tokens_details"),
        [],
        "'response.usage.input_token_details.cached_tokens_details'",
    ),
    ("response.done", ("response", "status_details"), "cancelled", "'response.status_details'"),
    ("response.content_part.added", ("part",), "audio", "'part'"),
    ("response.function_call_arguments.done", ("arguments",), {"level": 40}, "'arguments'"),
    ("response.function_call_arguments.done", ("name",), 1, "'name'"),
    ("rate_limits.updated", ("rate_limits",), {"name": "tokens"}, "'rate_limits'"),
    ("rate_limits.updated", ("rate_limits",), [1, 2], "'rate_limits'"),
    ("error", ("error",), "boom", "'error'"),
    ("error", ("error", "type"), None, "'error.type'"),
    ("error", ("error", "code"), 500, "'error.code'"),
    ("error", ("event_id",), 12, "'event_id'"),
    ("conversation.item.input_audio_transcription.failed", ("error",), None, "'error'"),
]


@pytest.mark.parametrize(("kind", "path", "value", "named"), WRONG_FIELDS)
def test_wrong_typed_field_is_a_remote_protocol_error_naming_it(
    kind: str, path: tuple[str, ...], value: Any, named: str
) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_server_event(replaced(kind, path, value))
    assert kind in str(caught.value)
    assert named in str(caught.value)


BAD_FRAMES: list[Any] = [
    b'{"type": "input_audio_buffer.cleared", "event_id": "e"}',  # right text, binary frame
    b"",
    bytearray(b"\x00\x01"),
    "",
    "not json",
    "{'type': 'error'}",
    '{"type": "input_audio_buffer.cleared"',  # truncated
    "[]",
    '["input_audio_buffer.cleared"]',
    "42",
    '"input_audio_buffer.cleared"',
    "null",
    "{}",
    '{"event_id": "e"}',
    '{"type": null}',
    '{"type": 3}',
    '{"type": ["error"]}',
    '{"type": {"name": "error"}}',
    "[" * 100_000 + "]" * 100_000,  # nested deeper than the decoder's recursion limit
    '{"type": "error", "n": ' + "9" * 5000 + "}",  # integer too long to convert
]


@pytest.mark.parametrize("bad", BAD_FRAMES, ids=lambda b: repr(b)[:30])
def test_bad_frame_raises_only_remote_protocol_error(bad: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_server_event(bad)


def test_binary_frame_message_says_so() -> None:
    with pytest.raises(RemoteProtocolError, match="binary frame of 3 bytes"):
        parse_server_event(b"abc")


def test_missing_type_message_names_the_field() -> None:
    with pytest.raises(RemoteProtocolError, match=r"'type'.*missing"):
        parse_server_event('{"event_id": "e"}')
