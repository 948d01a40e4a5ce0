"""Echo-cancellation metrics for the benchmark, pure functions on float signals.

Signals are 1-D float arrays in full-scale units (int16 PCM divided by 32768), all
at one sample rate. Energies are summed over 10 ms frames, the frame the cancellers
work on, so every curve has one point per frame.

- ERLE (echo return loss enhancement): how much quieter the output is than the mic
  while only the loudspeaker plays, ``10 log10(E[mic^2] / E[out^2])``, summed over
  the frames where the echo is present.
- Time to a threshold: when a short-window ERLE curve first reaches a value and
  stays there, from an onset (far-end speech starting, the echo path changing).
- SI-SDR (scale-invariant signal-to-distortion ratio): how much of the user's
  clean speech survives in the output, blind to a gain change.
- Level difference: output level minus input level when only the user speaks.
- CPU per audio second: ``time.process_time`` spent in the canceller over the audio
  duration; process time counts every thread of the process, so a canceller whose
  library works on its own thread is charged in full.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Signal = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

_TINY = 1e-20


def as_signal(x: npt.ArrayLike) -> Signal:
    """A float64 copy of ``x``; int16 PCM is scaled to full-scale units."""
    arr = np.asarray(x)
    if arr.dtype == np.int16:
        return arr.astype(np.float64) / 32768.0
    return arr.astype(np.float64)


def db(ratio: float) -> float:
    """Power ratio in dB, with 0 and negative values clamped to -200 dB."""
    return float(10.0 * np.log10(max(ratio, _TINY)))


def frame_energies(x: npt.ArrayLike, frame_frames: int) -> Signal:
    """Sum of squares of each whole frame of ``frame_frames`` samples (a tail is dropped)."""
    if frame_frames <= 0:
        raise ValueError(f"frame_frames must be positive, got {frame_frames}")
    sig = as_signal(x)
    n = sig.shape[0] // frame_frames
    frames = sig[: n * frame_frames].reshape(n, frame_frames)
    return np.asarray(np.einsum("ij,ij->i", frames, frames), dtype=np.float64)


def active_level_dbfs(x: npt.ArrayLike, frame_frames: int, below_peak_db: float = 40.0) -> float:
    """RMS level in dBFS of the frames within ``below_peak_db`` of the loudest frames.

    A simplified active speech level (ITU-T P.56 in spirit): pauses do not dilute it,
    so two talkers set to levels 10 dB apart are 10 dB apart while they speak. The
    reference is the 99th percentile frame energy, so one click does not set it.
    """
    energies = frame_energies(x, frame_frames)
    if energies.size == 0 or float(energies.max()) <= 0.0:
        return -200.0
    top = float(np.percentile(energies, 99))
    active = energies >= top * 10 ** (-below_peak_db / 10)
    return db(float(energies[active].mean()) / frame_frames)


def echo_active_mask(
    echo: npt.ArrayLike,
    noise: npt.ArrayLike,
    frame_frames: int,
    min_echo_to_noise_db: float = 30.0,
    below_peak_db: float = 40.0,
) -> Mask:
    """Frames where the echo is clearly present: within ``below_peak_db`` of the echo's
    loudest frames and at least ``min_echo_to_noise_db`` above the noise in that frame.

    ERLE is read only on these frames; elsewhere the ratio would measure the room's
    noise, not the canceller.
    """
    e = frame_energies(echo, frame_frames)
    n = frame_energies(noise, frame_frames)
    if e.size == 0 or float(e.max()) <= 0.0:
        return np.zeros(e.shape, dtype=bool)
    top = float(np.percentile(e, 99))
    loud = e >= top * 10 ** (-below_peak_db / 10)
    clear = e >= n * 10 ** (min_echo_to_noise_db / 10)
    return np.asarray(loud & clear, dtype=bool)


def erle_db(mic: npt.ArrayLike, out: npt.ArrayLike, frame_frames: int, mask: Mask | None) -> float:
    """ERLE over the masked frames: total mic energy over total output energy, in dB.

    Summing energies before the ratio weights loud frames the way a listener hears
    them; a frame-by-frame average of dB values would let near-silent frames dominate.
    Returns NaN when no frame is selected.
    """
    m = frame_energies(mic, frame_frames)
    o = frame_energies(out, frame_frames)
    n = min(m.size, o.size)
    sel = np.ones(n, dtype=bool) if mask is None else mask[:n]
    if not bool(sel.any()):
        return float("nan")
    return db(float(m[:n][sel].sum()) / max(float(o[:n][sel].sum()), _TINY))


def erle_curve_db(
    mic: npt.ArrayLike, out: npt.ArrayLike, frame_frames: int, mask: Mask, window_frames: int
) -> Signal:
    """ERLE over a trailing window of ``window_frames`` frames, one value per frame.

    Only masked frames count; a window with no masked frame is NaN. A short window
    (50 ms) follows convergence closely and lags it by at most its own length.
    """
    if window_frames <= 0:
        raise ValueError(f"window_frames must be positive, got {window_frames}")
    m = frame_energies(mic, frame_frames)
    o = frame_energies(out, frame_frames)
    n = min(m.size, o.size, mask.size)
    sel = mask[:n].astype(np.float64)
    cm = np.concatenate(([0.0], np.cumsum(m[:n] * sel)))
    co = np.concatenate(([0.0], np.cumsum(o[:n] * sel)))
    cs = np.concatenate(([0.0], np.cumsum(sel)))
    hi = np.arange(1, n + 1)
    lo = np.maximum(hi - window_frames, 0)
    wm = cm[hi] - cm[lo]
    wo = co[hi] - co[lo]
    count = cs[hi] - cs[lo]
    curve = np.full(n, np.nan)
    ok = count > 0
    curve[ok] = 10.0 * np.log10(np.maximum(wm[ok], _TINY) / np.maximum(wo[ok], _TINY))
    return curve


def time_to_threshold_s(
    curve_db: Signal,
    frame_s: float,
    start_index: int,
    threshold_db: float,
    hold_s: float = 0.5,
    hold_fraction: float = 0.9,
    end_index: int | None = None,
) -> float | None:
    """Seconds from ``start_index`` until the curve reaches ``threshold_db`` to stay.

    "To stay": at the first frame counted, the curve is at or above the threshold,
    and so is at least ``hold_fraction`` of its defined (non-NaN) points in the next
    ``hold_s``. A lucky spike before convergence therefore does not count, and nor
    does one unlucky frame afterwards. Returns None when the curve never gets there
    before ``end_index`` (default: the end of the curve).
    """
    stop = curve_db.size if end_index is None else min(end_index, curve_db.size)
    hold = max(1, round(hold_s / frame_s))
    for i in range(max(start_index, 0), stop):
        value = curve_db[i]
        if not np.isfinite(value) or value < threshold_db:
            continue
        window = curve_db[i : min(i + hold, stop)]
        defined = window[np.isfinite(window)]
        if defined.size and float(np.mean(defined >= threshold_db)) >= hold_fraction:
            return (i - start_index) * frame_s
    return None


def best_lag(reference: npt.ArrayLike, estimate: npt.ArrayLike, max_lag: int) -> int:
    """The delay in samples (0..max_lag) of ``estimate`` behind ``reference`` that
    maximises their cross-correlation; cancellers may add a few samples of latency."""
    ref = as_signal(reference)
    est = as_signal(estimate)
    n = min(ref.size, est.size)
    if n == 0 or max_lag <= 0:
        return 0
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(est[:n], size) * np.conj(np.fft.rfft(ref[:n], size))
    xcorr = np.fft.irfft(spec, size)[: max_lag + 1]
    return int(np.argmax(xcorr))


def si_sdr_db(reference: npt.ArrayLike, estimate: npt.ArrayLike) -> float:
    """Scale-invariant SDR in dB of ``estimate`` against ``reference`` (same length).

    The reference is scaled to best fit the estimate (the projection), whatever is
    left of the estimate is distortion; a pure gain change scores like the original.
    """
    ref = as_signal(reference)
    est = as_signal(estimate)
    if ref.shape != est.shape:
        raise ValueError(f"shapes differ: reference {ref.shape}, estimate {est.shape}")
    ref_energy = float(ref @ ref)
    if ref_energy <= 0.0:
        raise ValueError("reference is silent")
    alpha = float(est @ ref) / ref_energy
    target = alpha * ref
    residual = est - target
    return db(float(target @ target) / max(float(residual @ residual), _TINY))


def aligned_si_sdr_db(
    reference: npt.ArrayLike, estimate: npt.ArrayLike, max_lag: int
) -> tuple[float, int]:
    """SI-SDR after undoing the estimate's latency (searched up to ``max_lag`` samples);
    returns the score and the lag used."""
    ref = as_signal(reference)
    est = as_signal(estimate)
    lag = best_lag(ref, est, max_lag)
    n = min(ref.size, est.size - lag)
    return si_sdr_db(ref[:n], est[lag : lag + n]), lag


def level_difference_db(inp: npt.ArrayLike, out: npt.ArrayLike) -> float:
    """Output energy over input energy in dB: 0 means the level was kept."""
    a = as_signal(inp)
    b = as_signal(out)
    return db(float(b @ b) / max(float(a @ a), _TINY))


def pesq_wb(reference: npt.ArrayLike, degraded: npt.ArrayLike, rate_hz: int) -> float | None:
    """Wideband PESQ (MOS-LQO) of ``degraded`` against ``reference``, or None when the
    ``pesq`` package is missing or gives up on the signal. Other rates are resampled to
    16 kHz, the only wideband rate PESQ defines."""
    try:
        from pesq import pesq  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    ref = as_signal(reference)
    deg = as_signal(degraded)
    if rate_hz != 16000:
        import soxr

        ref = np.asarray(soxr.resample(ref, rate_hz, 16000), dtype=np.float64)
        deg = np.asarray(soxr.resample(deg, rate_hz, 16000), dtype=np.float64)
    try:
        score: Any = pesq(16000, ref, deg, "wb")
    except Exception:  # the package raises its own errors for silent or odd input
        return None
    return float(score)


@dataclass
class CpuTimer:
    """Process CPU seconds spent inside a ``with cpu_timer() as t:`` block."""

    seconds: float = 0.0


@contextmanager
def cpu_timer() -> Iterator[CpuTimer]:
    timer = CpuTimer()
    start = time.process_time()
    try:
        yield timer
    finally:
        timer.seconds = time.process_time() - start


def cpu_per_audio_second(cpu_s: float, audio_s: float) -> float:
    """CPU seconds spent per second of audio processed."""
    if audio_s <= 0:
        raise ValueError(f"audio_s must be positive, got {audio_s}")
    return cpu_s / audio_s
