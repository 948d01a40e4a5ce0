"""The speaker must never hear itself: with the fake loudspeaker feeding its own
reply back into the mics, the echo canceller keeps the reply from interrupting
itself, even though the microphone now streams while the device speaks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from device import timeline as tl
from device.config import load_config, with_overrides
from device.demo import DemoResult, run_conversation, shipped_question
from device.trace import read_trace

pytestmark = pytest.mark.slow


def run(tmp_path: Path, aec: str, echo_gain: float) -> tuple[DemoResult, list[dict[str, Any]]]:
    config = with_overrides(load_config(None), audio={"aec": aec})
    result = asyncio.run(
        run_conversation(
            config,
            shipped_question(),
            tmp_path / "reply.wav",
            trace_path=tmp_path / "trace.jsonl",
            speed=3.0,
            timeout_s=40.0,
            echo_gain=echo_gain,
        )
    )
    return result, read_trace(tmp_path / "trace.jsonl")


def speech_starts(trace: list[dict[str, Any]]) -> int:
    return sum(
        1 for line in trace if line["event"].get("type") == "input_audio_buffer.speech_started"
    )


def appends_while_playing(result: DemoResult, trace: list[dict[str, Any]]) -> int:
    """Appends sent between the first reply sample at the DAC and the end of playback
    (trace and timeline share the monotonic clock)."""
    marks = {m.name: m.at_s for m in result.timeline.marks}
    start, end = marks[tl.FIRST_DAC_SAMPLE], marks[tl.PLAYBACK_FINISHED]
    return sum(
        1
        for line in trace
        if line["event"].get("type") == "input_audio_buffer.append" and start < line["t"] < end
    )


def test_loud_echo_does_not_interrupt_the_reply(tmp_path: Path) -> None:
    result, trace = run(tmp_path, "ours", echo_gain=0.5)
    assert result.replies == 1
    assert speech_starts(trace) == 1  # only the user's question, never the echo
    done = [line["event"] for line in trace if line["event"].get("type") == "response.done"]
    assert [d["response"]["status"] for d in done] == ["completed"]


def test_without_cancellation_the_mic_is_held_while_speaking(tmp_path: Path) -> None:
    result, trace = run(tmp_path, "none", echo_gain=0.5)
    assert speech_starts(trace) == 1
    assert appends_while_playing(result, trace) == 0
