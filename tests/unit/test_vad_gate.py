"""The voice gate: exact hysteresis with a scripted classifier, then real webrtcvad."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from device.audio.frames import Framer, Pcm
from device.audio.resample import resample
from device.audio.vad import RESET_SETTLE_MS, GateOutput, SpeechClassifier, VadGate

RATE_HZ = 16000
FRAME = 160  # 10 ms at 16 kHz


def numbered(index: int) -> Pcm:
    """A frame whose samples all hold its index, so emitted audio can be traced."""
    return np.full(FRAME, index, dtype=np.int16)


def scripted(pattern: str) -> SpeechClassifier:
    """Classifier that reads the frame's index and answers from ``pattern`` ('S' = speech)."""

    def classify(frame: bytes, rate_hz: int) -> bool:
        assert rate_hz == RATE_HZ
        assert len(frame) == 2 * FRAME
        index = int.from_bytes(frame[:2], "little", signed=True)
        return pattern[index] == "S"

    return classify


def run(pattern: str, **kwargs: int) -> list[GateOutput]:
    """Feed one numbered frame per pattern character.

    Defaults: start 3 frames, pre-roll 5 frames, hangover 4 frames."""
    params = {"start_ms": 30, "pre_roll_ms": 50, "hangover_ms": 40, **kwargs}
    gate = VadGate(RATE_HZ, classifier=scripted(pattern), **params)
    return [gate.process(numbered(i)) for i in range(len(pattern))]


def indices(frames: list[Pcm]) -> list[int]:
    assert all(f.shape == (FRAME,) and f.dtype == np.int16 for f in frames)
    return [int(f[0]) for f in frames]


def test_isolated_speech_frames_never_open() -> None:
    outs = run("..S..SS..S.SS....")
    assert not any(o.is_open or o.opened for o in outs)
    assert all(o.frames == [] for o in outs)
    assert [o.is_speech for o in outs] == [c == "S" for c in "..S..SS..S.SS...."]


def test_opens_after_start_run_with_pre_roll_in_order() -> None:
    outs = run("........SSS...")
    for o in outs[:10]:
        assert not o.opened and o.frames == []
    opening = outs[10]
    assert opening.opened and opening.is_open and not opening.closed
    assert opening.onset_frame == 8
    # five frames of pre-roll (three quiet, two speech), then the frame that confirmed it
    assert indices(opening.frames) == [5, 6, 7, 8, 9, 10]
    assert indices(outs[11].frames) == [11]
    assert outs[11].onset_frame is None and not outs[11].opened


def test_pre_roll_shorter_than_start_still_keeps_the_confirming_speech() -> None:
    outs = run("....SSS", pre_roll_ms=0)
    assert outs[6].opened
    assert indices(outs[6].frames) == [4, 5, 6]


def test_pre_roll_at_stream_start_is_what_exists() -> None:
    outs = run(".SSS")
    assert outs[3].opened
    assert indices(outs[3].frames) == [0, 1, 2, 3]
    assert outs[3].onset_frame == 1


def test_broken_run_restarts_count() -> None:
    outs = run("SS.SS.SSS")
    opened_at = [i for i, o in enumerate(outs) if o.opened]
    assert opened_at == [8]
    assert outs[8].onset_frame == 6
    assert indices(outs[8].frames) == [3, 4, 5, 6, 7, 8]


def test_hangover_keeps_open_through_pauses_and_closes_on_last_frame() -> None:
    pattern = "SSS" + "..." + "S" + "...." + ".."
    outs = run(pattern)
    assert outs[2].opened
    # three quiet frames (< 4) then speech: still open, everything streamed
    for i in range(3, 7):
        assert outs[i].is_open and indices(outs[i].frames) == [i]
    for i in range(7, 10):
        assert outs[i].is_open and not outs[i].closed
    closing = outs[10]
    assert closing.closed and not closing.is_open and not closing.opened
    assert indices(closing.frames) == [10]  # the last hangover frame is still streamed
    assert outs[11].frames == [] and not outs[11].is_open


def test_reopening_never_repeats_streamed_frames() -> None:
    pattern = "SSS....S.SSS"
    outs = run(pattern)
    assert outs[6].closed
    assert outs[11].opened
    # The ring only holds frames after the close, not the ones already streamed.
    assert indices(outs[11].frames) == [7, 8, 9, 10, 11]
    streamed = [i for o in outs for i in indices(o.frames)]
    assert streamed == sorted(set(streamed))


def test_pre_roll_ring_is_bounded() -> None:
    outs = run("." * 200 + "SSS", pre_roll_ms=50)
    assert indices(outs[-1].frames) == [197, 198, 199, 200, 201, 202]  # 5 + the current


def test_reset_closes_and_forgets() -> None:
    pattern = "SSSS" + "..." + "SSS"
    gate = VadGate(RATE_HZ, classifier=scripted(pattern), start_ms=30, pre_roll_ms=50)
    for i in range(4):
        gate.process(numbered(i))
    assert gate.is_open and gate.frames_seen == 4
    gate.reset()
    assert not gate.is_open and gate.frames_seen == 0
    gate.process(numbered(4))
    gate.reset()  # the ring held frame 4; it must not come back as pre-roll
    outs = [gate.process(numbered(i)) for i in range(5, 10)]
    assert [o.opened for o in outs] == [False, False, False, False, True]
    assert outs[4].onset_frame == 2  # counted from the reset, not from creation
    assert indices(outs[4].frames) == [5, 6, 7, 8, 9]
    assert gate.frames_seen == 5


def test_frame_properties() -> None:
    gate = VadGate(48000, frame_ms=20, classifier=lambda _f, _r: False)
    assert gate.frame_frames == 960
    assert gate.frames_seen == 0 and not gate.is_open
    gate.process(np.zeros(960, dtype=np.int16))
    assert gate.frames_seen == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate_hz": 44100}, "webrtcvad"),
        ({"rate_hz": 24000}, "webrtcvad"),
        ({"frame_ms": 15}, "frame_ms"),
        ({"aggressiveness": 4}, "aggressiveness"),
        ({"aggressiveness": -1}, "aggressiveness"),
        ({"start_ms": 25}, "start_ms"),
        ({"start_ms": 0}, "start_ms"),
        ({"pre_roll_ms": 305}, "pre_roll_ms"),
        ({"hangover_ms": 805}, "hangover_ms"),
        ({"hangover_ms": -10}, "hangover_ms"),
        ({"frame_ms": 20, "start_ms": 30}, "start_ms"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, int], match: str) -> None:
    params: dict[str, int] = {"rate_hz": RATE_HZ, **kwargs}
    with pytest.raises(ValueError, match=match):
        VadGate(**params)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros(FRAME - 1, dtype=np.int16),
        np.zeros(FRAME + 1, dtype=np.int16),
        np.zeros(FRAME, dtype=np.float32),
        np.zeros((FRAME, 2), dtype=np.int16),
    ],
)
def test_wrong_frame_is_rejected(frame: Pcm) -> None:
    gate = VadGate(RATE_HZ, classifier=lambda _f, _r: True)
    with pytest.raises(ValueError):
        gate.process(frame)
    assert gate.frames_seen == 0


def test_emitted_frames_are_copies() -> None:
    gate = VadGate(RATE_HZ, classifier=lambda _f, _r: True, start_ms=10)
    frame = numbered(7)
    out = gate.process(frame)
    frame[:] = 0
    assert indices(out.frames) == [7]


# --- the real classifier -------------------------------------------------------------


def gate_run(signal: Pcm, rate_hz: int, aggressiveness: int = 2) -> list[GateOutput]:
    gate = VadGate(rate_hz, aggressiveness=aggressiveness)
    return [gate.process(f) for f in Framer(gate.frame_frames).push(signal)]


def voiced(rate_hz: int, seconds: float) -> Pcm:
    """A vowel-like signal: harmonics of 150 Hz, amplitude modulated at a syllable rate."""
    t = np.arange(round(rate_hz * seconds)) / rate_hz
    wave_ = np.zeros_like(t)
    for k in range(1, 20):
        wave_ += np.sin(2 * np.pi * 150 * k * t) / k
    wave_ *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    peak = float(np.max(np.abs(wave_)))
    return np.rint(wave_ * (0.4 * 32767 / peak)).astype(np.int16)


@pytest.mark.parametrize("rate_hz", [8000, 16000, 32000, 48000])
@pytest.mark.parametrize("aggressiveness", [0, 3])
def test_real_vad_keeps_silence_closed(rate_hz: int, aggressiveness: int) -> None:
    outs = gate_run(np.zeros(rate_hz * 2, dtype=np.int16), rate_hz, aggressiveness)
    assert len(outs) == 200
    assert not any(o.is_speech or o.is_open for o in outs)


@pytest.mark.parametrize("rate_hz", [16000, 48000])
def test_real_vad_opens_on_voiced_signal(rate_hz: int) -> None:
    lead = np.zeros(rate_hz // 2, dtype=np.int16)
    outs = gate_run(np.concatenate([lead, voiced(rate_hz, 1.5), lead, lead]), rate_hz)
    opened = [i for i, o in enumerate(outs) if o.opened]
    assert len(opened) == 1
    assert 50 <= opened[0] < 80  # within 300 ms of the onset at frame 50
    onset = outs[opened[0]].onset_frame
    assert onset is not None and 50 <= onset <= opened[0]
    assert any(o.closed for o in outs[opened[0] :])  # 1 s of silence outlasts the hangover


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_real_vad_on_synthesized_speech(tmp_path: Path) -> None:
    wav_path = tmp_path / "utterance.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(wav_path), "Hello there, please turn on the kitchen lights."],
        check=True,
        capture_output=True,
    )
    with wave.open(str(wav_path)) as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        rate_hz = wav.getframerate()
        speech = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    speech = resample(speech, rate_hz, RATE_HZ)
    silence = np.zeros(RATE_HZ, dtype=np.int16)
    outs = gate_run(np.concatenate([silence, speech, silence, silence]), RATE_HZ)
    speech_end_frame = 100 + speech.shape[0] // FRAME
    opened = [i for i, o in enumerate(outs) if o.opened]
    closed = [i for i, o in enumerate(outs) if o.closed]
    assert len(opened) == 1 and len(closed) == 1
    onset = outs[opened[0]].onset_frame
    assert onset is not None and 100 <= onset < 140
    assert opened[0] < closed[0] <= speech_end_frame + 80  # 800 ms hangover after speech
    streamed = sum(len(o.frames) for o in outs)
    assert streamed == closed[0] - opened[0] + len(outs[opened[0]].frames)


def test_speech_going_on_at_a_reset_does_not_reopen_the_gate() -> None:
    """The rest of a wake word (or the echo that held the gate open) is still speech
    after a reset: the gate waits for a pause before it counts speech again."""
    pattern = "SSSS" + "SSSSSS" + "." + "SSS"
    gate = VadGate(RATE_HZ, classifier=scripted(pattern), start_ms=30, pre_roll_ms=50)
    for i in range(4):
        gate.process(numbered(i))
    assert gate.is_open
    gate.reset()
    outs = [gate.process(numbered(i)) for i in range(4, len(pattern))]
    assert [o.is_speech for o in outs] == [c == "S" for c in pattern[4:]]  # verdicts kept
    assert [o.opened for o in outs] == [False] * 9 + [True]
    assert indices(outs[-1].frames) == [8, 9, 10, 11, 12, 13]  # pre-roll: the pause and more


def test_a_reset_waits_for_a_pause_only_so_long() -> None:
    """Speech that never pauses (a user who talked on through a reset) is not lost:
    after ``RESET_SETTLE_MS`` it counts again, with its pre-roll."""
    settle = RESET_SETTLE_MS // 10
    gate = VadGate(RATE_HZ, classifier=lambda _f, _r: True, start_ms=30, pre_roll_ms=50)
    gate.process(numbered(0))
    gate.reset()
    outs = [gate.process(numbered(i)) for i in range(1, settle + 4)]
    opened = [i for i, o in enumerate(outs) if o.opened]
    assert opened == [settle + 2]  # settle frames ignored, then three to confirm
    assert len(outs[opened[0]].frames) == 6  # five frames of pre-roll and the current one
