"""Real FFTs for the echo canceller's 10 ms blocks, with as little per-call overhead
as numpy allows.

The canceller runs a handful of short transforms on every 10 ms frame. For
transforms of a few hundred points ``numpy.fft.rfft`` spends most of its time in
Python-level argument handling rather than in the transform itself. Where numpy
exposes its pocketfft kernels as ufuncs (numpy 2) these are called directly,
after checking once at import that they agree with ``numpy.fft``; anywhere else
the public functions are used. Either way the results are identical.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Real = npt.NDArray[np.float64]
Spectrum = npt.NDArray[np.complex128]


class RfftFn(Protocol):
    def __call__(self, x: Real, out: Spectrum | None = None) -> Spectrum: ...


class IrfftFn(Protocol):
    def __call__(self, spectrum: Spectrum, n: int, out: Real | None = None) -> Real: ...


def _public_rfft(x: Real, out: Spectrum | None = None) -> Spectrum:
    spectrum = np.fft.rfft(x, axis=-1)
    if out is None:
        return spectrum
    out[...] = spectrum
    return out


def _public_irfft(spectrum: Spectrum, n: int, out: Real | None = None) -> Real:
    signal = np.fft.irfft(spectrum, n, axis=-1)
    if out is None:
        return signal
    out[...] = signal
    return out


def _kernels() -> tuple[RfftFn, IrfftFn]:
    try:
        umath: Any = importlib.import_module("numpy.fft._pocketfft_umath")
        rfft_even = umath.rfft_n_even
        irfft_kernel = umath.irfft
    except (ImportError, AttributeError):
        return _public_rfft, _public_irfft

    empty = np.empty
    complex128 = np.complex128

    def rfft(x: Real, out: Spectrum | None = None) -> Spectrum:
        # Only even lengths reach here: every block size is 2 x a 10 ms frame.
        if out is None:
            out = empty((*x.shape[:-1], x.shape[-1] // 2 + 1), dtype=complex128)
        rfft_even(x, 1.0, out=out)
        return out

    def irfft(spectrum: Spectrum, n: int, out: Real | None = None) -> Real:
        if out is None:
            out = empty((*spectrum.shape[:-1], n))
        irfft_kernel(spectrum, 1.0 / n, out=out)
        return out

    try:
        probe = np.random.default_rng(0).standard_normal((2, 320))
        fast = rfft(probe)
        ok = np.allclose(fast, np.fft.rfft(probe)) and np.allclose(irfft(fast, 320), probe)
    except (TypeError, ValueError):
        ok = False
    return (rfft, irfft) if ok else (_public_rfft, _public_irfft)


rfft, irfft = _kernels()
"""``rfft(x)`` along the last axis of an even-length float64 array, and
``irfft(spectrum, n)`` back to ``n`` real samples; ``out=`` writes into a
preallocated array of the result's shape, so the 10 ms loop allocates nothing."""


class ConjDotFn(Protocol):
    def __call__(self, a: Spectrum, b: Spectrum, out: Spectrum) -> Spectrum: ...


def _vecdot_kernel() -> ConjDotFn:
    vecdot: Any = getattr(np, "vecdot", None)  # numpy >= 2.0
    if vecdot is not None:

        def fast(a: Spectrum, b: Spectrum, out: Spectrum) -> Spectrum:
            result: Spectrum = vecdot(a, b, axis=0, out=out)
            return result

        return fast

    def portable(a: Spectrum, b: Spectrum, out: Spectrum) -> Spectrum:
        result: Spectrum = np.einsum("kf,kf->f", a.conj(), b, out=out)
        return result

    return portable


conj_dot = _vecdot_kernel()
"""``conj_dot(a, b, out)``: sum over the first axis of ``conj(a) * b``, one value per
bin, written into ``out``."""
