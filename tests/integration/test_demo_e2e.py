"""End to end: a spoken question through the daemon on fake hardware, over a
real WebSocket to the local simulator, and the spoken reply out of the DAC.
Every event on the wire is checked against the official SDK's types."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device.config import load_config
from device.demo import LEAD_IN_S, LOCAL_KEY, DemoResult, run_conversation, shipped_question
from device.demo_listen import WAKE_PAUSE_S, shipped_wake_word
from device.trace import read_trace
from tests.contract.oracle import client_problems, server_problems

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("demo")
    result = asyncio.run(
        run_conversation(
            load_config(None),
            shipped_question(),
            out / "reply.wav",
            trace_path=out / "trace.jsonl",
            speed=3.0,
            timeout_s=40.0,
        )
    )
    return result, read_trace(out / "trace.jsonl")


def types(trace: list[dict[str, Any]], direction: str) -> list[str]:
    return [line["event"].get("type", "?") for line in trace if line["dir"] == direction]


def test_reply_is_played(demo_run: tuple[DemoResult, list[dict[str, Any]]]) -> None:
    result, _ = demo_run
    assert result.replies == 1
    assert result.reply_audio_s >= 1.0  # a spoken sentence, not a click


def test_reply_wav_holds_audio_after_the_question(
    demo_run: tuple[DemoResult, list[dict[str, Any]]],
) -> None:
    result, _ = demo_run
    with wave.open(str(result.output), "rb") as wav:
        assert wav.getsampwidth() == 2
        rate_hz = wav.getframerate()
        raw = wav.readframes(wav.getnframes())
        audio = np.frombuffer(raw, "<i2").reshape(-1, wav.getnchannels())
    loud = np.flatnonzero(np.abs(audio[:, 0]) > 1000)
    assert len(loud) > rate_hz // 2
    # The wake word comes first; the earcon that answers it plays before the question.
    with wave.open(str(shipped_wake_word(load_config(None).listen.wake_word)), "rb") as wake:
        question_start_s = LEAD_IN_S + wake.getnframes() / wake.getframerate() + WAKE_PAUSE_S
    question_end_s = question_start_s + 2.42
    loud_s = loud / rate_hz
    assert loud_s[-1] > question_end_s  # the device answers
    # and does not talk over the question
    assert not np.any((loud_s > question_start_s) & (loud_s < question_end_s))


def test_trace_has_the_ga_turn_sequence(demo_run: tuple[DemoResult, list[dict[str, Any]]]) -> None:
    _, trace = demo_run
    sent, recv = types(trace, "sent"), types(trace, "recv")
    assert sent[0] == "session.update"
    assert sent.count("input_audio_buffer.append") >= 20
    expected = [
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.done",
    ]
    position = 0
    for kind in recv:
        if position < len(expected) and kind == expected[position]:
            position += 1
    assert position == len(expected), f"missing {expected[position:]} in {recv}"
    done = next(line["event"] for line in trace if line["event"].get("type") == "response.done")
    assert done["response"]["status"] == "completed"
    assert done["response"]["usage"]["output_token_details"]["audio_tokens"] > 0


def test_audio_is_sent_only_after_the_session_is_configured(
    demo_run: tuple[DemoResult, list[dict[str, Any]]],
) -> None:
    _, trace = demo_run
    kinds = [(line["dir"], line["event"].get("type")) for line in trace]
    updated = kinds.index(("recv", "session.updated"))
    first_append = kinds.index(("sent", "input_audio_buffer.append"))
    assert first_append > updated


def test_every_event_is_ga_valid(demo_run: tuple[DemoResult, list[dict[str, Any]]]) -> None:
    _, trace = demo_run
    problems = []
    for line in trace:
        check = client_problems if line["dir"] == "sent" else server_problems
        problems += check(line["event"])
    assert problems == []


def test_trace_lines_have_direction_time_and_event(
    demo_run: tuple[DemoResult, list[dict[str, Any]]],
) -> None:
    _, trace = demo_run
    times = [line["t"] for line in trace]
    assert all(set(line) == {"dir", "t", "event"} for line in trace)
    assert times == sorted(times)


def test_the_key_never_reaches_the_trace(demo_run: tuple[DemoResult, list[dict[str, Any]]]) -> None:
    _, trace = demo_run
    assert LOCAL_KEY not in json.dumps(trace)


def test_timeline_shows_turn_latencies(demo_run: tuple[DemoResult, list[dict[str, Any]]]) -> None:
    result, _ = demo_run
    (turn,) = result.timeline.turns()
    assert turn.first_delta_to_dac_ms is not None and turn.first_delta_to_dac_ms >= 0
    assert turn.speech_end_to_dac_ms is not None and turn.speech_end_to_dac_ms > 0
    assert "turn 1:" in result.timeline.render()


def test_demo_command_writes_wav_and_trace(tmp_path: Path) -> None:
    env = {**os.environ, "EDGEVOICE_CONFIG": ""}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "device",
            "demo",
            "--speed",
            "4",
            "--output",
            str(tmp_path / "r.wav"),
            "--trace",
            str(tmp_path / "t.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "turn 1:" in proc.stdout and "reply WAV" in proc.stdout
    assert (tmp_path / "r.wav").stat().st_size > 10_000
    assert len(read_trace(tmp_path / "t.jsonl")) > 20


def test_demo_with_faults_reports_them_and_still_answers(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "device",
            "demo",
            "--speed",
            "4",
            "--output",
            str(tmp_path / "r.wav"),
            "--fault",
            "garbage@session.updated",
            "--fault",
            "error:server_error@response.created",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fault fired: garbage@session.updated" in proc.stdout
    assert "fault fired: error@response.created" in proc.stdout  # the shortest spec
    assert "ignored a bad frame" in proc.stderr


def test_demo_rejects_a_bad_fault_spec_with_the_grammar() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "device", "demo", "--fault", "explode@now"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "bad fault 'explode@now'" in proc.stderr and "KIND" in proc.stderr
