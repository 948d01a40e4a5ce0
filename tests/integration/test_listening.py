"""Listening end to end: the daemon on fake hardware against the simulator on 127.0.0.1.

Nothing leaves the device before the wake word; the follow-up window lets the user
answer without it; an activation nobody speaks into ends; the device's own voice
never interrupts it, and the user's voice over the reply does. Every event on the
wire is checked against the official SDK's types.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device import timeline as tl
from device.app import Daemon
from device.config import Config, load_config, with_overrides
from device.demo import LOCAL_KEY, DemoResult, run_conversation, shipped_question
from device.demo_listen import scenario, shipped_wake_word
from device.errors import EXIT_CONFIG
from device.listen import LOCAL_BARGE_IN, WAKE_WORD
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from device.state import State
from device.trace import read_trace
from hw.factory import HardwareRequest, build_fake
from hw.fake import FakeDuplex
from tests.contract.oracle import client_problems, server_problems

pytestmark = pytest.mark.slow

SPEED = 4.0
Trace = list[dict[str, Any]]


def base_config(**listen: Any) -> Config:
    # The AI disclosure would speak first at every fresh state directory: not here.
    return with_overrides(load_config(None), link={"disclosure": ""}, listen=listen)


def converse(
    tmp_path: Path,
    name: str,
    *,
    timeout_s: float = 40.0,
    sounds: dict[str, Any] | None = None,
    **listen: Any,
) -> tuple[DemoResult, Trace]:
    plan = scenario(name, shipped_question())
    config = with_overrides(base_config(**listen), sounds=sounds or {})
    result = asyncio.run(
        run_conversation(
            config,
            shipped_question(),
            tmp_path / "reply.wav",
            trace_path=tmp_path / "trace.jsonl",
            speed=SPEED,
            timeout_s=timeout_s,
            scenario=plan,
        )
    )
    trace = read_trace(tmp_path / "trace.jsonl")
    problems = []
    for line in trace:
        check = client_problems if line["dir"] == "sent" else server_problems
        problems += check(line["event"])
    assert problems == []
    return result, trace


def mark_s(result: DemoResult, name: str) -> float:
    return next(m.at_s for m in result.timeline.marks if m.name == name)


def sent(trace: Trace, kind: str) -> list[dict[str, Any]]:
    return [line for line in trace if line["dir"] == "sent" and line["event"]["type"] == kind]


def received(trace: Trace, kind: str) -> list[dict[str, Any]]:
    return [line for line in trace if line["dir"] == "recv" and line["event"]["type"] == kind]


def test_not_a_byte_before_the_wake_word_then_the_question(tmp_path: Path) -> None:
    """The question said first without the wake word is dropped; said after it, answered."""
    result, trace = converse(tmp_path, "wake-word")
    assert result.wake_words == 1 and result.replies == 1
    assert result.chunks_dropped_asleep > 20  # the first question was heard, and dropped
    appends = sent(trace, "input_audio_buffer.append")
    # trace and timeline share the monotonic clock
    assert appends and all(line["t"] > mark_s(result, WAKE_WORD) for line in appends)
    assert len(received(trace, "input_audio_buffer.speech_started")) == 1


def test_the_follow_up_window_takes_an_answer_without_the_wake_word(tmp_path: Path) -> None:
    result, trace = converse(tmp_path, "follow-up", follow_up_s=5.0)
    assert result.wake_words == 1
    assert result.replies == 2  # the second question was heard without the wake word
    finished = mark_s(result, tl.PLAYBACK_FINISHED)
    assert any(line["t"] > finished for line in sent(trace, "input_audio_buffer.append"))
    done = [line["event"]["response"]["status"] for line in received(trace, "response.done")]
    assert done == ["completed", "completed"]


def test_without_a_follow_up_the_answer_needs_the_wake_word_again(tmp_path: Path) -> None:
    result, trace = converse(tmp_path, "follow-up", follow_up_s=0.0, timeout_s=16.0)
    assert result.replies == 1
    finished = mark_s(result, tl.PLAYBACK_FINISHED)
    assert not any(line["t"] > finished for line in sent(trace, "input_audio_buffer.append"))
    assert len(received(trace, "input_audio_buffer.speech_started")) == 1


def test_an_activation_nobody_speaks_into_ends(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def body() -> list[State]:
        seen: list[State] = []
        async with RealtimeSimulator(SimulatorOptions(voice_engine="tone")) as sim:
            config = with_overrides(
                base_config(listen_timeout_s=1.0),
                device={"hardware": "fake"},
                realtime={"url": sim.url},
            )
            hardware = build_fake(HardwareRequest("fake"), speed=SPEED)
            duplex = hardware.duplex
            assert isinstance(duplex, FakeDuplex)
            duplex.feed_wav(shipped_wake_word("okay_nabu"), at_s=0.5)  # and then silence
            daemon = Daemon(config, hardware, LOCAL_KEY)
            stop = asyncio.Event()
            task = asyncio.create_task(daemon.run(stop))
            try:
                for want in (State.WAKE, State.IDLE):
                    while daemon.state is not want:
                        assert not task.done()
                        await asyncio.sleep(0.01)
                    seen.append(daemon.state)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
                hardware.close()
            assert daemon.stats.chunks_sent == 0  # nobody spoke: nothing was sent
            assert sim.sent and all(server_problems(e) == [] for e in sim.sent)
        return seen

    assert asyncio.run(asyncio.wait_for(body(), 60)) == [State.WAKE, State.IDLE]
    assert "state wake -> idle (activation_ended)" in caplog.text


def test_the_devices_own_voice_at_full_volume_never_interrupts_it(tmp_path: Path) -> None:
    plan = scenario("barge-in", shipped_question())
    quiet = plan.__class__(turns=1, echo_gain=plan.echo_gain, overrides=plan.overrides)
    result = asyncio.run(
        run_conversation(
            base_config(),
            shipped_question(),
            tmp_path / "reply.wav",
            trace_path=tmp_path / "trace.jsonl",
            speed=SPEED,
            timeout_s=40.0,
            scenario=quiet,
        )
    )
    trace = read_trace(tmp_path / "trace.jsonl")
    assert result.replies == 1 and result.barge_ins == 0
    assert result.timeline.count(tl.PLAYBACK_INTERRUPTED) == 0
    assert len(received(trace, "input_audio_buffer.speech_started")) == 1  # the question only
    start, end = mark_s(result, tl.FIRST_DAC_SAMPLE), mark_s(result, tl.PLAYBACK_FINISHED)
    appends = sent(trace, "input_audio_buffer.append")
    assert not any(start < line["t"] < end for line in appends)  # held while it spoke


def dac_segments(path: Path) -> tuple[list[tuple[int, int]], int]:
    """(first, last) sample of each stretch of sound the DAC played, split at gaps over
    a second (longer than the pauses inside a reply)."""
    with wave.open(str(path), "rb") as wav:
        rate_hz = wav.getframerate()
        audio = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
        audio = audio.reshape(-1, wav.getnchannels())[:, 0]
    sounding = np.flatnonzero(audio != 0)
    breaks = np.flatnonzero(np.diff(sounding) > rate_hz)
    firsts = [sounding[0], *sounding[breaks + 1]]
    lasts = [*sounding[breaks], sounding[-1]]
    return [(int(a), int(b)) for a, b in zip(firsts, lasts, strict=True)], rate_hz


def test_the_users_voice_over_the_reply_stops_it_and_is_answered(tmp_path: Path) -> None:
    # Earcons off: the DAC then plays the two replies and nothing else.
    result, trace = converse(tmp_path, "barge-in", sounds={"enabled": False})
    assert result.barge_ins == 1 and result.replies == 2
    assert mark_s(result, LOCAL_BARGE_IN) < mark_s(result, tl.PLAYBACK_INTERRUPTED)
    (truncate,) = [line["event"] for line in sent(trace, "conversation.item.truncate")]
    first_item = next(m.detail for m in result.timeline.marks if m.name == tl.FIRST_DAC_SAMPLE)
    assert truncate["item_id"] == first_item
    received_ms = sum(
        len(line["event"]["delta"]) * 3 // 4 / 48  # base64 PCM16 at 24 kHz
        for line in received(trace, "response.output_audio.delta")
        if line["event"]["item_id"] == first_item
    )
    cut_ms = truncate["audio_end_ms"]
    assert 1000 < cut_ms < received_ms - 500  # cut where it was heard, well before the end
    # The DAC, in samples: the first reply sounded for what the truncation says was
    # heard (its speech starts a little after its first sample), not a block more.
    segments, rate_hz = dac_segments(result.output)
    first_reply, second_reply = segments[:2]
    sounded_ms = (first_reply[1] - first_reply[0] + 1) * 1000 / rate_hz
    assert cut_ms - 200 < sounded_ms <= cut_ms + 20
    # The user's words went out after the cut, and the answer to them completed.
    barge_s = mark_s(result, LOCAL_BARGE_IN)
    assert any(line["t"] >= barge_s for line in sent(trace, "input_audio_buffer.append"))
    assert received(trace, "response.done")[-1]["event"]["response"]["status"] == "completed"
    assert second_reply[0] > first_reply[1]


def test_a_wake_word_model_that_cannot_load_stops_the_daemon_with_78(tmp_path: Path) -> None:
    cfg = tmp_path / "edgevoice.toml"
    cfg.write_text(
        '[device]\nhardware = "fake"\n'
        f'[listen]\nwake_word_model = "{tmp_path / "hey_computer.json"}"\n'
    )
    key = tmp_path / "creds"
    key.mkdir()
    (key / "openai-api-key").write_text("sk-test-not-real\n")
    unset = ("OPENAI_API_KEY", "EDGEVOICE_CONFIG", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    proc = subprocess.run(
        [sys.executable, "-m", "device", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "CREDENTIALS_DIRECTORY": str(key)},
    )
    assert proc.returncode == EXIT_CONFIG
    assert "Traceback" not in proc.stderr
    assert f"{cfg}: listen.wake_word_model: " in proc.stderr
    assert "hey_computer.json" in proc.stderr and "JSON manifest" in proc.stderr
