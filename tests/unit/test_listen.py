"""Listening on the real capture pipeline: the wake word gates the stream, the device's
own voice is held back, and user speech over the reply barges in."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest

from device.audio.capture import AEC_WARMUP_MS, CapturePipeline, CaptureResult, GateSettings, Tap
from device.audio.frames import Pcm
from device.audio.wakeword import make_detector
from device.config_listen import ListenConfig
from device.demo import shipped_question
from device.demo_listen import shipped_wake_word
from device.listen import Heard, Listening
from hw.fake import read_wav_mono

RATE_HZ = 16000
BLOCK = RATE_HZ // 50  # 20 ms blocks, as the default audio.block_ms
API_BYTES_PER_S = 48000
ECHO_DELAY = 80  # 5 ms, the fake loudspeaker's path


@dataclass
class Run:
    heard: list[Heard] = field(default_factory=list)
    sent: list[tuple[float, int]] = field(default_factory=list)  # (block end s, bytes)

    @property
    def sent_s(self) -> float:
        return sum(n for _, n in self.sent) / API_BYTES_PER_S

    def count(self, what: str) -> int:
        return sum(bool(getattr(h, what)) for h in self.heard)

    def first(self, what: str) -> float:
        return next(i for i, h in enumerate(self.heard) if getattr(h, what)) * BLOCK / RATE_HZ


def pipeline(aec: str = "ours") -> CapturePipeline:
    return CapturePipeline(RATE_HZ, GateSettings(), 40, aec, "webrtc")


def listening(mode: str = "wake_word", **keys: object) -> Listening:
    settings = ListenConfig(mode=mode, **keys)  # type: ignore[arg-type]
    wake = None
    if mode == "wake_word":
        wake = make_detector("okay_nabu", None, RATE_HZ, refractory_s=2.0, source="test")
    return Listening(settings, wake=wake, send_chunk_ms=40)


def drive(
    capture: CapturePipeline,
    listen: Listening,
    mic: Pcm,
    reference: Pcm | None = None,
    *,
    playing: Pcm | None = None,  # per sample: reply audio queued at that time
    muted: bool = False,
) -> Run:
    run = Run()
    ref = np.zeros_like(mic) if reference is None else reference
    for start in range(0, len(mic) - BLOCK + 1, BLOCK):
        result = capture.process(mic[start : start + BLOCK], ref[start : start + BLOCK])
        is_playing = playing is not None and bool(playing[start : start + BLOCK].any())
        heard = listen.block(
            result,
            playing=is_playing,
            muted=muted,
            cancels_echo=capture.cancels_echo,
            gate_open=capture.is_open,
        )
        if heard.restart_gate:
            capture.restart_gate()
        if heard.wake:
            capture.restart_gate()  # what the daemon does when the activation is dispatched
            listen.activated()
        run.heard.append(heard)
        if heard.chunks:
            run.sent.append(((start + BLOCK) / RATE_HZ, sum(len(c) for c in heard.chunks)))
    return run


def silence(seconds: float) -> Pcm:
    return np.zeros(int(seconds * RATE_HZ), np.int16)


@pytest.fixture(scope="module")
def question() -> Pcm:
    return read_wav_mono(shipped_question(), RATE_HZ)


@pytest.fixture(scope="module")
def wake_word() -> Pcm:
    return read_wav_mono(shipped_wake_word("okay_nabu"), RATE_HZ)


def test_nothing_is_streamed_before_the_wake_word(question: Pcm, wake_word: Pcm) -> None:
    mic = np.concatenate(
        [silence(0.5), question, silence(1.0), wake_word, silence(0.4), question, silence(1.5)]
    )
    run = drive(pipeline(), listening(), mic)
    assert run.count("wake") == 1
    wake_s = run.first("wake")
    assert wake_s > 0.5 + len(question) / RATE_HZ + 1.0  # the second, spoken one
    assert run.sent and run.sent[0][0] > wake_s  # not a byte before it
    assert sum(h.dropped_asleep for h in run.heard) > 0  # the first question was heard, dropped


def test_after_the_wake_word_the_question_goes_out_but_not_the_wake_word(
    question: Pcm, wake_word: Pcm
) -> None:
    mic = np.concatenate([silence(0.5), wake_word, silence(0.4), question, silence(1.5)])
    run = drive(pipeline(), listening(), mic)
    question_s = len(question) / RATE_HZ
    # The question, its pre-roll (300 ms) and the gate's hangover (800 ms): the
    # wake word (1 s) would not fit in what was sent.
    assert question_s - 0.3 < run.sent_s < question_s + 0.3 + 0.8 + 0.1


def test_always_mode_streams_speech_without_a_wake_word(question: Pcm) -> None:
    run = drive(
        pipeline(), listening("always"), np.concatenate([silence(0.5), question, silence(1.5)])
    )
    assert run.sent_s > len(question) / RATE_HZ - 0.3
    assert run.count("wake") == 0


def test_muted_wins_over_the_wake_word(question: Pcm, wake_word: Pcm) -> None:
    listen = listening()
    listen.activated()  # even an open activation ends
    mic = np.concatenate([silence(0.5), wake_word, silence(0.4), question, silence(1.5)])
    run = drive(pipeline(), listen, mic, muted=True)
    assert run.count("wake") == 0 and run.count("barge_in") == 0
    assert not listen.activation.is_open
    assert listen.held_chunks == 0
    # the chunks go on, only for the daemon to count them dropped for the mute
    assert all(h.dropped_asleep == 0 for h in run.heard)


def loudspeaker_in_a_room(reference: Pcm, gain: float) -> npt.NDArray[np.float64]:
    """A small loudspeaker driven into clipping next to the mics, and a room tail: the
    distortion is what no linear canceller removes, and it fools the voice detector."""
    x = reference.astype(np.float64) / 32768.0
    driven = np.tanh(2.0 * x) / 2.0
    rng = np.random.default_rng(1)
    n = RATE_HZ // 4
    room = rng.normal(0.0, 0.05, n) * np.exp(-np.arange(n) / (0.05 * RATE_HZ))
    room[0] = 1.0
    wet = np.convolve(driven, room)[: len(x)] * 32768.0 * gain
    echo = np.zeros(len(x))
    echo[ECHO_DELAY:] = wet[:-ECHO_DELAY]
    return echo


def echo_scene(
    reply: Pcm, user: Pcm | None, user_at_s: float, gain: float = 1.0
) -> tuple[Pcm, Pcm, Pcm]:
    """mic, reference, playing: the reply played from 0.5 s, its echo at ``gain``."""
    lead = silence(0.5)
    reference = np.concatenate([lead, reply, silence(1.5)])
    echo = loudspeaker_in_a_room(reference, gain)
    mic = echo
    if user is not None:
        at = int(user_at_s * RATE_HZ)
        mic = echo.copy()
        end = min(len(mic), at + len(user))
        mic[at:end] += user[: end - at]
    playing = np.zeros(len(reference), bool)
    playing[len(lead) : len(lead) + len(reply)] = True
    return np.clip(mic, -32768, 32767).astype(np.int16), reference, playing


@pytest.fixture(scope="module")
def reply(question: Pcm) -> Pcm:
    # a long reply: the question twice, at full scale (the volume at 100 %)
    loud = question.astype(np.float32) * (20000.0 / max(1, int(np.abs(question).max())))
    return np.tile(loud.astype(np.int16), 2)


@pytest.mark.parametrize("gain", [1.0, 1.5])
def test_the_devices_own_voice_never_barges_in_nor_goes_out(reply: Pcm, gain: float) -> None:
    mic, reference, playing = echo_scene(reply, None, 0.0, gain)
    listen = listening("always")
    capture = pipeline()
    run = drive(capture, listen, mic, reference, playing=playing)
    # Told the echo the canceller removed, the gate's voice detector is rarely fooled
    # by what it left (webrtcvad alone was, on hundreds of frames); the barge-in
    # detector's own verdicts still are, and its echo guard holds them back.
    assert capture.speech_frames < 100
    assert run.count("barge_in") == 0
    assert listen.barge is not None and listen.barge.frames_guarded > 10
    assert run.sent == []  # held while it played, dropped after
    assert sum(h.dropped_held for h in run.heard) > 0


def test_the_user_over_the_reply_barges_in_and_is_heard_from_the_start(
    reply: Pcm, wake_word: Pcm, question: Pcm
) -> None:
    user_at_s = 0.5 + AEC_WARMUP_MS / 1000 + 1.0  # once the canceller may be trusted
    user = (question.astype(np.float32) * 0.5).astype(np.int16)  # 6 dB under the reply
    mic, reference, playing = echo_scene(reply, user, user_at_s)
    listen = listening("always", barge_in_min_speech_ms=80)
    run = drive(pipeline(), listen, mic, reference, playing=playing)
    assert run.count("barge_in") == 1
    barge_s = run.first("barge_in")
    assert user_at_s < barge_s < user_at_s + 0.4
    first_sent_s, first_bytes = run.sent[0]
    assert first_sent_s == pytest.approx(barge_s + BLOCK / RATE_HZ)  # not before
    # what was held while the user started is sent at once: the onset is not lost
    assert first_bytes / API_BYTES_PER_S >= barge_s - user_at_s - 0.05


def test_without_barge_in_the_reply_is_never_cut(reply: Pcm, question: Pcm) -> None:
    user = (question.astype(np.float32) * 0.5).astype(np.int16)
    mic, reference, playing = echo_scene(reply, user, 2.5)
    run = drive(pipeline(), listening("always", barge_in=False), mic, reference, playing=playing)
    assert run.count("barge_in") == 0


def test_without_echo_cancellation_nothing_barges_in(reply: Pcm, question: Pcm) -> None:
    mic, reference, playing = echo_scene(reply, question, 2.5)
    run = drive(pipeline("none"), listening("always"), mic, reference, playing=playing)
    assert run.count("barge_in") == 0


def test_the_wake_word_over_the_reply_activates_and_nothing_held_goes_out(
    reply: Pcm, wake_word: Pcm
) -> None:
    mic, reference, playing = echo_scene(reply, wake_word, 3.0)
    listen = listening(barge_in=False)
    run = drive(pipeline(), listen, mic, reference, playing=playing)
    assert run.count("wake") == 1
    assert listen.activation.is_open
    # the wake word itself never leaves the device
    assert all(sent_s > run.first("wake") for sent_s, _ in run.sent)


def test_with_the_talk_button_held_nothing_is_held_back(reply: Pcm, question: Pcm) -> None:
    """Push-to-talk: the person says they talk; the device's voice does not hold them."""
    mic, reference, _ = echo_scene(reply, question, 0.5)
    capture, listen = pipeline(), listening("push_to_talk")
    listen.activated()
    capture.hold(True)
    sent = 0
    for start in range(0, len(mic) - BLOCK + 1, BLOCK):
        result = capture.process(mic[start : start + BLOCK], reference[start : start + BLOCK])
        heard = listen.block(result, playing=True, muted=False, cancels_echo=True, button_held=True)
        assert heard.dropped_held == 0 and listen.held_chunks == 0
        sent += sum(len(c) for c in heard.chunks)
    assert sent / API_BYTES_PER_S > len(mic) / RATE_HZ - 0.2  # every frame, as held


def test_the_default_minimum_cuts_the_reply_sooner_than_a_longer_one(
    reply: Pcm, question: Pcm
) -> None:
    """Three voiced, guarded frames (the default) decide before eight do, on the same
    scene; the user is heard once either way."""
    user_at_s = 0.5 + AEC_WARMUP_MS / 1000 + 1.0
    user = (question.astype(np.float32) * 0.5).astype(np.int16)
    mic, reference, playing = echo_scene(reply, user, user_at_s)
    fast = drive(pipeline(), listening("always"), mic, reference, playing=playing)
    slow = drive(
        pipeline(), listening("always", barge_in_min_speech_ms=80), mic, reference, playing=playing
    )
    assert fast.count("barge_in") == slow.count("barge_in") == 1
    assert user_at_s < fast.first("barge_in") < slow.first("barge_in")


def test_a_gate_restarted_on_the_echo_still_lets_the_activation_run_out() -> None:
    """The gate opened on the device's echo; when the echo ends it is restarted, which
    closes it without a speech_stopped. The activation must still time out."""
    listen = listening("wake_word", listen_timeout_s=1.0, barge_in=False)
    frame = np.zeros(160, np.int16)
    listen.activated()
    echo = CaptureResult(chunks=[b"x"], speech_started=True, taps=[Tap(frame, frame, True)] * 4)
    listen.block(echo, playing=True, muted=False, cancels_echo=True, gate_open=True)
    after = CaptureResult(chunks=[b"x"], taps=[Tap(frame, frame, True)] * 4)
    heard = listen.block(after, playing=False, muted=False, cancels_echo=True, gate_open=True)
    for _ in range(40):  # the echo tail, then quiet: the gate stays open on the echo
        heard = listen.block(after, playing=False, muted=False, cancels_echo=True,
                             gate_open=True)  # fmt: skip
        if heard.restart_gate:
            break
    assert heard.restart_gate
    quiet = CaptureResult(taps=[Tap(frame, frame, False)] * 4)
    ended = [listen.block(quiet, playing=False, muted=False, cancels_echo=True).ended
             for _ in range(40)]  # fmt: skip
    assert any(ended) and not listen.activation.is_open
