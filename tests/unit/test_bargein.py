"""The local barge-in detector: user speech over the reply, never the reply's own echo."""

from __future__ import annotations

import numpy as np

from device.audio.bargein import BargeInDetector, BargeInSettings, frame_power

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
