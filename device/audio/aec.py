"""Echo cancellation backends behind one small interface.

The capture loop hands every 10 ms microphone frame to an :class:`EchoCanceller`
together with the reference: the exact samples sent to the DAC in the same audio
callback (one clock), or the board's hardware loopback channel. With separate
input and output devices the reference leads the echo by a bulk delay and drifts;
finding that delay is the canceller's job, not the caller's.

Backends:

* ``ours``   partitioned-block frequency-domain adaptive filter with delay tracking,
             two-path adaptation and a residual echo suppressor (``aec_mdf``);
* ``webrtc`` WebRTC AEC3 through livekit's AudioProcessingModule (optional extra);
* ``speex``  SpeexDSP's echo canceller through the ``speexdsp`` binding (optional extra);
* ``none``   passes the microphone through unchanged.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from device.audio.frames import check_mono_pcm

Pcm = npt.NDArray[np.int16]
"""Mono int16 PCM, one dimension (the same type as ``frames.Pcm``)."""

BACKENDS: tuple[str, ...] = ("ours", "webrtc", "speex", "none")
FRAME_MS = 10

_RATES_HZ: dict[str, tuple[int, ...]] = {
    "ours": (8000, 16000, 32000, 48000),
    "webrtc": (8000, 16000, 32000, 48000),
    "speex": (8000, 16000, 32000, 48000),
    "none": (8000, 16000, 32000, 48000),
}


class EchoCanceller(Protocol):
    """Removes the echo of ``reference`` from ``mic``, one 10 ms frame at a time."""

    name: str
    rate_hz: int
    frame_frames: int

    def process(self, mic: Pcm, reference: Pcm) -> Pcm:
        """Exactly one frame of each (mono int16, ``frame_frames`` samples);
        returns the echo-cancelled microphone frame, same length. Raises
        ValueError for frames of another length, dtype or shape."""
        ...

    def reset(self) -> None:
        """Forget everything learnt (echo path, delay), e.g. after the stream restarts."""
        ...


class AecUnavailable(Exception):
    """An optional backend's library is not installed; the message says what to install."""


def check_frames(mic: Pcm, reference: Pcm, frame_frames: int, rate_hz: int) -> None:
    """The frame contract shared by every backend."""
    check_mono_pcm(mic, "mic")
    check_mono_pcm(reference, "reference")
    if mic.shape[0] != frame_frames or reference.shape[0] != frame_frames:
        raise ValueError(
            f"frames must be {frame_frames} samples ({FRAME_MS} ms at {rate_hz} Hz), "
            f"got mic {mic.shape[0]} and reference {reference.shape[0]}"
        )


class PassThrough:
    """The ``none`` backend: the microphone, unchanged (a copy)."""

    name = "none"

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self.frame_frames = rate_hz * FRAME_MS // 1000

    def process(self, mic: Pcm, reference: Pcm) -> Pcm:
        check_frames(mic, reference, self.frame_frames, self.rate_hz)
        return mic.copy()

    def reset(self) -> None:
        return None


def supported_rates(name: str) -> tuple[int, ...]:
    """Sample rates a backend runs at; ValueError for an unknown backend."""
    if name not in _RATES_HZ:
        raise ValueError(f"unknown echo canceller {name!r}; choose one of {', '.join(BACKENDS)}")
    return _RATES_HZ[name]


def make_canceller(name: str, rate_hz: int, **options: Any) -> EchoCanceller:
    """Build a backend by name.

    ValueError for an unknown name, a rate the backend does not run at, or a bad
    option; AecUnavailable when an optional backend's library is missing.
    """
    rates = supported_rates(name)
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, int) or rate_hz not in rates:
        allowed = ", ".join(str(r) for r in rates)
        raise ValueError(f"echo canceller {name!r} runs at {allowed} Hz, not {rate_hz!r}")
    if name == "none":
        if options:
            raise ValueError(f"echo canceller 'none' takes no options, got {sorted(options)}")
        return PassThrough(rate_hz)
    module: Any = importlib.import_module(_MODULES[name])
    try:
        canceller: EchoCanceller = module.create(rate_hz, **options)
    except TypeError as exc:  # an option the backend does not have
        raise ValueError(f"echo canceller {name!r}: {exc}") from exc
    return canceller


_MODULES = {
    "ours": "device.audio.aec_mdf",
    "webrtc": "device.audio.aec_webrtc",
    "speex": "device.audio.aec_speex",
}


def available_backends() -> list[str]:
    """Backends whose libraries are installed, in the order of :data:`BACKENDS`."""
    found = []
    for name in BACKENDS:
        try:
            make_canceller(name, 16000)
        except AecUnavailable:
            continue
        found.append(name)
    return found
