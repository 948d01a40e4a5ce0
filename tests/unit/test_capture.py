"""The capture pipeline streams speech (with pre-roll) and leaves silence out."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pytest

from device.audio.capture import API_BYTES_PER_MS, CapturePipeline, GateSettings
from hw.fake import read_wav_mono

RATE_HZ = 16000


def shipped_question() -> Path:
    return Path(str(importlib.resources.files("device") / "data" / "question.wav"))


def question_with_silence(lead_s: float = 1.0, tail_s: float = 2.0) -> np.ndarray:
    speech = read_wav_mono(shipped_question(), RATE_HZ)
    return np.concatenate(
        [
            np.zeros(int(lead_s * RATE_HZ), np.int16),
            speech,
            np.zeros(int(tail_s * RATE_HZ), np.int16),
        ]
    )


def run_blocks(pipeline: CapturePipeline, audio: np.ndarray, block: int = 320) -> list:
    return [pipeline.process(audio[i : i + block]) for i in range(0, len(audio), block)]


def test_silence_is_not_streamed() -> None:
    pipeline = CapturePipeline(RATE_HZ, GateSettings())
    results = run_blocks(pipeline, np.zeros(RATE_HZ * 3, np.int16))
    assert all(not r.chunks and not r.speech_started for r in results)


def test_speech_is_streamed_once_with_pre_roll_and_hangover() -> None:
    settings = GateSettings(pre_roll_ms=300, hangover_ms=800)
    pipeline = CapturePipeline(RATE_HZ, settings, send_chunk_ms=40)
    results = run_blocks(pipeline, question_with_silence())
    started = [i for i, r in enumerate(results) if r.speech_started]
    stopped = [i for i, r in enumerate(results) if r.speech_stopped]
    assert len(started) >= 1 and len(stopped) == len(started)
    # speech begins 1 s in: the gate opens shortly after, never before
    assert 1.0 <= started[0] * 0.02 <= 1.3
    sent = b"".join(c for r in results for c in r.chunks)
    sent_ms = len(sent) / API_BYTES_PER_MS
    speech_ms = 2420
    # speech + pre-roll + hangover, but far less than the 5.4 s fed in
    assert speech_ms <= sent_ms <= speech_ms + 300 + 800 + 200 * len(started)
    # full chunks of 40 ms except the flush at each close
    sizes = [len(c) for r in results for c in r.chunks]
    assert all(s == 40 * API_BYTES_PER_MS for s in sizes[:-1])
    assert all(s % 2 == 0 for s in sizes)


def test_onset_offset_points_back_to_speech_start() -> None:
    pipeline = CapturePipeline(RATE_HZ, GateSettings(start_ms=60))
    results = run_blocks(pipeline, question_with_silence(lead_s=1.0))
    index = next(i for i, r in enumerate(results) if r.speech_started)
    onset_s = (index + 1) * 0.02 - results[index].onset_offset_ms / 1000
    assert 0.95 <= onset_s <= 1.15


def test_streamed_audio_is_the_speech_at_24k() -> None:
    pipeline = CapturePipeline(RATE_HZ, GateSettings())
    results = run_blocks(pipeline, question_with_silence())
    sent = np.frombuffer(b"".join(c for r in results for c in r.chunks), "<i2")
    speech = read_wav_mono(shipped_question(), 24000)
    # same loudness as the original speech (resampling keeps the level)
    rms_sent = np.sqrt(np.mean(sent.astype(float) ** 2))
    rms_speech = np.sqrt(np.mean(speech.astype(float) ** 2))
    assert 0.5 < rms_sent / rms_speech < 1.5


def test_reset_forgets_audio_in_flight() -> None:
    pipeline = CapturePipeline(RATE_HZ, GateSettings())
    audio = question_with_silence(lead_s=0.2, tail_s=0)
    run_blocks(pipeline, audio[:RATE_HZ])  # mid-speech
    assert pipeline.is_open
    pipeline.reset()
    assert not pipeline.is_open
    assert not pipeline.process(np.zeros(320, np.int16)).chunks


def test_echo_canceller_is_trusted_only_after_warm_up() -> None:
    from device.audio.capture import AEC_WARMUP_MS

    pipeline = CapturePipeline(RATE_HZ, GateSettings(), aec="ours")
    far_end = (3000 * np.sin(np.arange(320) * 0.3)).astype(np.int16)
    silence = np.zeros(320, np.int16)
    for _ in range(AEC_WARMUP_MS // 20 - 1):
        pipeline.process(silence, far_end)
        assert not pipeline.cancels_echo
    pipeline.process(silence, silence)  # no far-end: no progress
    assert not pipeline.cancels_echo
    pipeline.process(silence, far_end)
    assert pipeline.cancels_echo
    pipeline.reset()
    assert not pipeline.cancels_echo


def test_no_canceller_is_never_trusted_while_speaking() -> None:
    pipeline = CapturePipeline(RATE_HZ, GateSettings(), aec="none")
    far_end = np.full(320, 3000, np.int16)
    for _ in range(100):
        pipeline.process(np.zeros(320, np.int16), far_end)
    assert not pipeline.cancels_echo


@pytest.mark.parametrize("backend", ["webrtc", "silero"])
def test_each_voice_detector_opens_the_gate_on_speech_only(backend: str) -> None:
    from device.audio.vad_backends import VadUnavailable

    try:
        pipeline = CapturePipeline(RATE_HZ, GateSettings(), vad=backend)
    except VadUnavailable as exc:
        pytest.skip(str(exc))
    results = run_blocks(pipeline, question_with_silence(lead_s=1.0, tail_s=2.0))
    started = [i for i, r in enumerate(results) if r.speech_started]
    assert started and 0.9 <= started[0] * 0.02 <= 1.3
    quiet = CapturePipeline(RATE_HZ, GateSettings(), vad=backend)
    assert not any(r.speech_started for r in run_blocks(quiet, np.zeros(RATE_HZ * 2, np.int16)))
