"""Our echo canceller: bulk-delay tracking, a two-path partitioned-block
frequency-domain adaptive filter, and a residual echo suppressor that keeps the
user's voice.

Per 10 ms frame: the delay estimator sees the reference and the microphone; the
adaptive filter (``aec_filter``) predicts the echo from the reference read at the
estimated delay and subtracts it; the suppressor (``aec_res``) removes what the
filter could not, bin by bin, leaving bins where the user's voice dominates
alone. Everything is numpy, vectorised over bins and partitions, with no
per-sample Python loop and no clock: time is the count of frames processed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from device.audio.aec import FRAME_MS, Pcm, check_frames
from device.audio.aec_delay import DelayConfig, DelayEstimator
from device.audio.aec_filter import FilterConfig, TwoPathFilter
from device.audio.aec_res import ResidualSuppressor, SuppressorConfig

Real = npt.NDArray[np.float64]

RATES_HZ = (8000, 16000, 32000, 48000)
_REF_ACTIVE_RMS = 30.0  # int16 units: about -61 dBFS


class MdfCanceller:
    """The ``ours`` backend. Options: ``tail_ms`` (echo tail the filter models,
    default 250: a room's reverberation is still well above the residual the
    suppressor leaves at 120 ms, most of all with the loudspeaker a metre or more
    away), ``max_delay_ms`` (largest bulk delay searched, default 500),
    ``suppress`` (residual echo suppressor on, default True), ``track_delay``
    (default True)."""

    name = "ours"

    def __init__(
        self,
        rate_hz: int,
        *,
        tail_ms: int = 250,
        max_delay_ms: int = 500,
        suppress: bool = True,
        track_delay: bool = True,
    ) -> None:
        if rate_hz not in RATES_HZ:
            raise ValueError(f"ours runs at {RATES_HZ} Hz, not {rate_hz}")
        if not 10 <= tail_ms <= 1000:
            raise ValueError(f"tail_ms must be 10..1000, got {tail_ms}")
        if not 0 <= max_delay_ms <= 2000:
            raise ValueError(f"max_delay_ms must be 0..2000, got {max_delay_ms}")
        self.rate_hz = rate_hz
        self.frame_frames = rate_hz * FRAME_MS // 1000
        n = self.frame_frames
        self._filter = TwoPathFilter(
            FilterConfig(
                block_frames=n,
                partitions=-(-tail_ms // FRAME_MS),
                max_delay_blocks=-(-max_delay_ms // FRAME_MS),
            )
        )
        self._res = ResidualSuppressor(SuppressorConfig(block_frames=n)) if suppress else None
        self._delay = (
            DelayEstimator(DelayConfig(rate_hz=rate_hz, block_frames=n, max_delay_ms=max_delay_ms))
            if track_delay and max_delay_ms > 0
            else None
        )
        self._active_threshold = _REF_ACTIVE_RMS * _REF_ACTIVE_RMS * n
        self._mic_ref: Real = np.zeros((2, n))  # this frame as float: microphone, reference
        self._rounded: Real = np.zeros(n)

    @property
    def delay_ms(self) -> float:
        """The bulk delay the filter currently reads the reference at."""
        return self._filter.delay_blocks * FRAME_MS

    def reset(self) -> None:
        self._filter.reset()
        if self._res is not None:
            self._res.reset()
        if self._delay is not None:
            self._delay.reset()

    def process(self, mic: Pcm, reference: Pcm) -> Pcm:
        check_frames(mic, reference, self.frame_frames, self.rate_hz)
        mic_ref = self._mic_ref
        mic_ref[0] = mic
        mic_ref[1] = reference
        d, x = mic_ref
        sxx = float(x @ x)
        if self._delay is not None:
            active = sxx > self._active_threshold
            if self._delay.push(mic_ref, active) and self._delay.delay_frames is not None:
                self._align(self._delay.delay_frames)
        err, echo = self._filter.process(d, x, sxx)
        out = err if self._res is None else self._res.process(err, echo, self._filter.misadjustment)
        out = np.rint(out, out=self._rounded)
        np.maximum(out, -32768.0, out=out)
        np.minimum(out, 32767.0, out=out)
        return out.astype(np.int16)

    def _align(self, delay_frames: int) -> None:
        """Read the reference so that the echo's onset lands half a block into the
        first partition; keep the current alignment while it already does."""
        n = self.frame_frames
        offset = delay_frames - self._filter.delay_blocks * n
        if n // 4 <= offset <= 3 * n:
            return
        self._filter.set_delay_blocks(max(0, (delay_frames - n // 2) // n))


def create(rate_hz: int, **options: Any) -> MdfCanceller:
    return MdfCanceller(rate_hz, **options)
