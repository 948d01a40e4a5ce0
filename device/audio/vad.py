"""The voice gate: keeps silence from being streamed to the Realtime API.

Every 100 ms of input audio is billed, and a stream of room noise also invites the
server's own turn detection to fire on nothing. The gate runs a per-frame speech
classifier (webrtcvad by default) and adds the hysteresis a raw classifier lacks:
it opens only after a run of speech, replays the audio just before the onset so
the first syllable is not clipped, and stays open through the short pauses inside
a sentence. It counts frames, never reads a clock, so it behaves the same on a
live stream, a WAV file, and in tests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import webrtcvad

from device.audio.frames import Pcm, check_mono_pcm, frames_for_ms, pcm_to_bytes

VAD_RATES_HZ = (8000, 16000, 32000, 48000)
"""Sample rates webrtcvad accepts."""

VAD_FRAME_MS = (10, 20, 30)
"""Frame durations webrtcvad accepts."""

RESET_SETTLE_MS = 300
"""Longest a reset gate ignores the speech that was going on when it was reset."""

SpeechClassifier = Callable[[bytes, int], bool]
"""(little-endian PCM16 frame, rate_hz) -> whether the frame holds speech."""


@runtime_checkable
class EchoAware(Protocol):
    """A classifier that can be told how much echo the canceller removed from the next
    frame, so the residual the canceller left of the device's voice is not speech."""

    def hear_echo(self, echo_power: float) -> None:
        """Mean power per sample (full scale 1.0) of the echo removed from the next frame."""
        ...


class GateOutput(NamedTuple):
    """What the gate decided for one input frame (a named tuple: one is made per
    10 ms frame, and a frozen dataclass costs three times as much to build)."""

    frames: list[Pcm]
    """Frames to stream now, oldest first: the pre-roll then the current frame when
    the gate opens, the current frame while it is open, nothing while closed."""
    is_speech: bool
    """The classifier's verdict for this frame alone."""
    opened: bool
    """The gate opened at this frame."""
    closed: bool
    """The gate closed at this frame (the frame itself is still in ``frames``)."""
    is_open: bool
    """State after this frame."""
    onset_frame: int | None
    """When ``opened``: index, counted in frames since start or reset, of the first
    speech frame of the run that opened the gate. This is where the utterance
    began, ``start_ms`` earlier than the frame that confirmed it."""


def _frames_in(name: str, value_ms: int, frame_ms: int, minimum_frames: int) -> int:
    if isinstance(value_ms, bool) or not isinstance(value_ms, int):
        raise ValueError(f"{name} must be an integer number of ms, got {value_ms!r}")
    if value_ms < 0 or value_ms % frame_ms:
        raise ValueError(
            f"{name} must be a non-negative multiple of frame_ms={frame_ms}, got {value_ms}"
        )
    frames = value_ms // frame_ms
    if frames < minimum_frames:
        raise ValueError(f"{name} must be at least {minimum_frames * frame_ms} ms, got {value_ms}")
    return frames


class VadGate:
    """Opens on sustained speech, closes on sustained non-speech.

    - Opens once ``start_ms`` of consecutive frames were speech, so a cough or a
      click (one speech frame) does not start a turn.
    - On opening emits the pre-roll: the frames held back before the current one,
      at most ``pre_roll_ms`` of them but never fewer than the speech frames that
      counted towards ``start_ms``; then the current frame.
    - While open, emits every frame.
    - Closes after ``hangover_ms`` of consecutive non-speech frames; the frame that
      completes the hangover is still emitted.
    - After :meth:`reset`, speech already going on (the rest of a wake word, the
      device's own echo that held the gate open) does not open it again: the gate
      first waits for a non-speech frame, for at most ``RESET_SETTLE_MS``.

    The pre-roll ring is bounded and is emptied when the gate opens, so no frame
    is ever emitted twice.
    """

    def __init__(
        self,
        rate_hz: int,
        frame_ms: int = 10,
        aggressiveness: int = 2,
        start_ms: int = 60,
        pre_roll_ms: int = 300,
        hangover_ms: int = 800,
        classifier: SpeechClassifier | None = None,
    ) -> None:
        if rate_hz not in VAD_RATES_HZ:
            raise ValueError(
                f"rate_hz={rate_hz} is not a rate webrtcvad takes; use one of {VAD_RATES_HZ}"
            )
        if frame_ms not in VAD_FRAME_MS:
            raise ValueError(f"frame_ms must be one of {VAD_FRAME_MS}, got {frame_ms!r}")
        if isinstance(aggressiveness, bool) or aggressiveness not in range(4):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}")
        self._rate_hz = rate_hz
        self._frame_ms = frame_ms
        self._frame_frames = frames_for_ms(rate_hz, frame_ms)
        self._start_frames = _frames_in("start_ms", start_ms, frame_ms, 1)
        self._hangover_frames = _frames_in("hangover_ms", hangover_ms, frame_ms, 1)
        pre_roll_frames = _frames_in("pre_roll_ms", pre_roll_ms, frame_ms, 0)
        # The speech frames that confirmed the onset must never be lost.
        self._pre_roll_frames = max(pre_roll_frames, self._start_frames - 1)
        self._classify: SpeechClassifier = (
            classifier if classifier is not None else webrtcvad.Vad(aggressiveness).is_speech
        )
        self._echo_aware = self._classify if isinstance(self._classify, EchoAware) else None
        self._ring: deque[Pcm] = deque(maxlen=self._pre_roll_frames)
        self._is_open = False
        self._speech_run_frames = 0
        self._silence_run_frames = 0
        self._frames_seen = 0
        self._settle_frames = 0

    @property
    def rate_hz(self) -> int:
        return self._rate_hz

    @property
    def frame_ms(self) -> int:
        return self._frame_ms

    @property
    def frame_frames(self) -> int:
        """Samples per frame that :meth:`process` takes."""
        return self._frame_frames

    @property
    def pre_roll_frames(self) -> int:
        """Most frames replayed on opening (``pre_roll_ms``, raised to cover ``start_ms``)."""
        return self._pre_roll_frames

    @property
    def is_open(self) -> bool:
        return self._is_open

    @property
    def frames_seen(self) -> int:
        """Frames processed since creation or the last reset."""
        return self._frames_seen

    def process(self, frame: Pcm, *, mic: Pcm | None = None) -> GateOutput:
        """Classify one frame and decide what to stream.

        ``mic``: the same frame before echo cancellation. The difference is the echo
        the canceller removed, which tells an :class:`EchoAware` classifier how loud
        the device's own voice was and so how much of it may be left in ``frame``.
        """
        check_mono_pcm(frame, "frame")
        if frame.shape[0] != self._frame_frames:
            raise ValueError(
                f"frame must be exactly {self._frame_frames} samples "
                f"({self._frame_ms} ms at {self._rate_hz} Hz), got {frame.shape[0]}"
            )
        if mic is not None and self._echo_aware is not None:
            if mic.shape != frame.shape:
                raise ValueError(f"mic must match frame's shape {frame.shape}, got {mic.shape}")
            removed = np.subtract(mic, frame, dtype=np.float64)
            self._echo_aware.hear_echo(float(removed @ removed) / (removed.shape[0] * 32768.0**2))
        index = self._frames_seen
        self._frames_seen += 1
        is_speech = bool(self._classify(pcm_to_bytes(frame), self._rate_hz))
        own = frame.copy()
        if self._is_open:
            return self._while_open(own, is_speech)
        return self._while_closed(own, is_speech, index)

    def _while_closed(self, frame: Pcm, is_speech: bool, index: int) -> GateOutput:
        if self._settle_frames and is_speech:
            self._settle_frames -= 1  # still the speech that was going on at the reset
            self._ring.append(frame)
            return GateOutput([], is_speech, False, False, False, None)
        self._settle_frames = 0
        self._speech_run_frames = self._speech_run_frames + 1 if is_speech else 0
        if self._speech_run_frames < self._start_frames:
            self._ring.append(frame)
            return GateOutput([], is_speech, False, False, False, None)
        frames = [*self._ring, frame]
        self._ring.clear()
        self._is_open = True
        self._speech_run_frames = 0
        self._silence_run_frames = 0
        onset = index - (self._start_frames - 1)
        return GateOutput(frames, is_speech, True, False, True, onset)

    def _while_open(self, frame: Pcm, is_speech: bool) -> GateOutput:
        self._silence_run_frames = 0 if is_speech else self._silence_run_frames + 1
        if self._silence_run_frames < self._hangover_frames:
            return GateOutput([frame], is_speech, False, False, True, None)
        self._is_open = False
        self._silence_run_frames = 0
        self._speech_run_frames = 0
        return GateOutput([frame], is_speech, False, True, False, None)

    def reset(self) -> None:
        """Close the gate and forget all history, e.g. when the mic is muted or a new
        session starts; the frame count restarts at zero."""
        self._settle_frames = RESET_SETTLE_MS // self._frame_ms
        self._ring.clear()
        self._is_open = False
        self._speech_run_frames = 0
        self._silence_run_frames = 0
        self._frames_seen = 0
