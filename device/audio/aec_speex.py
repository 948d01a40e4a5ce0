"""SpeexDSP's echo canceller as a backend, through the ``speexdsp`` binding.

Optional: ``pip install speexdsp`` builds from source and needs SWIG and the
SpeexDSP headers (Debian: ``apt-get install swig libspeexdsp-dev``). The binding
exposes the multi-delay adaptive filter only, without SpeexDSP's residual echo
suppressor. ``tail_ms`` (default 200) sets the filter length.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import numpy as np

from device.audio.aec import FRAME_MS, AecUnavailable, Pcm, check_frames

INSTALL_HINT = (
    "install the optional SpeexDSP backend: apt-get install swig libspeexdsp-dev, "
    "then pip install 'speexdsp==0.1.1'"
)


def _module() -> Any:
    try:
        with warnings.catch_warnings():
            # The SWIG-generated wrapper imports the deprecated ``imp`` module.
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module("speexdsp")
    except ImportError as exc:
        raise AecUnavailable(f"echo canceller 'speex' needs speexdsp; {INSTALL_HINT}") from exc


class SpeexCanceller:
    """The ``speex`` backend."""

    name = "speex"

    def __init__(self, rate_hz: int, *, tail_ms: int = 200) -> None:
        if not 10 <= tail_ms <= 1000:
            raise ValueError(f"tail_ms must be 10..1000, got {tail_ms}")
        self._speex = _module()
        self.rate_hz = rate_hz
        self.frame_frames = rate_hz * FRAME_MS // 1000
        self._tail_frames = rate_hz * tail_ms // 1000
        self._ec: Any = None
        self.reset()

    def reset(self) -> None:
        self._ec = self._speex.EchoCanceller.create(
            self.frame_frames, self._tail_frames, self.rate_hz
        )

    def process(self, mic: Pcm, reference: Pcm) -> Pcm:
        check_frames(mic, reference, self.frame_frames, self.rate_hz)
        out = self._ec.process(
            mic.astype("<i2", copy=False).tobytes(), reference.astype("<i2", copy=False).tobytes()
        )
        return np.frombuffer(out, dtype="<i2").astype(np.int16)


def create(rate_hz: int, **options: Any) -> SpeexCanceller:
    return SpeexCanceller(rate_hz, **options)
