"""The webrtc backend's speech score: webrtcvad's modes and a whitened SNR.

webrtcvad alone either keeps speech and fires on noise (mode 0) or rejects noise
and loses speech (mode 3); its verdicts flip on pink noise because its own noise
model adapts slowly and lumps the spectrum into six fixed bands. This module adds
what it lacks: the frame's spectrum in ten bands, each compared with that band's
own noise floor (minimum statistics over 1.5 s), so tilted noise such as pink
noise is whitened before the SNR is read (the 2-6 kHz bands, where pink noise is
weakest, count most); and the SNR averaged over several time spans, so a frame
inside a word counts more than a click. Each frame's straight-line trend is
removed before its spectrum is taken, so the rumble of brown noise does not leak
into the upper bands. A fixed logistic combination of webrtcvad's verdicts in
modes 0-2 and these SNRs gives one score per 10 ms frame (log-odds of speech).

The weights are not tuned by hand: ``scripts/bench/vad_fit.py`` fits them on
benchmark scenes generated from training seeds only (the benchmark's own seed
is held out) and prints the tuple below.

No clocks: time is counted in frames. The analysis runs at 16 kHz.
"""

from __future__ import annotations

import importlib
import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import webrtcvad

ANALYSIS_RATE_HZ = 16000
FRAME_SAMPLES = ANALYSIS_RATE_HZ // 100
_NFFT = 256
_BAND_EDGES_HZ = (125, 250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8001)
_VOICE_HZ = (250.0, 4000.0)
"""The voice band, where the level guard reads the user's loudness."""
_FLOOR_BLOCK_FRAMES = 10
_FLOOR_BLOCKS = 15
"""Noise floor per band = lowest smoothed power of the last 15 blocks of 100 ms."""
_FLOOR_MIN_DBFS = -75.0
"""The quietest noise floor assumed, as white noise at this level: a microphone's own
noise sits above it. Against digital silence, the faint leak of an echo canceller
would otherwise stand 30 dB over the floor and hold speech on."""
_SNR_CAP_DB = 30.0
_LOW_BANDS = slice(1, 4)
_HIGH_BANDS = slice(6, 9)
_TINY = 1e-12
_add = np.add.reduce
"""Sums without the array method's Python wrapper: it runs several times a frame."""


def _public_rfft(samples: npt.NDArray[np.float64], out: npt.NDArray[np.complex128]) -> None:
    out[...] = np.fft.rfft(samples, _NFFT)


def _rfft_kernel() -> Callable[[npt.NDArray[np.float64], npt.NDArray[np.complex128]], None]:
    """The ``_NFFT``-point real FFT of a shorter frame (zero-padded) into ``out``.

    ``numpy.fft.rfft`` spends more time checking its arguments than transforming
    256 points; numpy 2 exposes the pocketfft kernel as a ufunc that pads to the
    length of ``out`` itself. It is used when it gives numpy's exact result.
    """
    try:
        kernel: Any = importlib.import_module("numpy.fft._pocketfft_umath").rfft_n_even
        probe = np.random.default_rng(0).standard_normal(FRAME_SAMPLES)
        got = np.empty(_NFFT // 2 + 1, dtype=np.complex128)
        kernel(probe, 1.0, out=got)
        if not np.array_equal(got, np.fft.rfft(probe, _NFFT)):
            return _public_rfft
    except (ImportError, AttributeError, TypeError, ValueError):
        return _public_rfft

    def rfft(samples: npt.NDArray[np.float64], out: npt.NDArray[np.complex128]) -> None:
        kernel(samples, 1.0, out=out)

    return rfft


_rfft = _rfft_kernel()

FEATURES = (
    "webrtcvad mode 0",
    "webrtcvad mode 1",
    "webrtcvad mode 2",
    "band SNR",
    "band SNR, 20 ms",
    "band SNR, 50 ms",
    "band SNR, 140 ms",
    "total SNR",
    "total SNR, 50 ms",
    "modes 1+2, 30 ms",
    "loudest band SNR",
    "low band SNR",
    "low band SNR, 50 ms",
    "high band SNR",
    "high band SNR, 50 ms",
)
"""What :meth:`SpeechFeatures.update` returns, in order (SNRs in dB, capped 0..30;
the spans are the time constants of exponential averages). Low: 250-1000 Hz, where
voicing and the first formant sit; high: 2-6 kHz, where pink noise is weakest and
fricatives and the upper formants stand out."""

WEIGHTS: tuple[float, ...] = (
    0.9331, -0.9158, -0.7289,  # webrtcvad modes 0..2
    -1.4260, 0.7120, 0.7598, 1.5102,  # band SNR: now, 20, 50, 140 ms
    1.4464, 0.0020,  # total SNR: now, 50 ms
    1.8581,  # modes 1+2, 30 ms
    -0.2034,  # loudest band SNR
    0.1580, -0.5581,  # low band SNR: now, 50 ms
    0.6009, 1.0638,  # high band SNR: now, 50 ms
)  # fmt: skip
BIAS = -13.7662
"""Logistic weights for :data:`FEATURES`: score = BIAS + sum(w * feature)."""


def _ema_keep(span_frames: float) -> float:
    """Share of the old value an exponential average keeps per frame."""
    return 1.0 - 1.0 / span_frames


class SpeechFeatures:
    """Per-frame features of 10 ms PCM16 frames at 16 kHz, streaming and stateful."""

    def __init__(self) -> None:
        freqs = np.fft.rfftfreq(_NFFT, 1.0 / ANALYSIS_RATE_HZ)
        # Adjacent bands: each runs from its first bin to the next band's first.
        self._band_starts = np.searchsorted(freqs, _BAND_EDGES_HZ[:-1])
        self._band_bins = np.diff(np.searchsorted(freqs, _BAND_EDGES_HZ))
        low_hz, high_hz = _VOICE_HZ  # both ends included
        self._voice = slice(
            int(np.searchsorted(freqs, low_hz, side="left")),
            int(np.searchsorted(freqs, high_hz, side="right")),
        )
        # White noise of variance v has a mean |X_k|^2 of FRAME_SAMPLES * v in every bin.
        white = FRAME_SAMPLES * 32768.0**2 * 10.0 ** (_FLOOR_MIN_DBFS / 10)
        self._floor_min = self._band_bins * white
        # Parseval: twice the one-sided energy over nfft, per sample of the frame.
        self._scale = 2.0 / (_NFFT * FRAME_SAMPLES * 32768.0 * 32768.0)
        self._vads = [webrtcvad.Vad(mode) for mode in range(3)]
        # Each frame's straight-line trend is removed first: the strong low frequencies
        # of brown and pink noise would otherwise leak into the upper bands by an
        # amount that changes from frame to frame (the frame is cut off square).
        ramp = np.linspace(-1.0, 1.0, FRAME_SAMPLES)
        self._ramp = ramp
        self._ones = np.ones(FRAME_SAMPLES)
        # A vector projection, not a matrix product: numpy hands those to BLAS, whose
        # worker threads cost more CPU than the arithmetic at this size.
        self._ramp_norm = 1.0 / float(ramp @ ramp)
        self._keep = (_ema_keep(2), _ema_keep(5), _ema_keep(14), _ema_keep(3))
        # Work arrays reused on every frame: the loop runs 100 times a second.
        self._spectrum = np.empty(_NFFT // 2 + 1, dtype=np.complex128)
        self._parts = self._spectrum.view(np.float64).reshape(-1, 2)  # (re, im) per bin
        self._squares = np.empty_like(self._parts)
        self._power = np.empty(_NFFT // 2 + 1)
        self._band = np.empty(len(self._band_starts))
        self._snr = np.empty(len(self._band_starts))
        self.reset()

    def reset(self) -> None:
        self._smooth: npt.NDArray[np.float64] | None = None
        self._block_min: npt.NDArray[np.float64] | None = None
        self._block_frames = 0
        self._blocks: list[npt.NDArray[np.float64]] = []
        self._blocks_min: npt.NDArray[np.float64] | None = None
        self._snr_avg = [0.0, 0.0, 0.0]
        self._total_avg = 0.0
        self._modes_avg = 0.0
        self._low_avg = 0.0
        self._high_avg = 0.0
        self.voice_power = 0.0
        """Mean power per sample (full scale 1.0) of the latest frame's voice band."""

    def _floor(self, smooth: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        block_min = smooth if self._block_min is None else np.minimum(self._block_min, smooth)
        floor = block_min if self._blocks_min is None else np.minimum(block_min, self._blocks_min)
        self._block_frames += 1
        if self._block_frames == _FLOOR_BLOCK_FRAMES:
            self._blocks = [*self._blocks[-(_FLOOR_BLOCKS - 1) :], block_min]
            self._blocks_min = np.min(self._blocks, axis=0)
            self._block_min = None
            self._block_frames = 0
        else:
            self._block_min = block_min
        clamped: npt.NDArray[np.float64] = np.maximum(floor, self._floor_min)
        return clamped

    def update(self, pcm: bytes) -> list[float]:
        """Features of one 10 ms frame (``FRAME_SAMPLES`` little-endian PCM16 samples)."""
        modes = [float(vad.is_speech(pcm, ANALYSIS_RATE_HZ, FRAME_SAMPLES)) for vad in self._vads]
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        slope = float(np.dot(self._ramp, samples)) * self._ramp_norm
        # A dot product with ones sums the whole-number samples exactly, like a reduce,
        # at a third of its cost.
        samples -= float(np.dot(self._ones, samples)) / FRAME_SAMPLES
        samples -= slope * self._ramp
        _rfft(samples, self._spectrum)
        # |X|^2 as re*re + im*im, bin by bin, into the reused arrays.
        squares, power, band = self._squares, self._power, self._band
        np.multiply(self._parts, self._parts, out=squares)
        np.add(squares[:, 0], squares[:, 1], out=power)
        self.voice_power = float(_add(power[self._voice])) * self._scale
        np.add.reduceat(power, self._band_starts, out=band)
        band = band + _TINY
        smooth = band if self._smooth is None else 0.5 * (band + self._smooth)
        self._smooth = smooth
        floor = self._floor(smooth)
        snr = self._snr
        np.divide(band, floor, out=snr)
        np.log10(snr, out=snr)
        np.multiply(snr, 10.0, out=snr)
        np.maximum(snr, 0.0, out=snr)
        np.minimum(snr, _SNR_CAP_DB, out=snr)
        each = snr.tolist()
        mean_snr = sum(each) / len(each)
        low = sum(each[_LOW_BANDS]) / len(each[_LOW_BANDS])
        high = sum(each[_HIGH_BANDS]) / len(each[_HIGH_BANDS])
        fast, mid, slow, short = self._keep
        avg = self._snr_avg
        avg[0] = fast * avg[0] + (1.0 - fast) * mean_snr
        avg[1] = mid * avg[1] + (1.0 - mid) * mean_snr
        avg[2] = slow * avg[2] + (1.0 - slow) * mean_snr
        total = min(
            max(10.0 * math.log10(float(_add(band)) / float(_add(floor))), 0.0), _SNR_CAP_DB
        )
        self._total_avg = mid * self._total_avg + (1.0 - mid) * total
        self._modes_avg = short * self._modes_avg + (1.0 - short) * (modes[1] + modes[2])
        self._low_avg = mid * self._low_avg + (1.0 - mid) * low
        self._high_avg = mid * self._high_avg + (1.0 - mid) * high
        return [
            *modes,
            mean_snr,
            *avg,
            total,
            self._total_avg,
            self._modes_avg,
            max(each),
            low,
            self._low_avg,
            high,
            self._high_avg,
        ]


def score(features: list[float]) -> float:
    """Log-odds that the frame holds speech, from the fitted weights."""
    return float(BIAS + sum(map(operator.mul, WEIGHTS, features)))
