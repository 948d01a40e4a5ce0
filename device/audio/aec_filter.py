"""The linear part of the echo canceller: a partitioned-block frequency-domain
adaptive filter with a per-bin Kalman step size, run on two paths.

Each 10 ms block of the reference is transformed once (overlap-save, FFT of two
blocks) and kept in a ring of spectra. The echo estimate is the sum over
partitions of filter spectrum times reference spectrum, so a 120 ms echo tail
costs one multiply-add per partition and bin instead of a long time-domain
convolution. A bulk delay found elsewhere is applied by reading the ring further
back; a change of that delay shifts the partitions instead of forgetting them.

Step size: each partition and bin keeps a variance of its coefficient error (a
diagonal frequency-domain Kalman filter). The step is that variance over the
predicted error power, which is the echo the filter still misses plus everything
the filter cannot predict (the user's voice, noise). So the filter learns fast
where it is unsure, slowly where it has converged, and hardly at all in a bin
where the user is talking over the speaker: no double-talk detector has to
switch anything. The variances start from a prior that decays over the
partitions like a room's impulse response (1.5 dB per 10 ms block, about the
decay of a living room's reverberation), which steers the first steps to the
direct path and makes the first 20 dB come in a fraction of a second, while
the late partitions still get enough step to learn the room's tail.

Two paths: the background filter adapts; the foreground filter makes the output
and copies the background only when the background has been measurably better
(a test on the mean and variance of their error difference over two time
scales). If the background falls clearly behind (a burst of double talk got
into it) it is reset from the foreground, so the output never diverges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.audio.aec_fft import conj_dot, irfft, rfft

Real = npt.NDArray[np.float64]
Complex = npt.NDArray[np.complex128]

_VAR1_UPDATE = 0.5
_VAR2_UPDATE = 0.25
_VAR_BACKTRACK = 4.0


@dataclass(frozen=True)
class FilterConfig:
    block_frames: int
    partitions: int
    max_delay_blocks: int
    prior_decay_db: float = 1.5
    prior_flat_blocks: int = 2
    warmup_blocks: int = 30
    forgetting: float = 0.9995
    noise_every: int = 4
    constrain_every: int = 8
    relearn: float = 1e-3


class TwoPathFilter:
    """Foreground/background partitioned-block Kalman filter; see the module doc."""

    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        n, k = cfg.block_frames, cfg.partitions
        self._n = n
        self._bins = n + 1
        self._k = k
        self._ring_len = cfg.max_delay_blocks + k
        self._fade_in: Real = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
        steps = np.maximum(np.arange(k) - cfg.prior_flat_blocks + 1, 0)
        profile = 10.0 ** (-cfg.prior_decay_db * steps / 10.0)
        self._prior: Real = (profile / profile.sum())[:, None] * np.ones((1, self._bins))
        self.reset()

    def reset(self) -> None:
        k, f, n = self._k, self._bins, self._n
        self._x2: Real = np.zeros(2 * n)
        # Doubled rings (each spectrum stored at i and i + ring_len) so that any
        # window of consecutive blocks is one contiguous slice, newest first.
        self._xc_ring: Complex = np.zeros((2 * self._ring_len, f), dtype=np.complex128)
        self._p_ring: Real = np.zeros((2 * self._ring_len, f))
        self._head = self._ring_len
        self.w_bg: Complex = np.zeros((k, f), dtype=np.complex128)
        self.w_fg: Complex = np.zeros((k, f), dtype=np.complex128)
        self._var: Real = np.zeros((k, f))
        self._psi: Real = np.zeros(f)
        self._pad: Real = np.zeros(2 * n)
        self._e_bg: Real = np.zeros(n)
        # Work buffers, reused every block so that the 10 ms loop allocates little.
        self._spec: Complex = np.zeros(f, dtype=np.complex128)
        self._err: Complex = np.zeros(f, dtype=np.complex128)
        self._y2: Complex = np.zeros((2, f), dtype=np.complex128)
        self._yt: Real = np.zeros((2, 2 * n))
        self._e2: Real = np.zeros((2, n))
        self._gain: Real = np.zeros((k, f))
        self._step: Complex = np.zeros((k, f), dtype=np.complex128)
        self._w_time: Real = np.zeros((k, 2 * n))
        self.delay_blocks = 0
        self._frames = 0
        self._active = 0
        self._mic_energy = 0.0
        self._ref_energy = 0.0
        self._davg1 = self._davg2 = self._dvar1 = self._dvar2 = 0.0
        self._m_e = self._m_y = self._cov = 0.0
        self._var_y = 1e-10
        self.misadjustment = 1.0
        """Residual echo over echo estimate, by regression of the frame energies of
        the output on those of the echo estimate: high while the filter is still
        learning (start-up, a changed echo path), low once it has converged. The
        user's voice does not follow the far end's envelope, so double talk
        hardly moves it."""

    def set_delay_blocks(self, blocks: int) -> None:
        """Read the reference ``blocks`` blocks further back, keeping what was learnt:
        partition j of the old alignment becomes partition j - shift of the new one."""
        blocks = int(min(max(blocks, 0), self.cfg.max_delay_blocks))
        shift = blocks - self.delay_blocks
        if shift == 0:
            return
        k = self._k
        for arr in (self.w_bg, self.w_fg, self._var):
            if abs(shift) >= k:
                arr[:] = 0
            elif shift > 0:
                arr[: k - shift] = arr[shift:].copy()
                arr[k - shift :] = 0
            else:
                arr[-shift:] = arr[: k + shift].copy()
                arr[:-shift] = 0
        # What moved in is unknown: give it the prior's uncertainty again.
        scale = self._ref_energy and self._mic_energy / self._ref_energy
        np.maximum(self._var, self._prior * (4.0 * scale), out=self._var)
        self.delay_blocks = blocks

    def process(self, mic: Real, ref: Real, ref_energy: float) -> tuple[Real, Real]:
        """One block and its reference's energy (``ref @ ref``): returns (error, echo
        estimate) of the foreground filter, views of work buffers valid until the
        next call."""
        n, k = self._n, self._k
        x2 = self._x2
        x2[:n] = x2[n:]
        x2[n:] = ref
        spec = rfft(x2, out=self._spec)
        h = self._head - 1 if self._head > 0 else self._ring_len - 1
        self._head = h
        ring_len = self._ring_len
        xc = np.conjugate(spec, out=self._xc_ring[h])
        self._xc_ring[h + ring_len] = xc
        power = (spec * xc).real
        self._p_ring[h] = power
        self._p_ring[h + ring_len] = power
        start = h + self.delay_blocks
        xv = self._xc_ring[start : start + k]
        pv = self._p_ring[start : start + k]

        y2 = self._y2
        conj_dot(xv, self.w_fg, y2[0])
        conj_dot(xv, self.w_bg, y2[1])
        y = irfft(y2, 2 * n, out=self._yt)[:, n:]
        e2 = np.subtract(mic, y, out=self._e2)
        out = self._two_path(e2[0], e2[1], y[0], y[1])
        self._frames += 1
        if ref_energy > 1e-6 * n:
            self._adapt(mic, ref_energy, xv, pv)
        return out

    def _two_path(self, e_fg: Real, e_bg: Real, y_fg: Real, y_bg: Real) -> tuple[Real, Real]:
        sff = float(e_fg @ e_fg)
        see = float(e_bg @ e_bg)
        diff = y_bg - y_fg
        dbf = 10.0 + float(diff @ diff)
        d = sff - see
        self._davg1 = 0.6 * self._davg1 + 0.4 * d
        self._davg2 = 0.85 * self._davg2 + 0.15 * d
        self._dvar1 = 0.36 * self._dvar1 + 0.16 * sff * dbf
        self._dvar2 = 0.7225 * self._dvar2 + 0.0225 * sff * dbf
        self._e_bg = e_bg
        self._track_leak(sff, float(y_fg @ y_fg))
        if (
            d * abs(d) > sff * dbf
            or self._davg1 * abs(self._davg1) > _VAR1_UPDATE * self._dvar1
            or self._davg2 * abs(self._davg2) > _VAR2_UPDATE * self._dvar2
        ):
            self._davg1 = self._davg2 = self._dvar1 = self._dvar2 = 0.0
            self.w_fg[:] = self.w_bg
            fade = self._fade_in
            return e_fg + fade * (e_bg - e_fg), y_fg + fade * (y_bg - y_fg)
        if (
            -d * abs(d) > _VAR_BACKTRACK * sff * dbf
            or -self._davg1 * abs(self._davg1) > _VAR_BACKTRACK * self._dvar1
            or -self._davg2 * abs(self._davg2) > _VAR_BACKTRACK * self._dvar2
        ):
            self.w_bg[:] = self.w_fg
            self._e_bg = e_fg
            self._davg1 = self._davg2 = self._dvar1 = self._dvar2 = 0.0
        return e_fg, y_fg

    def _track_leak(self, pe: float, py: float) -> None:
        de = pe - self._m_e
        dy = py - self._m_y
        self._m_e += 0.05 * de
        self._m_y += 0.05 * dy
        rate = min(0.2 * py / (pe + 1e-6), 0.05)
        self._cov += rate * (de * dy - self._cov)
        self._var_y += rate * (dy * dy - self._var_y)
        if self._var_y > 1e-6:
            self.misadjustment = min(max(self._cov / self._var_y, 0.0), 1.0)

    def _adapt(self, mic: Real, sxx: float, xv: Complex, pv: Real) -> None:
        n, cfg = self._n, self.cfg
        var = self._var
        self._active += 1
        if self._active <= cfg.warmup_blocks:
            # Prior scale: echo path power gain from mic and reference energies (an
            # overestimate is harmless: the first steps are then plain NLMS).
            self._mic_energy += float(mic @ mic)
            self._ref_energy += sxx
            np.maximum(var, self._prior * (4.0 * self._mic_energy / self._ref_energy), out=var)
        pad = self._pad
        pad[n:] = self._e_bg
        err = rfft(pad, out=self._err)
        pe = (err * err.conj()).real
        # Predicted error power explained by coefficient uncertainty; the rest is
        # what no filter can predict (near-end speech, noise).
        explained = np.einsum("kf,kf->f", var, pv)
        psi = pe - explained
        np.maximum(psi, 0.5 * self._psi, out=psi)
        self._psi = psi
        den = 2.0 * psi
        den += explained
        den += 1e-10
        gain = np.divide(var, den, out=self._gain)
        step = np.multiply(gain, err, out=self._step)
        step *= xv
        self.w_bg += step
        gain *= pv
        gain *= -0.5 * cfg.forgetting
        gain += cfg.forgetting
        var *= gain
        if self._frames % cfg.noise_every == 0:
            v = self.w_bg
            # Process noise: the echo path may move, more so while the filter is
            # visibly still learning.
            q = cfg.noise_every * ((1.0 - cfg.forgetting) + cfg.relearn * self.misadjustment)
            var += q * (v.real * v.real + v.imag * v.imag)
        if self._frames % cfg.constrain_every == 0:
            w = irfft(self.w_bg, 2 * n, out=self._w_time)
            w[:, n:] = 0.0
            rfft(w, out=self.w_bg)
