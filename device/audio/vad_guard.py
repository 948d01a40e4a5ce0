"""The level guard shared by the speech classifiers: loud enough to be a user?

Speech cannot start unless the voice-band energy above a tracked noise floor
reached ``min_speech_dbfs`` within the last 300 ms, and, while the device
speaks, stood within ``ECHO_MARGIN_DB`` of the echo the canceller removed. What
the canceller leaves of the device's own voice is tens of dB under both, so it
cannot open the gate; a user 10 dB under the echo still can.

No clocks: time is counted in frames.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt

DEFAULT_MIN_SPEECH_DBFS = -38.0
"""Loudest voice-band level above the noise floor, within the last 300 ms, that a
frame needs before speech can start: 12 dB under a user at the nominal -26 dBFS."""

ECHO_MARGIN_DB = 20.0
"""Speech can start only within this many dB under the echo the canceller removed
(what a canceller leaves is taken to be at least this far down)."""
_ECHO_HOLD_DB = 1.0
"""Per 10 ms frame, how fast the remembered echo level falls once the echo stops
(the room's reverberation fades at about this rate)."""
_ECHO_FADE = 10.0 ** (-_ECHO_HOLD_DB / 10)
_ECHO_MARGIN = 10.0 ** (-ECHO_MARGIN_DB / 10)

_SILENCE_DB = -100.0
_BAND_HZ = (250.0, 4000.0)
"""Voice band for the energy guard; below it sits most room and pink noise."""
_FLOOR_BLOCK_FRAMES = 10
_FLOOR_BLOCKS = 15
"""Noise floor = lowest smoothed frame energy of the last 15 blocks of 100 ms."""
_LOUD_FRAMES = 30
"""How far back (10 ms frames) the level guard looks for a loud enough frame."""


def _db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 1e-10 else _SILENCE_DB


class LevelGuard:
    """Voice-band energy of each frame against a minimum-statistics noise floor.

    After ``update``: ``snr_db`` is the smoothed voice-band energy over the floor,
    ``loud`` whether the part above the floor reached ``min_speech_dbfs``, and
    ``ECHO_MARGIN_DB`` under the echo the canceller removed, within the last
    ``_LOUD_FRAMES`` frames (always true when neither applies).
    """

    def __init__(self, rate_hz: int, frame_samples: int, min_speech_dbfs: float | None) -> None:
        self._nfft = 1 << (frame_samples - 1).bit_length()
        freqs = np.fft.rfftfreq(self._nfft, 1.0 / rate_hz)
        self._band = (freqs >= _BAND_HZ[0]) & (freqs <= _BAND_HZ[1])
        # Parseval: twice the one-sided band energy over nfft is the band's share of
        # the frame's energy; divided by its length, of its mean power per sample.
        self._scale = 2.0 / (self._nfft * frame_samples)
        self._min_power = None if min_speech_dbfs is None else 10.0 ** (min_speech_dbfs / 10.0)
        self._recent: deque[float] = deque(maxlen=3)
        self._block_min = float("inf")
        self._block_frames = 0
        self._blocks: deque[float] = deque(maxlen=_FLOOR_BLOCKS)
        self._blocks_min = float("inf")  # of ``_blocks``, kept as they change
        self._since_loud = _LOUD_FRAMES
        self._echo_power = 0.0
        self._echo_heard = 0.0
        self.snr_db = 0.0
        self.loud = min_speech_dbfs is None

    def hear_echo(self, echo_power: float) -> None:
        """The mean power (full scale 1.0) of the echo removed from the coming frame."""
        self._echo_heard = echo_power

    def update(self, samples: npt.NDArray[np.float32]) -> None:
        spectrum = np.fft.rfft(samples, self._nfft)
        self.update_power(float(np.sum(np.abs(spectrum[self._band]) ** 2)) * self._scale)

    def update_power(self, power: float) -> None:
        """As :meth:`update`, given the frame's voice-band mean power."""
        self._echo_power = max(self._echo_heard, self._echo_power * _ECHO_FADE)
        self._recent.append(power)
        smooth = sum(self._recent) / len(self._recent)
        self._block_min = min(self._block_min, smooth)
        self._block_frames += 1
        if self._block_frames == _FLOOR_BLOCK_FRAMES:
            self._blocks.append(self._block_min)
            self._blocks_min = min(self._blocks)
            self._block_min = float("inf")
            self._block_frames = 0
        floor = min(self._blocks_min if self._blocks else smooth, self._block_min)
        self.snr_db = _db(smooth) - _db(floor)
        need = self._echo_power * _ECHO_MARGIN
        if self._min_power is not None:
            need = max(need, self._min_power)
        if need > 0.0:
            self._since_loud = 0 if smooth - floor >= need else self._since_loud + 1
            self.loud = self._since_loud < _LOUD_FRAMES
        else:
            self.loud = True
