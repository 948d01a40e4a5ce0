"""Bulk delay between the reference and its echo in the microphone.

With one full-duplex stream the echo arrives a few buffers after the samples
were handed to the DAC; with separate input and output devices the delay can be
200 ms or more and drifts with the two clocks. The adaptive filter only has to
model the room once this bulk delay is taken out.

The estimator is a generalised cross-correlation with phase transform
(GCC-PHAT) on a 2 kHz copy of both signals: the cross-spectrum of the last second
is averaged over updates, whitened, and its peak gives the delay. It runs every
quarter second, only on windows where the reference carried sound, and reports a
delay only once two updates in a row agree and the peak stands out of the
correlation floor. Time is counted in samples, never read from a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.audio.aec_fft import irfft, rfft

Real = npt.NDArray[np.float64]

_ANALYSIS_HZ = 2000


@dataclass(frozen=True)
class DelayConfig:
    rate_hz: int
    block_frames: int
    max_delay_ms: int = 500
    window_ms: int = 1000
    update_blocks: int = 25
    smoothing: float = 0.5
    min_peak_ratio: float = 5.0
    agree_ms: float = 2.0


class DelayEstimator:
    """Feed every block with :meth:`push`; :attr:`delay_frames` is the latest
    confirmed estimate (None until one is found)."""

    def __init__(self, cfg: DelayConfig) -> None:
        self.cfg = cfg
        self._q = max(1, cfg.rate_hz // _ANALYSIS_HZ)
        rate = cfg.rate_hz / self._q
        self._max_lag = int(cfg.max_delay_ms * rate / 1000)
        self._win = int(cfg.window_ms * rate / 1000)
        hist_frames = (self._win + self._max_lag) * self._q
        blocks = -(-hist_frames // cfg.block_frames)
        self._hist_len = blocks * cfg.block_frames
        nfft = 1
        while nfft < self._win + self._win + self._max_lag:
            nfft *= 2
        self._nfft = nfft
        self._mean_of_q: Real = np.full(self._q, 1.0 / self._q)
        self.reset()

    def reset(self) -> None:
        # Row 0 the microphone, row 1 the reference, each history stored twice over
        # so that the last window is one contiguous slice.
        self._hist: Real = np.zeros((2, 2 * self._hist_len))
        self._segs: Real = np.zeros((2, self._nfft))
        self._pos = 0
        self._blocks = 0
        self._active_blocks = 0
        self._cross: npt.NDArray[np.complex128] | None = None
        self._candidate: float | None = None
        self.delay_frames: int | None = None
        self.confidence = 0.0

    def push(self, mic_ref: Real, ref_active: bool) -> bool:
        """Store one block, given as rows (microphone, reference); returns True when
        this call changed :attr:`delay_frames`."""
        n = mic_ref.shape[1]
        p = self._pos
        h = self._hist_len
        self._hist[:, p : p + n] = mic_ref
        self._hist[:, p + h : p + h + n] = mic_ref
        self._pos = (p + n) % h
        self._blocks += 1
        if ref_active:
            self._active_blocks += 1
        # Once a delay is confirmed it only has to be followed: look half as often.
        every = self.cfg.update_blocks * (1 if self.delay_frames is None else 2)
        if self._blocks % every:
            return False
        active = self._active_blocks
        self._active_blocks = 0
        if active < every // 2:
            return False
        return self._update()

    def _update(self) -> bool:
        q, h = self._q, self._hist_len
        start = self._pos  # oldest sample of the history, in the doubled buffer
        # Both signals at the analysis rate: the mean of each group of q samples.
        low = self._hist[:, start : start + h].reshape(2, -1, q) @ self._mean_of_q
        segs = self._segs  # zero beyond the parts written here
        segs[0, : self._win] = low[0, -self._win :]
        span = self._win + self._max_lag
        segs[1, :span] = low[1, -span:]
        spectra = rfft(segs)
        cross = spectra[1] * spectra[0].conj()
        if self._cross is None:
            self._cross = cross
        else:
            a = self.cfg.smoothing
            self._cross = a * self._cross + (1.0 - a) * cross
        mag = np.abs(self._cross)
        white = self._cross / (mag + 1e-9 * float(mag.max()) + 1e-30)
        corr = irfft(white, self._nfft)[: self._max_lag + 1]
        # corr[k] peaks where mic[t] matches ref[t + k] in the segments, i.e. at
        # k = max_lag - delay.
        peak = int(np.argmax(corr))
        floor = float(np.sqrt(np.mean(corr * corr))) + 1e-30
        self.confidence = float(corr[peak]) / floor
        if self.confidence < self.cfg.min_peak_ratio:
            self._candidate = None
            return False
        delay = (self._max_lag - peak) * q
        tol = self.cfg.agree_ms * self.cfg.rate_hz / 1000
        if self._candidate is not None and abs(delay - self._candidate) <= tol:
            changed = self.delay_frames is None or abs(delay - self.delay_frames) > tol
            if changed:
                self.delay_frames = int(delay)
            self._candidate = delay
            return changed
        self._candidate = delay
        return False
