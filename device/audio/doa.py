"""Direction of arrival: where the talker stands, from the raw mic channels.

The listening LEDs light toward the talker, so the estimate must be cheap (a Pi
core runs everything else too), stable (a ring that jitters reads as broken) and
honest (no direction beats a wrong one). It is SRP-PHAT over a grid of azimuths
in the plane of the array, far-field:

* every ``hop_ms`` of speech, the last ``window_ms`` of every mic is windowed and
  Fourier-transformed (numpy's rfft), and for each pair of mics the cross-spectrum
  is whitened to its phase (PHAT: loud low vowels must not outvote the rest);
* each azimuth on the grid scores the mean agreement of those phases with the
  delays a plane wave from there would cause (1: perfect, near 0: no source);
  all pairs and bins of the speech band go through one precomputed matrix, so an
  estimate is one small matrix-vector product;
* the scores of the last ``smooth_ms`` are averaged before the peak is taken, and
  the peak is published only when it stands clear of what noise alone reaches.

Only frames the voice detector calls speech while the speaker is silent count:
with the speaker playing, the loudest source is the speaker itself. Without new
speech for ``hold_ms`` the direction goes back to unknown.

Mics on one line (the 2-mic HAT) cannot tell front from back: a plane wave from
either side of the line reaches them with the same delays. Their estimate lies in
the half plane to the left of the line from the first mic to the last, and only
its side (toward which end of the line) carries information.

Pure: no clock, no I/O; time is counted in samples pushed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hw.board_profile import BoardProfile

SPEED_OF_SOUND_M_S = 343.0
WINDOW_MS = 128
"""Audio per estimate: long enough that a room's echoes average out (64 ms windows
missed talkers on the diagonals of a simulated room by 30-35 degrees, 128 ms by 10 at
most), short enough to follow a talker who moves."""
HOP_MS = 100
"""At most one estimate per this much audio (10 a second of speech)."""
SMOOTH_MS = 250
"""Estimates averaged into the published direction."""
HOLD_MS = 1500
"""Without new speech the direction is kept this long, then unknown."""
BAND_HZ = (200.0, 3500.0)
"""Speech band scored; above it, speech has little energy and pairs alias more."""
BIN_STEP = 2
"""Every other bin of the band is scored: half the work, and bins 16 Hz apart still
sample every delay the arrays can have many times over."""
GRID_STEP_DEG = 5.0
MIN_SPEECH_FRACTION = 0.6
"""Share of the window the voice detector must call speech for an estimate."""
MIN_SCORE = 0.2
"""Lowest averaged peak published. Independent noise on the mics peaks at 0.02 (4- and
6-mic) to 0.09 (2-mic); a talker 1.5 m away in a simulated room (RT60 0.3-0.6 s) scores 0.3
to 0.6, and 1.0 without echoes."""
LINEAR_SIDE_COS = 0.5
"""A line of mics reports a side only beyond 30 degrees off its broadside."""

Samples = npt.NDArray[np.float32]


def _collinear(positions_m: npt.NDArray[np.float64]) -> bool:
    centred = positions_m - positions_m.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return bool(singular[-1] <= 1e-6 * max(float(singular[0]), 1e-12))


@dataclass(frozen=True)
class ArrayGeometry:
    """Mic positions in the array's plane (metres; x right, y forward, counter-clockwise
    azimuths from +x) and what they can resolve."""

    positions_m: npt.NDArray[np.float64]
    linear: bool
    axis_deg: float  # a line of mics: the direction from the first mic to the last

    @classmethod
    def from_mm(cls, positions_mm: Sequence[tuple[float, float]]) -> ArrayGeometry:
        if len(positions_mm) < 2:
            raise ValueError("direction of arrival needs at least two mic positions")
        positions = np.asarray(positions_mm, np.float64) / 1000.0
        span = positions[-1] - positions[0]
        if float(np.hypot(*span)) < 1e-4:
            raise ValueError("the first and last mic sit at the same place")
        return cls(positions, _collinear(positions), math.degrees(math.atan2(span[1], span[0])))

    def grid_deg(self, step_deg: float = GRID_STEP_DEG) -> npt.NDArray[np.float64]:
        """Azimuths scored: all round, or the half plane left of a line of mics."""
        if self.linear:
            return self.axis_deg + np.arange(0.0, 180.0 + step_deg / 2, step_deg)
        return np.arange(0.0, 360.0, step_deg)

    def nearest_mic(self, azimuth_deg: float) -> int | None:
        """The mic at the end of a line nearest the talker; None near broadside (unsure)."""
        off = math.radians(azimuth_deg - self.axis_deg)
        if abs(math.cos(off)) < LINEAR_SIDE_COS:
            return None
        u = np.array([math.cos(math.radians(azimuth_deg)), math.sin(math.radians(azimuth_deg))])
        return int(np.argmax(self.positions_m @ u))


class DoaEstimator:
    """Feeds on multi-channel mic blocks, publishes the talker's azimuth or None."""

    def __init__(
        self,
        geometry: ArrayGeometry,
        rate_hz: int,
        *,
        window_ms: int = WINDOW_MS,
        hop_ms: int = HOP_MS,
        smooth_ms: int = SMOOTH_MS,
        hold_ms: int = HOLD_MS,
        min_score: float = MIN_SCORE,
    ) -> None:
        self.geometry = geometry
        self.rate_hz = rate_hz
        self.min_score = min_score
        self._mics = len(geometry.positions_m)
        self._window = round(rate_hz * window_ms / 1000)
        self._hop = round(rate_hz * hop_ms / 1000)
        self._hold = round(rate_hz * hold_ms / 1000)
        self._taper = np.hanning(self._window).astype(np.float32)[:, None]
        self._grid_deg = geometry.grid_deg()
        self._pairs = [(i, j) for i in range(self._mics) for j in range(i + 1, self._mics)]
        freqs = np.asarray(np.fft.rfftfreq(self._window, 1.0 / rate_hz), np.float64)
        self._band = np.flatnonzero((freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1]))[::BIN_STEP]
        self._first = [i for i, _ in self._pairs]
        self._second = [j for _, j in self._pairs]
        self._packed = np.zeros((2, len(self._band), len(self._pairs)), np.float32)
        self._steer = self._steering(freqs[self._band])
        self._maps: deque[npt.NDArray[np.float32]] = deque(maxlen=max(1, smooth_ms // hop_ms))
        self._audio = np.zeros((self._window, self._mics), np.float32)
        self._speech = np.zeros(self._window, np.bool_)
        self.direction_deg: float | None = None
        """The talker's azimuth in the array's frame, or None: unknown or unsure."""
        self.score = 0.0
        """The averaged peak of the last estimate, published or withheld."""
        self.estimates = 0  # windows scored since the last reset
        self.reset()

    def _steering(self, freqs_hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """(grid, 2 * bins * pairs): cos and sin of the phase each azimuth predicts."""
        az = np.radians(self._grid_deg)
        toward = np.stack([np.cos(az), np.sin(az)], axis=1)  # (G, 2)
        pos = self.geometry.positions_m
        diff = np.stack([pos[i] - pos[j] for i, j in self._pairs])  # (P, 2)
        lead_s = toward @ diff.T / SPEED_OF_SOUND_M_S  # (G, P): how much earlier i hears it
        phase = 2 * np.pi * freqs_hz[None, :, None] * lead_s[:, None, :]  # (G, F, P)
        scale = 1.0 / (len(freqs_hz) * len(self._pairs))
        # laid out as the packed cross-spectra: real parts of every bin, then imaginary
        steer = np.concatenate([np.cos(phase), np.sin(phase)], axis=1).reshape(len(az), -1)
        return (steer * scale).astype(np.float32)

    # -- state -----------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all audio and estimates (a new turn, or the speaker started talking)."""
        self._audio[:] = 0.0
        self._speech[:] = False
        self._filled = 0
        self._write = 0
        self._since_hop = 0
        self._since_estimate = 0
        self._maps.clear()
        self.direction_deg = None
        self.score = 0.0
        self.estimates = 0

    # -- audio -----------------------------------------------------------------------
    def push(self, mics: npt.NDArray[np.generic], *, speech: bool) -> float | None:
        """One block, ``(frames, mics)`` in the order of the geometry's positions;
        ``speech``: the voice detector heard speech in it and the speaker was silent.
        Returns the direction after it."""
        block = np.asarray(mics, np.float32)
        if block.ndim != 2 or block.shape[1] != self._mics:
            raise ValueError(f"expected (frames, {self._mics}) samples, got {block.shape}")
        for start in range(0, len(block), self._window):
            self._store(block[start : start + self._window], speech)
        return self.direction_deg

    def _store(self, part: Samples, speech: bool) -> None:
        n = len(part)
        end = self._write + n
        if end <= self._window:
            self._audio[self._write : end] = part
            self._speech[self._write : end] = speech
        else:
            first = self._window - self._write
            self._audio[self._write :] = part[:first]
            self._audio[: n - first] = part[first:]
            self._speech[self._write :] = speech
            self._speech[: n - first] = speech
        self._write = end % self._window
        self._filled = min(self._window, self._filled + n)
        self._since_hop += n
        self._since_estimate += n
        if self._since_hop >= self._hop:
            self._since_hop = 0
            if self._filled == self._window and self._speech.mean() >= MIN_SPEECH_FRACTION:
                self._estimate()
        if self._since_estimate > self._hold and self._maps:
            self._maps.clear()
            self.direction_deg = None
            self.score = 0.0

    def _estimate(self) -> None:
        window = np.roll(self._audio, -self._write, axis=0) * self._taper
        spectra = np.fft.rfft(window, axis=0)[self._band]  # (F, M)
        # PHAT: whitening each mic to its phase whitens every pair's cross-spectrum
        spectra /= np.abs(spectra) + 1e-20
        cross = spectra[:, self._first] * np.conj(spectra[:, self._second])  # (F, P)
        self._packed[0] = cross.real
        self._packed[1] = cross.imag
        self._maps.append(self._steer @ self._packed.ravel())
        self._since_estimate = 0
        self.estimates += 1
        mean_map = np.mean(self._maps, axis=0)
        best = int(np.argmax(mean_map))
        self.score = float(mean_map[best])
        self.direction_deg = (
            float(self._grid_deg[best] % 360.0) if self.score >= self.min_score else None
        )


def ring_deg(
    geometry: ArrayGeometry,
    azimuth_deg: float | None,
    *,
    ring_offset_deg: float,
    pixel_count: int,
    mic_pixels: Sequence[int],
) -> float | None:
    """The talker's direction on the LED ring's frame (pixel ``i`` at ``360 * i / count``).

    A ring turns the array's azimuth by ``ring_offset_deg`` (where pixel 0 sits in
    the array's frame). A line of mics knows only a side: it points at the pixel next
    to the mic at that end (``mic_pixels``), or nowhere when unsure or unknown.
    """
    if azimuth_deg is None:
        return None
    if not geometry.linear:
        return (azimuth_deg - ring_offset_deg) % 360.0
    mic = geometry.nearest_mic(azimuth_deg)
    if mic is None or mic >= len(mic_pixels) or pixel_count < 1:
        return None
    return 360.0 * mic_pixels[mic] / pixel_count


PLAYING_RMS = 100.0
"""A reference block this loud (about -50 dBFS) means the speaker is playing."""
AFTER_PLAYING_MS = 300
"""Speech is not trusted this long after the speaker stopped: its sound is still in
the room (and still in the output buffer's latency)."""


class RingDirection:
    """A board's direction finder: its mic channels in, the talker's place on its LED
    ring out (``ring_deg``, None when unknown, unsure or not to be shown)."""

    def __init__(self, board: BoardProfile, rate_hz: int) -> None:
        self.channels = tuple(board.mic_channels)
        """Capture channels to hand over, in the order of ``mic_positions_mm``."""
        self.geometry = ArrayGeometry.from_mm(board.mic_positions_mm)
        self.estimator = DoaEstimator(self.geometry, rate_hz)
        self._leds = board.leds
        self._after_playing = round(rate_hz * AFTER_PLAYING_MS / 1000)
        self._quiet_for = self._after_playing  # samples since the speaker last played

    @classmethod
    def for_board(cls, board: BoardProfile, rate_hz: int) -> RingDirection | None:
        """None where there is nothing to point with: no mic geometry, or fewer than
        three LEDs (one LED cannot point)."""
        if len(board.mic_positions_mm) < 2 or board.leds.count < 3:
            return None
        return cls(board, rate_hz)

    def push(
        self, mics: npt.NDArray[np.generic], reference: npt.NDArray[np.generic], *, speech: bool
    ) -> None:
        """One captured block: the mic channels, what the speaker played in it and
        whether the voice detector heard speech in it."""
        ref = np.asarray(reference, np.float32)
        playing = bool(ref.size) and float(np.sqrt(np.mean(ref**2))) > PLAYING_RMS
        self._quiet_for = 0 if playing else self._quiet_for + len(mics)
        trusted = speech and self._quiet_for >= self._after_playing
        self.estimator.push(mics, speech=trusted)

    @property
    def ring_deg(self) -> float | None:
        return ring_deg(
            self.geometry,
            self.estimator.direction_deg,
            ring_offset_deg=self._leds.ring_offset_deg,
            pixel_count=self._leds.count,
            mic_pixels=self._leds.mic_pixels,
        )

    def reset(self) -> None:
        self.estimator.reset()
