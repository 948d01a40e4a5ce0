"""PCM framing and conversions shared by the capture and playback paths.

The capture callback hands over blocks whose size is set by the sound card, while
the echo canceller and the voice detector want exact 10 ms frames, and the
Realtime API wants little-endian PCM16 bytes. Everything here is pure and
allocation-light so it can run on every audio block of a Raspberry Pi.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]
"""Mono int16 PCM, one dimension, one sample per frame."""

_PCM_FULL_SCALE = 32768.0
_INT16_MIN = -32768
_INT16_MAX = 32767
_LE_INT16 = np.dtype("<i2")
_INT16 = np.dtype(np.int16)


def check_mono_pcm(samples: Pcm, what: str = "samples") -> None:
    """Reject anything but 1-D int16, so a stereo block or a float buffer fails loudly
    at the boundary instead of being silently reinterpreted further down."""
    if type(samples) is np.ndarray and samples.dtype is _INT16 and samples.ndim == 1:
        return  # the usual case, decided in three cheap comparisons (it runs per frame)
    if not isinstance(samples, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(samples).__name__}")
    if samples.dtype != np.int16:
        raise ValueError(f"{what} must be int16 PCM, got dtype {samples.dtype}")
    if samples.ndim != 1:
        raise ValueError(f"{what} must be mono (1-D), got shape {samples.shape}")


class Framer:
    """Cuts a stream of arbitrary-length int16 chunks into frames of exactly
    ``frame_frames`` samples.

    Sound cards deliver whatever block size they negotiated; the samples that do
    not fill a frame are carried over to the next ``push`` so no audio is lost or
    duplicated at block boundaries.
    """

    def __init__(self, frame_frames: int) -> None:
        if frame_frames <= 0:
            raise ValueError(f"frame_frames must be positive, got {frame_frames}")
        self._frame_frames = frame_frames
        self._pending: Pcm = np.zeros(0, dtype=np.int16)

    @property
    def frame_frames(self) -> int:
        return self._frame_frames

    @property
    def pending_frames(self) -> int:
        """Samples held back because they do not yet fill a whole frame."""
        return int(self._pending.shape[0])

    def push(self, samples: Pcm) -> list[Pcm]:
        """Add a chunk and return every frame it completes (0..n), each a fresh copy
        so later pushes or the caller reusing its buffer cannot change them."""
        check_mono_pcm(samples)
        stream = np.concatenate((self._pending, samples)) if self._pending.size else samples
        whole_frames = stream.shape[0] // self._frame_frames
        cut = whole_frames * self._frame_frames
        frames = [
            stream[i : i + self._frame_frames].copy() for i in range(0, cut, self._frame_frames)
        ]
        self._pending = stream[cut:].copy()
        return frames

    def reset(self) -> None:
        """Drop the carried-over samples, e.g. when the stream restarts after an xrun."""
        self._pending = np.zeros(0, dtype=np.int16)


def frames_for_ms(rate_hz: int, ms: float) -> int:
    """Number of samples in ``ms`` at ``rate_hz``.

    Raises ValueError when the duration is not a whole number of samples (10 ms at
    44100 Hz is 441 samples, but 10 ms at 22050 Hz is 220.5): silently rounding
    would make frame sizes drift away from the durations the rest of the pipeline
    assumes.
    """
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, int) or rate_hz <= 0:
        raise ValueError(f"rate_hz must be a positive integer, got {rate_hz!r}")
    if not math.isfinite(ms) or ms < 0:
        raise ValueError(f"ms must be a finite non-negative duration, got {ms!r}")
    # str() keeps the decimal the caller wrote (0.1, not its binary approximation).
    exact = Fraction(rate_hz) * Fraction(str(ms)) / 1000
    if exact.denominator != 1:
        raise ValueError(f"{ms} ms at {rate_hz} Hz is {float(exact)} samples, not a whole number")
    return int(exact)


def pcm_to_bytes(samples: Pcm) -> bytes:
    """Little-endian int16 bytes, the wire format of the Realtime API's ``audio/pcm``."""
    check_mono_pcm(samples)
    return samples.astype(_LE_INT16, copy=False).tobytes()


def bytes_to_pcm(data: bytes) -> Pcm:
    """Decode little-endian int16 bytes into a writable, native-order array."""
    if len(data) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype=_LE_INT16).astype(np.int16)


def float_to_pcm(x: npt.NDArray[np.floating[Any]]) -> Pcm:
    """Convert float audio in [-1, 1) to int16.

    Values outside the range are clipped rather than wrapped (a wrapped overshoot
    is a loud click); NaN becomes silence.
    """
    clean = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    top = _INT16_MAX / _PCM_FULL_SCALE
    scaled = np.rint(np.clip(clean, -1.0, top) * _PCM_FULL_SCALE)
    return np.clip(scaled, _INT16_MIN, _INT16_MAX).astype(np.int16)


def pcm_to_float(x: Pcm) -> npt.NDArray[np.float32]:
    """Convert int16 to float32 in [-1, 1), the inverse of :func:`float_to_pcm`."""
    out = np.asarray(x, dtype=np.int16).astype(np.float32)
    out *= np.float32(1.0 / _PCM_FULL_SCALE)
    return out
