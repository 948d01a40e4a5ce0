"""The local Realtime simulator speaks the GA protocol, checked by the SDK oracle.

Socket tests drive a raw ``websockets`` client on 127.0.0.1; protocol details are
checked on the sans-I/O core directly. Every event the simulator produces in
every test goes through ``server_problems``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from device.realtime import sim_voice
from device.realtime.sim_options import DEFAULT_REPLY
from device.realtime.sim_session import SimulatorSession
from device.realtime.sim_vad import threshold_to_dbfs
from device.realtime.sim_voice import espeak_pcm, synthesize, tone_pattern
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from tests.contract.oracle import SENT_BY_SIMULATOR

Event = dict[str, Any]
MODEL = "gpt-realtime-1.5"
AUTH = {"Authorization": "Bearer sk-test"}
BYTES_PER_MS = 48
SAFETY_TIMEOUT_S = 30.0  # only bounds a hung test; nothing is asserted about time


def b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode("ascii")


def silence(ms: int) -> bytes:
    return bytes(ms * BYTES_PER_MS)


def noise_burst(ms: int, level_dbfs: float = -20.0, seed: int = 7) -> bytes:
    """Speech-like stand-in: low-passed noise with a 4 Hz syllable envelope."""
    rng = np.random.default_rng(seed)
    n = ms * 24
    carrier = np.convolve(rng.standard_normal(n), np.ones(6) / 6, mode="same")
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * np.arange(n) / 24000)
    signal = carrier * envelope
    signal *= 32768 * 10 ** (level_dbfs / 20) / np.sqrt(np.mean(signal**2))
    return np.clip(signal, -32768, 32767).astype("<i2").tobytes()


def level_dbfs(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(samples**2)) / 32768 + 1e-12))


@pytest.fixture(params=["espeak", "noise"])
def spoken(request: pytest.FixtureRequest) -> tuple[bytes, str]:
    """A spoken question (espeak-ng when installed, else a burst) and the reply engine."""
    if request.param == "espeak":
        if shutil.which("espeak-ng") is None:
            pytest.skip("espeak-ng is not installed")
        return espeak_pcm("What time is it in Tokyo right now?"), "espeak"
    return noise_burst(1600), "tone"


class Core:
    """The sans-I/O core with every produced event kept for the oracle."""

    def __init__(self, **options: Any) -> None:
        self.session = SimulatorSession(
            SimulatorOptions(**{"voice_engine": "tone", **options}), MODEL, now_s=1000.0
        )
        self.events = self._keep(self.session.created())

    def _keep(self, events: list[Event]) -> list[Event]:
        SENT_BY_SIMULATOR.extend(events)
        return events

    def send(self, event: Event) -> list[Event]:
        return self._keep(self.session.handle(event))

    def append(self, pcm: bytes, chunk_ms: int = 20) -> list[Event]:
        out: list[Event] = []
        for i in range(0, len(pcm), chunk_ms * BYTES_PER_MS):
            chunk = pcm[i : i + chunk_ms * BYTES_PER_MS]
            out += self.send({"type": "input_audio_buffer.append", "audio": b64(chunk)})
        return out

    def stream(self, steps: int | None = None) -> list[Event]:
        """Give started responses their audio and step them (all the way by default)."""
        out: list[Event] = []
        for response in self.session.take_started():
            pcm = synthesize(response.plan.text, "tone")
            self.session.attach_audio(response.plan.response_id, pcm)
        for response_id in list(self.session.responses):
            taken = 0
            while self.session.is_streaming(response_id) and (steps is None or taken < steps):
                out += self._keep(self.session.step(response_id))
                taken += 1
        return out

    def update(self, **session: Any) -> list[Event]:
        return self.send({"type": "session.update", "session": {"type": "realtime", **session}})


def types(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def only(events: list[Event], kind: str) -> Event:
    found = [e for e in events if e["type"] == kind]
    assert len(found) == 1, types(events)
    return found[0]


def error_of(events: list[Event]) -> dict[str, Any]:
    error: dict[str, Any] = only(events, "error")["error"]
    return error


# -- sockets ------------------------------------------------------------------------


async def recv_json(ws: ClientConnection) -> Event:
    event: Event = json.loads(await ws.recv())
    return event


async def recv_until(ws: ClientConnection, kind: str) -> list[Event]:
    events: list[Event] = []
    while not events or events[-1]["type"] != kind:
        events.append(await recv_json(ws))
    return events


def run(sim: RealtimeSimulator, scenario: Any) -> None:
    """Run ``scenario(sim)`` against a started simulator; keep what it sent for the oracle."""

    async def main() -> None:
        async with sim:
            try:
                await asyncio.wait_for(scenario(sim), SAFETY_TIMEOUT_S)
            finally:
                SENT_BY_SIMULATOR.extend(sim.sent)

    asyncio.run(main())


def test_handshake_needs_a_key_a_path_and_a_model() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        for url, headers, status in [
            (f"{sim.url}?model={MODEL}", {}, 401),
            (f"{sim.url}?model={MODEL}", {"Authorization": "Bearer "}, 401),
            (f"{sim.url}?model={MODEL}", {"Authorization": "Basic abc"}, 401),
            (sim.url.replace("/v1/realtime", "/v1/other") + f"?model={MODEL}", AUTH, 404),
            (sim.url, AUTH, 400),
        ]:
            with pytest.raises(InvalidStatus) as caught:
                await connect(url, additional_headers=headers)
            assert caught.value.response.status_code == status, url
        key = "openai-insecure-api-key.ek_test"
        async with connect(
            f"{sim.url}?model={MODEL}", subprotocols=[Subprotocol("realtime"), Subprotocol(key)]
        ) as ws:
            assert (await recv_json(ws))["type"] == "session.created"
        assert sim.connections == 1

    run(RealtimeSimulator(), scenario)


def test_auth_can_be_switched_off() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with connect(f"{sim.url}?model={MODEL}") as ws:
            assert (await recv_json(ws))["type"] == "session.created"

    run(RealtimeSimulator(SimulatorOptions(require_auth=False)), scenario)


@pytest.mark.parametrize("form", ["header", "subprotocol"])
def test_beta_request_gets_beta_error_and_close_4000(form: str) -> None:
    headers = {**AUTH, "OpenAI-Beta": "realtime=v1"} if form == "header" else AUTH
    offered = [Subprotocol("openai-beta.realtime-v1")] if form == "subprotocol" else None

    async def scenario(sim: RealtimeSimulator) -> None:
        url = f"{sim.url}?model={MODEL}"
        async with connect(url, additional_headers=headers, subprotocols=offered) as ws:
            error = (await recv_json(ws))["error"]
            assert error["code"] == "beta_api_shape_disabled"
            with pytest.raises(ConnectionClosed) as caught:
                await ws.recv()
            assert caught.value.rcvd is not None and caught.value.rcvd.code == 4000

    run(RealtimeSimulator(), scenario)


def test_session_created_then_updated_over_the_socket() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with connect(f"{sim.url}?model={MODEL}", additional_headers=AUTH) as ws:
            created = (await recv_json(ws))["session"]
            assert created["id"].startswith("sess_") and created["object"] == "realtime.session"
            assert created["model"] == MODEL and created["type"] == "realtime"
            assert created["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
            assert created["audio"]["output"]["voice"] == "marin"
            update = {
                "type": "session.update",
                "event_id": "u1",
                "session": {
                    "type": "realtime",
                    "instructions": "Be brief.",
                    "audio": {"output": {"voice": "cedar"}},
                },
            }
            await ws.send(json.dumps(update))
            updated = (await recv_json(ws))["session"]
            assert updated["instructions"] == "Be brief."
            assert updated["audio"]["output"] == {**created["audio"]["output"], "voice": "cedar"}
            assert updated["audio"]["input"] == created["audio"]["input"]
        assert sim.received == [update]

    run(RealtimeSimulator(), scenario)


def test_session_expires_with_error_and_close_1001() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with connect(f"{sim.url}?model={MODEL}", additional_headers=AUTH) as ws:
            assert (await recv_json(ws))["type"] == "session.created"
            assert (await recv_json(ws))["error"]["code"] == "session_expired"
            with pytest.raises(ConnectionClosed) as caught:
                await ws.recv()
            assert caught.value.rcvd is not None and caught.value.rcvd.code == 1001

    run(RealtimeSimulator(SimulatorOptions(session_lifetime_s=0)), scenario)


def test_spoken_question_gets_a_full_spoken_answer(spoken: tuple[bytes, str]) -> None:
    question, engine = spoken
    options = SimulatorOptions(voice_engine="espeak" if engine == "espeak" else "tone")

    async def scenario(sim: RealtimeSimulator) -> None:
        async with connect(f"{sim.url}?model={MODEL}", additional_headers=AUTH) as ws:
            await recv_json(ws)
            audio = silence(600) + question + silence(900)
            for i in range(0, len(audio), 20 * BYTES_PER_MS):
                chunk = audio[i : i + 20 * BYTES_PER_MS]
                await ws.send(
                    json.dumps({"type": "input_audio_buffer.append", "audio": b64(chunk)})
                )
            events = await recv_until(ws, "response.done")
        sequence = [t for t in types(events) if not t.endswith(".delta")]
        assert sequence == [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            "response.created",
            "rate_limits.updated",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        started = only(events, "input_audio_buffer.speech_started")
        stopped = only(events, "input_audio_buffer.speech_stopped")
        assert 0 < started["audio_start_ms"] <= 600
        assert 600 + len(question) // BYTES_PER_MS < stopped["audio_end_ms"] <= len(audio) // 48
        assert started["item_id"] == stopped["item_id"] == events[2]["item_id"]
        user_item = events[3]["item"]
        assert user_item["role"] == "user"
        assert user_item["content"] == [{"type": "input_audio", "transcript": None}]
        reply = b"".join(
            base64.b64decode(e["delta"])
            for e in events
            if e["type"] == "response.output_audio.delta"
        )
        assert len(reply) // BYTES_PER_MS >= 1000 and level_dbfs(reply) > -35.0
        words = "".join(
            e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
        )
        heard_s = (stopped["audio_end_ms"] - started["audio_start_ms"]) / 1000
        assert words == DEFAULT_REPLY.format(seconds=heard_s)
        done = events[-1]["response"]
        assert done["status"] == "completed"
        usage = done["usage"]
        assert usage["output_token_details"]["audio_tokens"] == round(len(reply) / 48 / 50)
        assert usage["output_token_details"]["text_tokens"] == len(words.split())
        assert usage["input_token_details"]["audio_tokens"] == round(heard_s * 10)

    run(RealtimeSimulator(options), scenario)


def test_cancel_and_truncate_over_the_socket() -> None:
    options = SimulatorOptions(voice_engine="tone", delta_ms=10, delta_interval_s=0.05)

    async def scenario(sim: RealtimeSimulator) -> None:
        async with connect(f"{sim.url}?model={MODEL}", additional_headers=AUTH) as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "response.create"}))
            events = await recv_until(ws, "response.output_audio.delta")
            await ws.send(json.dumps({"type": "response.cancel", "event_id": "c1"}))
            events += await recv_until(ws, "response.done")
            done = events[-1]["response"]
            assert done["status"] == "cancelled"
            assert done["status_details"]["reason"] == "client_cancelled"
            deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
            received_ms = sum(len(base64.b64decode(e["delta"])) for e in deltas) // 48
            assert received_ms < 1500  # the tone is 1.5 s; it stopped early
            item_id = deltas[0]["item_id"]
            await ws.send(json.dumps({"type": "response.cancel", "event_id": "c2"}))
            late = await recv_until(ws, "error")
            assert types(late) == ["error"]  # nothing of the cancelled response follows
            assert late[0]["error"]["code"] == "response_cancel_not_active"
            truncate = {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
            }
            await ws.send(
                json.dumps({**truncate, "event_id": "t1", "audio_end_ms": received_ms + 50})
            )
            error = (await recv_json(ws))["error"]
            assert error["event_id"] == "t1"
            assert error["message"] == (
                f"Audio content of {received_ms} ms is already shorter than {received_ms + 50} ms"
            )
            await ws.send(json.dumps({**truncate, "audio_end_ms": received_ms // 2}))
            truncated = await recv_json(ws)
            assert truncated["type"] == "conversation.item.truncated"
            assert truncated["audio_end_ms"] == received_ms // 2

    run(RealtimeSimulator(options), scenario)


def test_bad_input_gets_errors_and_the_socket_stays_open() -> None:
    bad: list[tuple[str, str, str | None]] = [
        ("not json", "invalid_event", None),
        ("[1, 2]", "invalid_event", None),
        (json.dumps({"event_id": "e1"}), "invalid_event", "type"),
        (json.dumps({"type": "response.audio.delta", "event_id": "e2"}), "invalid_value", "type"),
        (
            json.dumps({"type": "input_audio_buffer.append", "event_id": "e3", "audio": "%%"}),
            "invalid_value",
            "audio",
        ),
        (
            json.dumps(
                {"type": "input_audio_buffer.append", "event_id": "e4", "audio": b64(b"\0")}
            ),
            "invalid_value",
            "audio",
        ),
        (
            json.dumps({"type": "session.update", "event_id": "e5", "session": {"voice": "ash"}}),
            "missing_required_parameter",
            "session.type",
        ),
        (
            json.dumps({"type": "input_audio_buffer.commit", "event_id": "e6"}),
            "input_audio_buffer_commit_empty",
            None,
        ),
    ]

    async def scenario(sim: RealtimeSimulator) -> None:
        async with connect(f"{sim.url}?model={MODEL}", additional_headers=AUTH) as ws:
            await recv_json(ws)
            for frame, code, param in bad:
                await ws.send(frame)
                error = (await recv_json(ws))["error"]
                assert (error["code"], error["param"]) == (code, param), frame
                sent = json.loads(frame) if frame.startswith("{") else {}
                assert error["event_id"] == sent.get("event_id")
            await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
            assert (await recv_json(ws))["type"] == "session.updated"

    run(RealtimeSimulator(), scenario)


# -- the sans-I/O core ----------------------------------------------------------------


def test_session_created_defaults_and_expiry_time() -> None:
    core = Core(session_lifetime_s=600)
    session = core.events[0]["session"]
    assert session["expires_at"] == 1600
    assert session["max_output_tokens"] == "inf" and session["tool_choice"] == "auto"
    assert session["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"temperature": 0.8}, "session.temperature"),
        ({"voice": "ash"}, "session.voice"),
        ({"modalities": ["audio", "text"]}, "session.modalities"),
        ({"turn_detection": None}, "session.turn_detection"),
        ({"input_audio_format": "pcm16"}, "session.input_audio_format"),
        ({"audio": {"input": {"vad": {}}}}, "session.audio.input.vad"),
        ({"audio": {"output": {"voice": "ash", "pitch": 2}}}, "session.audio.output.pitch"),
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "eager": 1}}}},
            "session.audio.input.turn_detection.eager",
        ),
    ],
)
def test_beta_or_unknown_keys_reject_the_whole_update(session: Event, param: str) -> None:
    core = Core()
    events = core.send(
        {
            "type": "session.update",
            "event_id": "u9",
            "session": {"type": "realtime", "instructions": "Changed.", **session},
        }
    )
    error = error_of(events)
    assert (error["code"], error["param"], error["event_id"]) == ("unknown_parameter", param, "u9")
    assert core.session.session["instructions"] != "Changed."


@pytest.mark.parametrize(
    ("session", "code"),
    [
        ({"type": "transcription"}, "invalid_value"),
        (
            {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
            },
            "invalid_value",
        ),
        ({"type": "realtime", "output_modalities": ["audio", "text"]}, "invalid_value"),
        ({"type": "realtime", "audio": {"output": {"speed": 3.0}}}, "decimal_above_max_value"),
        ({"type": "realtime", "instructions": 5}, "invalid_type"),
        ({"type": "realtime", "model": "gpt-realtime"}, "invalid_value"),
    ],
)
def test_invalid_values_are_rejected(session: Event, code: str) -> None:
    assert error_of(Core().send({"type": "session.update", "session": session}))["code"] == code


def test_turn_detection_is_replaced_with_defaults_filled() -> None:
    core = Core()
    turn = {"type": "server_vad", "silence_duration_ms": 800}
    events = core.update(audio={"input": {"turn_detection": turn}})
    config = only(events, "session.updated")["session"]["audio"]["input"]["turn_detection"]
    assert config["silence_duration_ms"] == 800 and config["prefix_padding_ms"] == 300
    assert core.update(audio={"input": {"turn_detection": {"type": "semantic_vad"}}})


def test_voice_cannot_change_after_audio_was_produced() -> None:
    core = Core()
    assert types(core.update(audio={"output": {"voice": "ash"}})) == ["session.updated"]
    core.send({"type": "response.create"})
    core.stream()
    error = error_of(core.update(audio={"output": {"voice": "cedar"}}))
    assert error["code"] == "cannot_update_voice"


def test_vad_marks_follow_padding_and_silence_on_the_input_timeline() -> None:
    core = Core()
    events = core.append(silence(1000) + noise_burst(800) + silence(1000))
    started = only(events, "input_audio_buffer.speech_started")
    stopped = only(events, "input_audio_buffer.speech_stopped")
    assert started["audio_start_ms"] == 1000 - 300
    assert stopped["audio_end_ms"] == 1800 + 500
    assert types(events)[-5:] == [
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
    ]


@pytest.mark.parametrize(
    ("eagerness", "silence_ms"), [("low", 2000), ("auto", 1000), ("high", 500)]
)
def test_semantic_vad_waits_by_eagerness(eagerness: str, silence_ms: int) -> None:
    core = Core()
    core.update(
        audio={"input": {"turn_detection": {"type": "semantic_vad", "eagerness": eagerness}}}
    )
    events = core.append(silence(500) + noise_burst(600) + silence(2500))
    assert only(events, "input_audio_buffer.speech_stopped")["audio_end_ms"] == 1100 + silence_ms


def test_threshold_maps_to_a_level_and_quiet_audio_is_not_speech() -> None:
    assert threshold_to_dbfs(0.5) == -45.0
    core = Core()
    assert core.append(silence(300) + noise_burst(800, level_dbfs=-55.0) + silence(800)) == []


def test_without_turn_detection_the_client_commits_and_asks() -> None:
    core = Core()
    core.update(audio={"input": {"turn_detection": None}})
    assert core.append(silence(200) + noise_burst(600) + silence(600)) == []
    committed = core.send({"type": "input_audio_buffer.commit"})
    assert types(committed) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert core.session.take_started() == []
    assert only(core.send({"type": "response.create"}), "response.created")
    assert core.append(noise_burst(50)) == []
    error = error_of(core.send({"type": "input_audio_buffer.commit", "event_id": "c"}))
    assert error["code"] == "input_audio_buffer_commit_empty" and error["event_id"] == "c"
    assert types(core.send({"type": "input_audio_buffer.clear"})) == ["input_audio_buffer.cleared"]


def test_speech_cancels_the_active_response_when_interrupting() -> None:
    core = Core()
    core.send({"type": "response.create"})
    core.stream(steps=3)
    events = core.append(noise_burst(300))
    assert types(events)[0] == "input_audio_buffer.speech_started"
    done = only(events, "response.done")["response"]
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "turn_detected"
    assert only(events, "response.output_item.done")["item"]["status"] == "incomplete"


def test_one_response_at_a_time_and_cancel_needs_one() -> None:
    core = Core()
    error = error_of(core.send({"type": "response.cancel", "event_id": "x"}))
    assert error["code"] == "response_cancel_not_active"
    core.send({"type": "response.create"})
    error = error_of(core.send({"type": "response.create", "event_id": "y"}))
    assert (error["code"], error["event_id"]) == ("conversation_already_has_active_response", "y")
    out_of_band = core.send({"type": "response.create", "response": {"conversation": "none"}})
    assert only(out_of_band, "response.created")["response"]["conversation_id"] is None
    events = core.send({"type": "response.cancel"})
    assert only(events, "response.done")["response"]["status_details"]["reason"] == (
        "client_cancelled"
    )
    assert (
        error_of(core.send({"type": "response.create", "response": {"modalities": ["text"]}}))[
            "param"
        ]
        == "response.modalities"
    )


def test_truncate_only_assistant_audio_within_its_length() -> None:
    core = Core()
    core.send({"type": "response.create"})
    events = core.stream()
    item_id = only(events, "response.output_item.done")["item"]["id"]
    audio_ms = 1500  # the tone pattern
    cut = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
    error = error_of(core.send({**cut, "audio_end_ms": audio_ms + 1}))
    assert error["message"] == f"Audio content of {audio_ms} ms is already shorter than 1501 ms"
    assert error_of(core.send({**cut, "audio_end_ms": -1}))["code"] == "integer_below_min_value"
    assert error_of(core.send({**cut, "item_id": "item_nope", "audio_end_ms": 0}))["code"] == (
        "item_not_found"
    )
    truncated = only(core.send({**cut, "audio_end_ms": 700}), "conversation.item.truncated")
    assert truncated["audio_end_ms"] == 700
    retrieved = only(
        core.send({"type": "conversation.item.retrieve", "item_id": item_id}),
        "conversation.item.retrieved",
    )
    assert len(base64.b64decode(retrieved["item"]["content"][0]["audio"])) == 700 * BYTES_PER_MS
    user = core.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi"}],
            },
        }
    )
    user_id = only(user, "conversation.item.done")["item"]["id"]
    error = error_of(core.send({**cut, "item_id": user_id, "audio_end_ms": 0}))
    assert "Only model output audio" in error["message"]


def test_items_are_created_in_place_and_deleted() -> None:
    core = Core()
    system = {
        "type": "message",
        "role": "system",
        "content": [{"type": "input_text", "text": "Be kind."}],
    }
    first = core.send({"type": "conversation.item.create", "item": {**system, "id": "sys1"}})
    assert types(first) == ["conversation.item.added", "conversation.item.done"]
    output = {"type": "function_call_output", "call_id": "call_1", "output": "{}"}
    events = core.send(
        {"type": "conversation.item.create", "previous_item_id": "root", "item": output}
    )
    assert only(events, "conversation.item.added")["previous_item_id"] is None
    assert [item.id for item in core.session.conversation.items][1] == "sys1"
    for item, code in [
        ({**system, "id": "x" * 33}, "string_above_max_length"),
        ({**system, "id": "sys1"}, "invalid_value"),
        (
            {"type": "message", "role": "assistant", "content": [{"type": "output_audio"}]},
            "invalid_value",
        ),
    ]:
        assert (
            error_of(core.send({"type": "conversation.item.create", "item": item}))["code"] == code
        )
    assert types(core.send({"type": "conversation.item.delete", "item_id": "sys1"})) == [
        "conversation.item.deleted"
    ]
    assert error_of(core.send({"type": "conversation.item.delete", "item_id": "sys1"}))["code"] == (
        "item_not_found"
    )


def test_text_only_session_streams_text() -> None:
    core = Core(reply_text="Hello there, friend.")
    core.update(output_modalities=["text"])
    core.send({"type": "response.create"})
    events = core.stream()
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == (
        "Hello there, friend."
    )
    assert "response.output_audio.delta" not in types(events)
    assert only(events, "response.done")["response"]["usage"]["output_tokens"] == 3


def test_idle_timeout_prompts_after_the_reply_has_played() -> None:
    core = Core()
    turn = {"type": "server_vad", "idle_timeout_ms": 5000}
    core.update(audio={"input": {"turn_detection": turn}})
    core.send({"type": "response.create"})
    core.stream()
    assert core.append(silence(1500 + 4900)) == []
    events = core.append(silence(200))
    assert types(events)[:4] == [
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert only(events, "response.created")


def test_tone_pattern_is_an_audible_second_and_a_half() -> None:
    pcm = tone_pattern()
    samples = np.frombuffer(pcm, "<i2")
    assert len(pcm) // BYTES_PER_MS == 1500
    assert 20 * np.log10(np.abs(samples).max() / 32768) == pytest.approx(-12.0, abs=0.1)


def test_max_output_tokens_cuts_the_reply_short() -> None:
    core = Core()
    core.send({"type": "response.create", "response": {"max_output_tokens": 10}})
    events = core.stream()
    done = only(events, "response.done")["response"]
    assert done["status"] == "incomplete"
    assert done["status_details"]["reason"] == "max_output_tokens"
    assert done["usage"]["output_token_details"]["audio_tokens"] == 10


def test_reply_audio_failure_fails_only_that_response(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim_voice, "espeak_path", lambda: "/nonexistent/espeak-ng")
    options = SimulatorOptions(voice_engine="espeak", reply_text="A sentence never cached.")

    async def scenario(sim: RealtimeSimulator) -> None:
        async with connect(f"{sim.url}?model={MODEL}", additional_headers=AUTH) as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "response.create"}))
            done = (await recv_until(ws, "response.done"))[-1]["response"]
            assert done["status"] == "failed"
            assert done["status_details"]["error"]["type"] == "server_error"
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            assert (await recv_json(ws))["type"] == "input_audio_buffer.cleared"

    run(RealtimeSimulator(options), scenario)


# -- function calls -----------------------------------------------------------------------

VOLUME_TOOL = {
    "type": "function",
    "name": "volume",
    "description": "Read or change the playback volume.",
    "parameters": {"type": "object", "properties": {"percent": {"type": "integer"}}},
}
SET_VOLUME = ("volume", '{"action": "set", "percent": 30}')


def test_the_first_response_calls_the_offered_function() -> None:
    core = Core(tool_call=SET_VOLUME)
    core.update(tools=[VOLUME_TOOL])
    events = core.send({"type": "response.create"})
    kinds = types(events)
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert kinds == [
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        *["response.function_call_arguments.delta"] * len(deltas),
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert len(deltas) > 1 and "".join(d["delta"] for d in deltas) == SET_VOLUME[1]
    added = only(events, "response.output_item.added")["item"]
    assert (added["type"], added["status"], added["arguments"]) == (
        "function_call",
        "in_progress",
        "",
    )
    done = only(events, "response.function_call_arguments.done")
    item = only(events, "response.output_item.done")["item"]
    assert (item["name"], item["arguments"], item["status"]) == (*SET_VOLUME, "completed")
    assert done["call_id"] == item["call_id"] == deltas[0]["call_id"]
    assert (done["name"], done["arguments"], done["item_id"]) == (*SET_VOLUME, item["id"])
    response = only(events, "response.done")["response"]
    assert response["status"] == "completed" and response["output"] == [item]
    assert response["usage"]["output_token_details"] == {"text_tokens": 8, "audio_tokens": 0}
    assert core.session.take_started() == [] and core.session.default_response() is None
    assert core.session.conversation.items[-1].data == item


def test_the_answer_after_the_function_output_speaks_the_output() -> None:
    core = Core(tool_call=SET_VOLUME)
    core.update(tools=[VOLUME_TOOL])
    call_id = only(core.send({"type": "response.create"}), "response.done")["response"]["output"][
        0
    ]["call_id"]
    output = {"type": "function_call_output", "call_id": call_id, "output": '{"volume": 30}'}
    added = core.send({"type": "conversation.item.create", "item": output})
    assert types(added) == ["conversation.item.added", "conversation.item.done"]
    core.send({"type": "response.create"})
    events = core.stream()
    transcript = only(events, "response.output_audio_transcript.done")["transcript"]
    assert transcript == 'The tool said: {"volume": 30}'
    assert "response.output_audio.delta" in types(events)
    core.send({"type": "response.create"})
    again = only(core.stream(), "response.done")["response"]["output"][0]
    assert again["type"] == "message", "the function is called once per session"


@pytest.mark.parametrize(
    "session",
    [
        {},  # no tools offered
        {"tools": [{**VOLUME_TOOL, "name": "leds"}]},
        {"tools": [VOLUME_TOOL], "tool_choice": "none"},
        {"tools": [VOLUME_TOOL], "tool_choice": {"type": "function", "name": "other"}},
    ],
)
def test_no_call_unless_the_session_offers_that_function(session: Event) -> None:
    core = Core(tool_call=SET_VOLUME)
    if session:
        core.update(**session)
    core.send({"type": "response.create"})
    item = only(core.stream(), "response.done")["response"]["output"][0]
    assert item["type"] == "message"
    assert core.session.tool_called is False


def test_a_response_may_offer_the_function_itself() -> None:
    core = Core(tool_call=SET_VOLUME)
    response = {"tools": [VOLUME_TOOL], "tool_choice": "required"}
    events = core.send({"type": "response.create", "response": response})
    assert only(events, "response.output_item.done")["item"]["type"] == "function_call"


def test_server_vad_turn_can_start_with_a_function_call() -> None:
    core = Core(tool_call=SET_VOLUME)
    core.update(tools=[VOLUME_TOOL])
    events = core.append(silence(200) + noise_burst(800) + silence(900))
    assert "input_audio_buffer.committed" in types(events)
    assert only(events, "response.output_item.done")["item"]["type"] == "function_call"
    done = only(events, "response.done")["response"]
    assert done["usage"]["input_token_details"]["audio_tokens"] > 0
