"""The local barge-in detector: user speech over the reply, never the reply's own echo."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from device.audio.bargein import ONSET_HOLD_MS, BargeInDetector, BargeInSettings, frame_power

ECHO = 1e6  # power of the echo at the mic (about -30 dBFS)
NOISE = 1e2  # the room's noise at the mic (-70 dBFS)
# Before the device talks the room is heard: the detector learns its noise floor.
QUIET = [(False, NOISE, NOISE)] * 30


def db_below(power: float, db: float) -> float:
    return power * 10.0 ** (-db / 10.0)


def run(detector: BargeInDetector, frames: list[tuple[bool, float, float]]) -> list[int]:
    """Indices (after the quiet start) of the frames barge-in fired on."""
    fired = [i for i, frame in enumerate(QUIET + frames) if detector.process(*frame)]
    return [i - len(QUIET) for i in fired]


def test_frame_power_is_the_mean_square() -> None:
    assert frame_power(np.full(160, 100, np.int16)) == 10000.0
    assert frame_power(np.zeros(160, np.int16)) == 0.0


def test_residual_echo_called_speech_never_interrupts() -> None:
    """The voice detector fires on residual echo 30 dB down: the guard refuses it."""
    detector = BargeInDetector(BargeInSettings(min_speech_ms=80, echo_margin_db=20.0))
    residual = db_below(ECHO, 30.0)
    frames = [(True, ECHO + residual, residual)] * 500
    assert run(detector, frames) == []
    assert detector.frames_guarded == 500


def test_a_pause_of_the_reply_is_judged_against_the_syllable_before_it() -> None:
    """The distortion of a loud syllable rings on in the room after the echo estimate
    fell: the loudest echo of the last 200 ms is the yardstick."""
    detector = BargeInDetector(BargeInSettings(min_speech_ms=50, echo_margin_db=20.0))
    residual = db_below(ECHO, 25.0)
    syllable = [(True, ECHO + residual, residual)] * 5
    ringing = [(True, db_below(ECHO, 24.0), db_below(ECHO, 25.0))] * 15  # under 200 ms
    assert run(detector, (syllable + ringing) * 10) == []


def test_the_room_noise_coming_back_in_a_pause_does_not_interrupt() -> None:
    """Cancellers suppress the noise while the device talks and let it back in its
    pauses; the voice detector takes the return for speech. The noise floor guard,
    learnt on the microphone, does not."""
    detector = BargeInDetector(BargeInSettings(min_speech_ms=50, echo_margin_db=20.0))
    room = 1e4  # -50 dBFS of room noise
    talking = [(True, ECHO + room, 1.0)] * 30  # noise suppressed with the echo
    pause = [(True, room, room)] * 40  # the noise is back: "speech"
    frames = [(False, room, room)] * 30 + (talking + pause) * 5
    assert not any(detector.process(*frame) for frame in frames)


def test_a_user_10_db_under_the_echo_interrupts_after_the_minimum_speech() -> None:
    detector = BargeInDetector(BargeInSettings(min_speech_ms=80, echo_margin_db=20.0))
    user = db_below(ECHO, 10.0)
    residual = db_below(ECHO, 30.0)
    frames = [(True, ECHO + residual, residual)] * 20  # echo only, VAD fooled
    frames += [(True, ECHO + user, user + residual)] * 30
    assert run(detector, frames) == [20 + 8 - 1]  # the 8th guarded frame, once


def test_a_user_barely_above_the_room_noise_cannot_interrupt() -> None:
    """The price of the noise floor guard: 15 dB above the room is needed."""
    detector = BargeInDetector(BargeInSettings(min_speech_ms=50))
    whisper = NOISE * 10  # 10 dB above the room
    assert run(detector, [(True, ECHO + whisper, whisper)] * 50) == []


def test_it_fires_again_only_after_the_speech_ended() -> None:
    detector = BargeInDetector(BargeInSettings(min_speech_ms=50))
    user = db_below(ECHO, 6.0)
    talk = [(True, ECHO + user, user)] * 10
    pause = [(False, ECHO, db_below(ECHO, 35.0))] * 3
    assert run(detector, talk + pause + talk) == [4, 10 + 3 + 4]


def test_short_gaps_inside_the_speech_do_not_restart_the_count() -> None:
    detector = BargeInDetector(BargeInSettings(min_speech_ms=60, echo_margin_db=20.0))
    user, weak = db_below(ECHO, 10.0), db_below(ECHO, 40.0)
    frames = []
    for _ in range(6):  # phonemes: guarded, then a frame where only echo is left
        frames += [(True, ECHO + user, user), (True, ECHO + weak, weak)]
    fired = run(detector, frames)
    assert fired == [10]  # the 6th guarded frame, inside a window of 12


def test_a_cough_shorter_than_the_minimum_does_not_interrupt() -> None:
    detector = BargeInDetector(BargeInSettings(min_speech_ms=200))
    user = db_below(ECHO, 3.0)
    frames = [(True, ECHO + user, user)] * 15 + [(False, ECHO, 0.0)] * 5
    assert run(detector, frames * 4) == []


def test_without_echo_speech_above_the_room_passes_the_guard() -> None:
    detector = BargeInDetector(BargeInSettings(min_speech_ms=30))
    assert run(detector, [(True, 1e4, 1e4)] * 3) == [2]


def test_while_the_device_is_silent_nothing_fires_and_the_floor_is_learnt() -> None:
    detector = BargeInDetector(BargeInSettings(min_speech_ms=30))
    loud_room = [(True, 1e5, 1e5)] * 40  # a room at -40 dBFS, device silent
    assert not any(detector.process(*f, active=False) for f in loud_room)
    for _ in range(ONSET_HOLD_MS // 10):  # the device starts to talk, nobody else
        assert not detector.process(False, ECHO, 1e3)
    # once the device talks, speech must clear that floor by 15 dB
    assert not any(detector.process(True, ECHO + 1e6, 1e6) for _ in range(2))  # 10 dB over
    fired = [detector.process(True, ECHO + 1e7, 1e7) for _ in range(3)]  # 20 dB over it
    assert fired == [False, False, True]


def test_reset_forgets_the_run() -> None:
    detector = BargeInDetector(BargeInSettings(min_speech_ms=50))
    for frame in QUIET:
        detector.process(*frame)
    for _ in range(4):
        detector.process(True, 1e4, 1e4)
    detector.reset()
    assert run(detector, [(True, 1e4, 1e4)] * 4) == []


def voiced(frames: int, amplitude: float) -> npt.NDArray[np.int16]:
    """A vowel-like harmonic complex (140 Hz), 10 ms frames of 16 kHz back to back."""
    t = np.arange(frames * 160) / 16000
    x = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20))
    return np.asarray(x / np.abs(x).max() * amplitude, dtype=np.int16)


def test_a_voiced_frame_counts_before_the_gate_calls_it_speech() -> None:
    """The gate's voice detector smooths its verdict; the detector's own per-frame
    webrtcvad call does not wait for it, and the guards still judge every frame."""
    detector = BargeInDetector(BargeInSettings(min_speech_ms=30, echo_margin_db=20.0))
    quiet = np.zeros(160, np.int16) + 3  # the room before the device talks
    for _ in range(30):
        detector.frame(quiet, quiet, False, active=False)
    talking = voiced(ONSET_HOLD_MS // 10, 9500.0)
    for i in range(0, len(talking), 160):  # the device talks alone first
        assert not detector.frame(talking[i : i + 160], quiet, False)
    user = voiced(10, 3000.0)
    echo = voiced(10, 9500.0)[::-1].copy()  # the device, 10 dB louder at the mic
    fired = [
        detector.frame(echo[i : i + 160] + user[i : i + 160], user[i : i + 160], False)
        for i in range(0, 1600, 160)
    ]
    assert fired.index(True) == 2  # the 3rd voiced, guarded frame, the gate still silent
    assert fired.count(True) == 1


def test_the_own_verdict_does_not_let_the_echo_through() -> None:
    """What the canceller left of the device's voice is voiced too, but 30 dB under the
    echo: the echo guard refuses it whoever calls it speech."""
    detector = BargeInDetector(BargeInSettings(min_speech_ms=30, echo_margin_db=20.0))
    quiet = np.zeros(160, np.int16) + 3
    for _ in range(30):
        detector.frame(quiet, quiet, False, active=False)
    echo = voiced(200, 9500.0)
    residual = (echo.astype(np.float32) * 10 ** (-30 / 20)).astype(np.int16)
    fired = [
        detector.frame(echo[i : i + 160], residual[i : i + 160], True)
        for i in range(0, len(echo), 160)
    ]
    assert not any(fired)
    assert detector.frames_guarded == 200


def test_the_default_minimum_is_three_frames_within_six() -> None:
    detector = BargeInDetector(BargeInSettings())
    user, weak = db_below(ECHO, 10.0), db_below(ECHO, 40.0)
    frames = [(True, ECHO + user, user), (True, ECHO + weak, weak)] * 3
    assert run(detector, frames) == [4]  # the 3rd guarded frame, 5 frames in


def test_nothing_fires_before_the_echo_estimate_has_a_past() -> None:
    """The first frames of a reply, let through by a canceller the user's last words
    misadjusted, look like speech over a quiet echo: barge-in waits ONSET_HOLD_MS, and
    then fires if the speech goes on."""
    detector = BargeInDetector(BargeInSettings(min_speech_ms=30))
    for frame in QUIET:
        detector.process(*frame, active=False)
    leak = [(True, ECHO, db_below(ECHO, 3.0))] * 30  # the echo, hardly cancelled
    fired = [i for i, frame in enumerate(leak) if detector.process(*frame)]
    assert fired == [ONSET_HOLD_MS // 10]  # counted from the start, decided after the hold
    detector.reset()
    short_leak = leak[: ONSET_HOLD_MS // 10]  # the canceller catches up in time
    assert not any(detector.process(*frame) for frame in short_leak)
