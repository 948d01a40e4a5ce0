"""Residual echo suppression after the linear echo canceller.

The linear filter leaves some echo behind: the part of the room's tail it does
not model, loudspeaker distortion, and whatever it has not learnt yet. This stage
removes that residue with a gain per frequency bin, computed from how much of the
error in that bin the echo estimate explains:

* residual echo power = leakage x echo-estimate power (with a decaying hold for
  the room's tail), the leakage tracked per band as the low envelope of the
  error-to-echo-estimate ratio: near-end speech only ever raises that ratio, so
  a user talking over the speaker does not make the suppressor think the echo
  got louder. It may rise fast only while the linear filter reports that it is
  still learning;
* gain = 1 - over-subtraction x residual / error, floored and clipped to 1. In a
  bin where the user's voice dominates the gain stays near 1, so the voice is
  kept; where only echo is left the gain drops to the floor;
* a band whose error is within a few dB of its residual echo estimate (nobody
  talking near the device in that band) is gated down to the floor;
* while the whole frame looks like the far end alone (its error within a few dB
  of the residual estimate summed over bands, the filter converged) the gate
  closes on bands up to ``far_only_extra_db`` further above that estimate: the
  residual of a distorting loudspeaker or of a long room tail swings well above
  the estimate in single bands, and with nobody else talking there is nothing to
  keep. When the user speaks the frame's ratio jumps and the gate is back to its
  gentle thresholds at once.

The gains are applied with zero added latency and zero phase, by overlap-save on
the previous and the current block (the previous block faded in, so the
circular wrap of the zero-phase filter reads little); the output frame is the
input frame, filtered, with no look-ahead and no phase distortion of the voice.
With no echo estimate the gain is exactly 1 and the signal passes untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.audio.aec_fft import irfft, rfft

Real = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SuppressorConfig:
    block_frames: int
    bands: int = 16
    over_subtraction: float = 3.0
    floor: float = 0.003
    leak_max: float = 100.0
    leak_min: float = 1e-4
    echo_hold: float = 0.6
    gate_lo_db: float = 5.0
    gate_hi_db: float = 14.0
    leak_rise_db: float = 0.01
    leak_rise_fast_db: float = 0.5
    far_only_lo_db: float = 9.0
    far_only_hi_db: float = 17.0
    far_only_extra_db: float = 14.0
    far_only_misadjustment: float = 0.01
    far_only_attack: float = 0.015


def _band_matrix(bins: int, bands: int) -> Real:
    """bins x bands averaging matrix over roughly log-spaced bands (DC alone excluded)."""
    edges = np.unique(np.round(np.geomspace(2, bins, bands + 1)).astype(int))
    edges[0] = 0
    edges[-1] = bins
    m = np.zeros((bins, len(edges) - 1))
    for b in range(len(edges) - 1):
        m[edges[b] : edges[b + 1], b] = 1.0
    return m


class ResidualSuppressor:
    """Per-bin residual echo gains; see the module doc."""

    def __init__(self, cfg: SuppressorConfig) -> None:
        self.cfg = cfg
        n = cfg.block_frames
        self._n = n
        self._bins = n + 1
        self._bandsum: Real = _band_matrix(self._bins, cfg.bands)
        self._band_of_bin: Real = self._bandsum.T.copy()
        self._neg_band_of_bin: Real = -cfg.over_subtraction * self._band_of_bin
        # The band gate exp(clip(slope (hi - 10 log10 r), log floor, 0)) written as
        # clip(scale r**power, floor, 1): one power instead of a log and an exp.
        slope = float(np.log(cfg.floor)) / (cfg.gate_hi_db - cfg.gate_lo_db)
        self._gate_power = -10.0 * slope / float(np.log(10.0))
        self._gate_scale = float(np.exp(slope * cfg.gate_hi_db))
        self._nb = self._bandsum.shape[1]
        self._win: Real = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(2 * n) / (2 * n)))
        # The gain is applied zero-phase to [previous block, block]; the circular
        # wrap reads the oldest samples as if they came after the block, so the
        # previous block fades in from zero.
        taper = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
        self._windows: Real = np.stack((self._win, self._win, np.concatenate((taper, np.ones(n)))))
        # Work buffers, reused every block.
        self._windowed: Real = np.zeros((3, 2 * n))
        self._spec: npt.NDArray[np.complex128] = np.zeros((3, self._bins), dtype=np.complex128)
        self._out: Real = np.zeros(2 * n)
        self._log_leak_min = float(np.log10(cfg.leak_min))
        self._log_leak_max = float(np.log10(cfg.leak_max))
        self.reset()

    def reset(self) -> None:
        n, f, nb = self._n, self._bins, self._nb
        self._buf: Real = np.zeros((3, 2 * n))
        # Smoothed power of the error (row 0) and of the held echo estimate (row 1).
        self._pair: Real = np.zeros((2, f))
        self._se: Real = self._pair[0]
        self._sy: Real = self._pair[1]
        self._hold: Real = np.zeros(f)
        self._mean_e: Real = np.zeros(nb)
        self._mean_y: Real = np.zeros(nb)
        self._cov: Real = np.zeros(nb)
        self._var: Real = np.zeros(nb)
        self._log_leak: Real = np.zeros(nb)
        self.gain: Real = np.ones(f)
        self._far_only_state = 0.0

    def process(self, err: Real, echo: Real, misadjustment: float) -> Real:
        n, f = self._n, self._bins
        buf = self._buf
        buf[:, :n] = buf[:, n:]
        buf[0, n:] = err
        buf[1, n:] = echo
        buf[2, n:] = err
        spec = rfft(np.multiply(buf, self._windows, out=self._windowed), out=self._spec)
        two = spec[:2]
        pw = (two * two.conj()).real
        cfg = self.cfg
        hold = self._hold
        hold *= cfg.echo_hold
        np.maximum(hold, pw[1], out=hold)
        pw[1] = hold
        # Both rows at once: se += 0.5 (pw - se), sy += 0.5 (hold - sy).
        pair = self._pair
        pw -= pair
        pw *= 0.5
        pair += pw
        both = pair @ self._bandsum
        both += 1e-10
        band_e = both[0]
        band_y = both[1]
        totals = both.sum(axis=1)
        if float(totals[1]) <= 1e-9 * float(totals[0]):
            self.gain = np.ones(f)
            return err.copy()
        leak = self._update_leak(band_e, band_y, misadjustment)
        gain = leak @ self._neg_band_of_bin  # -over_subtraction x leak, per bin
        gain *= self._sy
        gain /= self._se + 1e-10
        gain += 1.0
        # Band gate: a band whose error is within a few dB of its residual echo
        # estimate holds no voice worth keeping and goes to the floor; one well
        # above it (the user talking) is left to the gentle per-bin gain. The gate
        # opens in log gain from the floor at gate_lo_db to 1 at gate_hi_db.
        gate = band_y * leak
        far_only = self._far_only(float(band_e.sum()) / float(gate.sum()), misadjustment)
        np.divide(band_e, gate, out=gate)
        if far_only > 0.0:
            gate *= 10.0 ** (-far_only * cfg.far_only_extra_db / 10.0)
        np.power(gate, self._gate_power, out=gate)
        gate *= self._gate_scale
        np.maximum(gate, cfg.floor, out=gate)
        np.minimum(gate, 1.0, out=gate)
        gain *= gate @ self._band_of_bin
        np.maximum(gain, cfg.floor, out=gain)
        np.minimum(gain, 1.0, out=gain)
        self.gain = gain
        return self._apply(spec[2], gain)

    def _far_only(self, ratio: float, misadjustment: float) -> float:
        """How sure we are that only the far end is talking, 0..1, from the whole
        frame's error over its residual echo estimate: per band that ratio spreads
        widely (distortion and the room's tail do not follow the echo estimate bin
        by bin), summed over the frame it stays within a few dB of the leak while
        the far end talks alone and jumps by the user's level over the residual
        (15 dB or more) when the user talks. Only trusted while the filter has
        converged (a changed path raises the ratio just like a voice would), and
        regained slowly after the user stops, so the tail of their words and the
        next word's onset are not gated; lost at once when they start."""
        cfg = self.cfg
        if misadjustment >= cfg.far_only_misadjustment:
            self._far_only_state = 0.0
            return 0.0
        r_db = 10.0 * math.log10(ratio)
        sure = (cfg.far_only_hi_db - r_db) / (cfg.far_only_hi_db - cfg.far_only_lo_db)
        sure = min(max(sure, 0.0), 1.0, self._far_only_state + cfg.far_only_attack)
        self._far_only_state = sure
        return sure

    def _update_leak(self, band_e: Real, band_y: Real, misadjustment: float) -> Real:
        """Residual-to-echo-estimate ratio per band, tracked as a low envelope in
        log10: it falls at once and rises slowly, because near-end speech only
        ever raises the ratio. It rises fast while the filter itself reports
        being off (start-up, a changed echo path)."""
        cfg = self.cfg
        rise = (cfg.leak_rise_db + cfg.leak_rise_fast_db * min(1.0, misadjustment / 0.1)) / 10.0
        log_leak = self._log_leak
        step = np.log10(band_e / band_y)
        keep = step < 3.0  # no echo estimate (under 1e-3 of the error): keep the leak
        step -= log_leak
        up = np.maximum(step, 0.0)
        np.minimum(up, rise, out=up)
        np.minimum(step, 0.0, out=step)
        step *= 0.3
        step += up
        step *= keep
        log_leak += step
        np.maximum(log_leak, self._log_leak_min, out=log_leak)
        np.minimum(log_leak, self._log_leak_max, out=log_leak)
        leak: Real = 10.0**log_leak
        return leak

    def _apply(self, block: npt.NDArray[np.complex128], gain: Real) -> Real:
        n = self._n
        if float(gain.min()) > 0.999:
            out: Real = self._buf[2, n:].copy()
            return out
        block *= gain
        res: Real = irfft(block, 2 * n, out=self._out)[n:]
        return res
