"""WebRTC AEC3 as an echo canceller backend, through livekit's AudioProcessingModule.

Optional: needs the ``livekit`` package (the Python SDK's FFI library carries
WebRTC's audio processing module). Install a pinned version: older wheels for
old platform tags lack the audio processing module. AEC3 finds the delay itself;
``stream_delay_ms`` (default 0) tells it where to start looking.

The reference frame goes in through ``process_reverse_stream`` first, then the
microphone frame through ``process_stream``, which AEC3 cancels in place.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from device.audio.aec import FRAME_MS, AecUnavailable, Pcm, check_frames

INSTALL_HINT = "install the optional WebRTC backend: pip install 'livekit==1.2.1'"


def _rtc() -> Any:
    try:
        rtc = importlib.import_module("livekit.rtc")
    except ImportError as exc:
        raise AecUnavailable(f"echo canceller 'webrtc' needs livekit; {INSTALL_HINT}") from exc
    if not hasattr(rtc, "AudioProcessingModule"):
        raise AecUnavailable(f"the installed livekit has no AudioProcessingModule; {INSTALL_HINT}")
    return rtc


class WebRtcCanceller:
    """The ``webrtc`` backend (AEC3, with its own residual echo suppressor)."""

    name = "webrtc"

    def __init__(self, rate_hz: int, *, stream_delay_ms: int = 0) -> None:
        if not 0 <= stream_delay_ms <= 500:
            raise ValueError(f"stream_delay_ms must be 0..500, got {stream_delay_ms}")
        self._rtc = _rtc()
        self.rate_hz = rate_hz
        self.frame_frames = rate_hz * FRAME_MS // 1000
        self._delay_ms = stream_delay_ms
        self._apm: Any = None
        self.reset()

    def reset(self) -> None:
        self._apm = self._rtc.AudioProcessingModule(echo_cancellation=True)

    def _frame(self, pcm: Pcm) -> Any:
        data = bytearray(pcm.astype("<i2", copy=False).tobytes())
        return self._rtc.AudioFrame(data, self.rate_hz, 1, self.frame_frames)

    def process(self, mic: Pcm, reference: Pcm) -> Pcm:
        check_frames(mic, reference, self.frame_frames, self.rate_hz)
        self._apm.process_reverse_stream(self._frame(reference))
        self._apm.set_stream_delay_ms(self._delay_ms)
        frame = self._frame(mic)
        self._apm.process_stream(frame)
        return np.frombuffer(frame.data, dtype="<i2").astype(np.int16)


def create(rate_hz: int, **options: Any) -> WebRtcCanceller:
    return WebRtcCanceller(rate_hz, **options)
