"""Local barge-in: is the user talking over the device's reply?

Waiting for the service to hear the user costs a network round trip, and the
service only hears what the device sends; so the device decides itself, on the
echo-cancelled signal, frame by frame:

* the voice detector of the capture gate calls the frame speech, and
* while the device plays (or its echo may still ring), what the canceller left
  stands within ``echo_margin_db`` of the echo it removed (the microphone minus
  its output), taking the loudest echo of the last ``ECHO_HOLD_MS``: what a
  loudspeaker adds by distorting is not cancelled and rings in the room as long
  as the echo does, so a frame in a pause of the reply is still judged against
  the loud syllable before it. The device's own voice, cancelled 30 dB or more,
  leaves a residual far below the echo and never passes; a user talking at the
  device is at most some 10-20 dB below the echo and passes. This is what keeps
  residual echo, which fires a voice detector on 14-21 % of its frames, from
  cutting the reply;
* what the canceller left stands ``NOISE_MARGIN_DB`` above the room's noise floor,
  tracked on the microphone itself (minimum statistics over 2 s). Echo cancellers
  suppress the room noise while the device talks and let it back in its pauses;
  to a voice detector that return looks like speech starting.

A frame is voiced when the gate's voice detector calls it speech or, not to wait
for that detector's smoothing (it needs two of three frames, and its level guard
a loud frame, before it says speech), when webrtcvad at its strictest mode
(``OWN_VAD_MODE``) calls this one frame speech. The two guards above carry the
weight against echo, so the count can be short.

Barge-in fires once ``min_speech_ms`` of voiced, guarded frames fell within a
window twice as long (short gaps between phonemes do not restart the count), and
then not again until a frame is not voiced.

Pure and clock-free: it counts frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

from device.audio.frames import Pcm, pcm_to_bytes

FRAME_MS = 10
ECHO_HOLD_MS = 200
NOISE_MARGIN_DB = 15.0
_FLOOR_BLOCK_FRAMES = 10
_FLOOR_BLOCKS = 20  # 2 s of 100 ms block minima
_TINY = 1e-3  # power floor, so digital silence compares without dividing by zero
ONSET_HOLD_MS = 100
"""After the device starts to play, barge-in waits this long before it may fire (the
frames still count): the echo estimate the guard compares against starts empty, and
a canceller still misadjusted by the user's last words lets the first echo through.
Read off that estimate's own history (one entry per frame played, ``ECHO_HOLD_MS`` of
them), so it must stay shorter than ``ECHO_HOLD_MS``."""
OWN_VAD_MODE = 3  # webrtcvad's strictest: it rarely calls residual echo speech
_OWN_VAD_RATES_HZ = (8000, 16000, 32000, 48000)


def frame_power(frame: Pcm) -> float:
    """Mean square of a frame (int16 units)."""
    samples = frame.astype(np.float32)
    return float(np.dot(samples, samples)) / max(1, len(samples))


@dataclass(frozen=True)
class BargeInSettings:
    min_speech_ms: int = 30
    echo_margin_db: float = 20.0


class _Floor:
    """The microphone's noise floor: the least frame power of the last 2 s (100 ms
    block minima), so speech and echo, which pause, do not raise it."""

    def __init__(self) -> None:
        self._blocks: deque[float] = deque(maxlen=_FLOOR_BLOCKS)
        self._blocks_min = float("inf")  # of ``_blocks``, kept as they change
        self._block_min = float("inf")
        self._frames = 0

    def update(self, power: float) -> float:
        self._block_min = min(self._block_min, power)
        self._frames += 1
        if self._frames == _FLOOR_BLOCK_FRAMES:
            self._blocks.append(self._block_min)
            self._blocks_min = min(self._blocks)
            self._block_min = float("inf")
            self._frames = 0
        return min(self._blocks_min if self._blocks else power, self._block_min)


class BargeInDetector:
    """Counts user speech over the device's voice; ``process`` is True when it is enough."""

    def __init__(self, settings: BargeInSettings) -> None:
        self.settings = settings
        self._need = max(1, settings.min_speech_ms // FRAME_MS)
        self._window: deque[bool] = deque(maxlen=2 * self._need)
        self._ratio = 10.0 ** (-settings.echo_margin_db / 10.0)
        self._above_floor = 10.0 ** (NOISE_MARGIN_DB / 10.0)
        self._echo: deque[float] = deque(maxlen=ECHO_HOLD_MS // FRAME_MS)
        self._floor = _Floor()
        self._noise_power = 0.0
        self._fired = False
        self._own_vad = webrtcvad.Vad(OWN_VAD_MODE)
        self.frames_guarded = 0  # speech frames the guards refused, for the benchmark

    def frame(self, mic: Pcm, clean: Pcm, is_speech: bool, *, active: bool = True) -> bool:
        """One 10 ms frame as the capture pipeline made it (``is_speech``: the gate's
        verdict); adds this detector's own per-frame verdict on ``clean``."""
        mic_power = frame_power(mic)
        if not active:  # only the noise floor is tracked: what the canceller left is moot
            return self.process(is_speech, mic_power, 0.0, active=False)
        voiced = is_speech
        rate_hz = len(clean) * 1000 // FRAME_MS
        if not voiced and rate_hz in _OWN_VAD_RATES_HZ:
            voiced = self._own_vad.is_speech(pcm_to_bytes(clean), rate_hz)
        return self.process(voiced, mic_power, frame_power(clean), active=True)

    def passes_guard(self, mic_power: float, clean_power: float) -> bool:
        """Note this frame's echo; True when the residual is within the margin of the
        loudest recent echo estimate and clear of the room's noise floor."""
        # mic - clean is the removed echo only where the two are uncorrelated; the
        # power difference is a cheap, conservative estimate of it.
        self._echo.append(max(0.0, mic_power - clean_power))
        return bool(
            clean_power + _TINY >= max(self._echo) * self._ratio
            and clean_power >= self._noise_power * self._above_floor
        )

    def process(
        self, is_speech: bool, mic_power: float, clean_power: float, *, active: bool = True
    ) -> bool:
        """One frame; True on the frame barge-in is decided. ``active`` is False while
        the device is silent: then only the noise floor is tracked."""
        self._noise_power = self._floor.update(mic_power)
        if not active:
            self.reset()
            return False
        guarded = self.passes_guard(mic_power, clean_power)
        if not is_speech:
            self._window.clear()
            self._fired = False
            return False
        self.frames_guarded += not guarded
        self._window.append(guarded)
        if self._fired or sum(self._window) < self._need:
            return False
        if len(self._echo) * FRAME_MS <= ONSET_HOLD_MS:
            return False  # counted, decided once the echo estimate has a past
        self._fired = True
        return True

    def reset(self) -> None:
        """Forget the current run and the echo (the device went silent); the room's
        noise floor is kept."""
        self._window.clear()
        self._echo.clear()
        self._fired = False
