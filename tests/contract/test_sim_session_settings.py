"""The simulator takes every session setting the device sends, echoes it as the effective
session, refuses bad values as the service does, and honours transcription, speed and
the replies the service ends itself. Every simulator event goes through the SDK oracle
(``tests/contract/conftest.py``)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from device.config import Config, with_overrides
from device.realtime.session import RealtimeSession
from device.realtime.sim_faults import Fault, Trigger, parse_fault
from device.realtime.sim_transcription import TRANSCRIPT
from device.realtime.sim_voice import tone_pattern
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from device.session_settings import session_settings
from tests.contract.oracle import SENT_BY_SIMULATOR, client_problems
from tests.contract.test_simulator import (
    AUTH,
    BYTES_PER_MS,
    MODEL,
    SAFETY_TIMEOUT_S,
    Core,
    error_of,
    noise_burst,
    only,
    recv_json,
    recv_until,
    silence,
    types,
)

Event = dict[str, Any]
EVERYTHING = {
    "speed": 1.3, "max_output_tokens": 900, "truncation": 0.6,
    "truncation_post_instructions_tokens": 6000, "prompt_id": "pmpt_home42",
    "prompt_version": "7", "prompt_variables": {"room": "kitchen"},
    "noise_reduction": "near_field", "transcription_model": "gpt-4o-mini-transcribe",
    "transcription_language": "en",
}  # fmt: skip


def device_update(**realtime: Any) -> Event:
    """The session.update the device sends for this [realtime] config (oracle-checked)."""
    config = with_overrides(Config(), realtime=realtime, turn={"idle_timeout_ms": 9000})
    session = RealtimeSession(session_settings(config, ()))
    session.configure()
    [event] = session.data_to_send()
    assert client_problems(event) == []
    return event


def test_the_device_update_comes_back_as_the_effective_session() -> None:
    core = Core()
    update = device_update(**EVERYTHING)
    effective = only(core.send(update), "session.updated")["session"]
    sent = update["session"]
    for key in ("output_modalities", "max_output_tokens", "truncation", "prompt"):
        assert effective[key] == sent[key], key
    assert effective["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert effective["audio"]["input"]["transcription"] == {
        "model": "gpt-4o-mini-transcribe",
        "language": "en",
    }
    assert effective["audio"]["input"]["turn_detection"]["idle_timeout_ms"] == 9000
    assert effective["audio"]["output"]["speed"] == 1.3
    assert "instructions" not in sent  # the prompt's own instructions apply


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"audio": {"input": {"transcription": {"model": "gpt-9-transcribe"}}}},
         "invalid_value", "session.audio.input.transcription.model"),
        ({"audio": {"input": {"noise_reduction": {"type": "room"}}}},
         "invalid_value", "session.audio.input.noise_reduction.type"),
        ({"prompt": {"id": "prompt_1"}}, "invalid_value", "session.prompt.id"),
        ({"prompt": {"id": "pmpt_1", "variables": {"room": 3}}},
         "invalid_type", "session.prompt.variables.room"),
        ({"prompt": {"id": "pmpt_1", "variables": {"pic": {"type": "input_video"}}}},
         "invalid_value", "session.prompt.variables.pic.type"),
        ({"truncation": {"type": "retention_ratio", "retention_ratio": 2}},
         "decimal_above_max_value", "session.truncation.retention_ratio"),
        ({"truncation": {"type": "retention_ratio", "retention_ratio": 0.5,
                         "token_limits": {"pre_instructions": 5}}},
         "unknown_parameter", "session.truncation.token_limits.pre_instructions"),
        ({"max_output_tokens": 5000}, "integer_above_max_value", "session.max_output_tokens"),
        ({"audio": {"input": {"turn_detection": {"type": "semantic_vad",
                                                 "idle_timeout_ms": 6000}}}},
         "unknown_parameter", "session.audio.input.turn_detection.idle_timeout_ms"),
        ({"audio": {"input": {"turn_detection": {"type": "server_vad",
                                                 "idle_timeout_ms": 1000}}}},
         "integer_below_min_value", "session.audio.input.turn_detection.idle_timeout_ms"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_with_their_parameter(session: Event, code: str, param: str) -> None:
    core = Core()
    event = {"type": "session.update", "event_id": "u1",
             "session": {"type": "realtime", "instructions": "Changed.", **session}}  # fmt: skip
    error = error_of(core.send(event))
    assert (error["code"], error["param"], error["event_id"]) == (code, param, "u1")
    assert core.session.session["instructions"] != "Changed.", "the whole update is refused"


@pytest.mark.parametrize(
    ("model", "usage_type"), [("gpt-4o-mini-transcribe", "tokens"), ("whisper-1", "duration")]
)
def test_committed_speech_is_transcribed_with_usage(model: str, usage_type: str) -> None:
    core = Core()
    core.update(audio={"input": {"transcription": {"model": model}}})
    events = core.append(silence(500) + noise_burst(1200) + silence(800))
    committed = only(events, "input_audio_buffer.committed")["item_id"]
    deltas = [e for e in events if e["type"].endswith("input_audio_transcription.delta")]
    completed = only(events, "conversation.item.input_audio_transcription.completed")
    assert {e["item_id"] for e in deltas} == {completed["item_id"]} == {committed}
    assert "".join(e["delta"] for e in deltas) == completed["transcript"]
    item_ms = 300 + 1200 + 500  # prefix padding + speech + silence duration
    assert completed["transcript"] == TRANSCRIPT.format(seconds=item_ms / 1000)
    assert completed["usage"]["type"] == usage_type
    order = types(events)
    assert order.index("conversation.item.done") < order.index(completed["type"])
    retrieved = core.send({"type": "conversation.item.retrieve", "item_id": committed})
    item = only(retrieved, "conversation.item.retrieved")["item"]
    assert item["content"][0]["transcript"] == completed["transcript"]


def test_without_transcription_nothing_is_transcribed() -> None:
    events = Core().append(silence(500) + noise_burst(1200) + silence(800))
    assert not [e for e in events if "input_audio_transcription" in e["type"]]


def test_push_to_talk_commits_need_a_tenth_of_a_second() -> None:
    core = Core()
    core.update(audio={"input": {"turn_detection": None}})
    core.append(noise_burst(60))
    error = error_of(core.send({"type": "input_audio_buffer.commit", "event_id": "c1"}))
    assert (error["code"], error["event_id"]) == ("input_audio_buffer_commit_empty", "c1")
    core.append(noise_burst(60))  # 120 ms in all now
    assert types(core.send({"type": "input_audio_buffer.commit"}))[0] == (
        "input_audio_buffer.committed"
    )


@pytest.mark.parametrize("speed", [0.5, 1.5])
def test_speed_scales_the_reply(speed: float) -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with connect(f"{sim.url}?model={MODEL}", additional_headers=AUTH) as ws:
            await recv_json(ws)
            update = {"type": "realtime", "audio": {"output": {"speed": speed}}}
            await ws.send(json.dumps({"type": "session.update", "session": update}))
            await ws.send(json.dumps({"type": "response.create"}))
            events = await recv_until(ws, "response.done")
            SENT_BY_SIMULATOR.extend(events)
            deltas = [e["delta"] for e in events if e["type"] == "response.output_audio.delta"]
            audio_ms = sum(len(base64.b64decode(d)) for d in deltas) / BYTES_PER_MS
            natural_ms = len(tone_pattern()) / BYTES_PER_MS
            assert audio_ms == pytest.approx(natural_ms / speed, rel=0.02)

    run(RealtimeSimulator(SimulatorOptions(voice_engine="tone")), scenario)


# -- replies the service ends itself ---------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("incomplete", Fault("incomplete", value="content_filter")),
        ("incomplete:max_output_tokens@response.created",
         Fault("incomplete", Trigger("response.created"), "max_output_tokens")),
        ("failed@response.output_audio.delta#2",
         Fault("failed", Trigger("response.output_audio.delta", 2), "server_error")),
        ("failed:model_overloaded", Fault("failed", value="model_overloaded")),
    ],
)  # fmt: skip
def test_ending_faults_parse_and_print_back(spec: str, fault: Fault) -> None:
    assert parse_fault(spec) == fault
    assert parse_fault(str(fault)) == fault


@pytest.mark.parametrize("spec", ["incomplete:turn_detected", "failed:Bad Code"])
def test_bad_ending_faults_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="bad fault"):
        parse_fault(spec)


def run(sim: RealtimeSimulator, scenario: Any) -> None:
    async def main() -> None:
        async with sim:
            await asyncio.wait_for(scenario(sim), SAFETY_TIMEOUT_S)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("spec", "status", "details"),
    [
        ("incomplete@response.output_audio.delta#2", "incomplete",
         {"type": "incomplete", "reason": "content_filter"}),
        ("failed:model_error@response.output_audio.delta#2", "failed",
         {"type": "failed", "error": {"type": "server_error", "code": "model_error",
                                      "message": "The server had an error while processing "
                                                 "your request."}}),
    ],
)  # fmt: skip
def test_a_fault_ends_the_streaming_reply_after_its_step(
    spec: str, status: str, details: Event
) -> None:
    options = SimulatorOptions(voice_engine="tone", faults=(parse_fault(spec),))

    async def scenario(sim: RealtimeSimulator) -> None:
        async with connect(f"{sim.url}?model={MODEL}", additional_headers=AUTH) as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "response.create"}))
            events = await recv_until(ws, "response.done")
            SENT_BY_SIMULATOR.extend(events)
            done = events[-1]["response"]
            assert (done["status"], done["status_details"]) == (status, details)
            deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
            assert len(deltas) in (2, 3), "ended at the step after the second delta"
            tail = types(events)[types(events).index("response.output_audio.done") :]
            assert tail == [
                "response.output_audio.done", "response.output_audio_transcript.done",
                "response.content_part.done", "response.output_item.done",
                "conversation.item.done", "response.done",
            ]  # fmt: skip
            # The next reply is whole: a fault ends one reply.
            await ws.send(json.dumps({"type": "response.create"}))
            again = await recv_until(ws, "response.done")
            SENT_BY_SIMULATOR.extend(again)
            assert again[-1]["response"]["status"] == "completed"

    run(RealtimeSimulator(options), scenario)
    assert SENT_BY_SIMULATOR
