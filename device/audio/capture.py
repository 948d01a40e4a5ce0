"""The capture pipeline: mic blocks in, 24 kHz PCM16 chunks for the API out.

    mic (board rate) -> 10 ms frames -> VAD gate (pre-roll, hangover)
                     -> soxr to 24 kHz -> chunks of ``send_chunk_ms``

Synchronous and free of clocks: it is driven block by block, so tests feed it
sample arrays and check what comes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from device.audio.aec import EchoCanceller, make_canceller
from device.audio.frames import Framer, Pcm, frames_for_ms, pcm_to_bytes
from device.audio.resample import StreamResampler
from device.audio.vad import VadGate
from device.audio.vad_backends import make_classifier

API_RATE_HZ = 24000
API_BYTES_PER_MS = API_RATE_HZ * 2 // 1000  # PCM16 mono
VAD_FRAME_MS = 10
# Far-end audio the canceller must have adapted on before its output is trusted
# while the speaker plays (it reaches 20 dB within ~0.1 s; this leaves margin).
AEC_WARMUP_MS = 1000
# A reference frame this loud (RMS) counts as far-end activity: about -50 dBFS.
FAR_END_RMS = 100.0
_EMPTY: Pcm = np.zeros(0, np.int16)


def _rms(frame: Pcm) -> float:
    return float(np.sqrt(np.mean(frame.astype(np.float32) ** 2)))


@dataclass(frozen=True)
class GateSettings:
    aggressiveness: int = 2
    start_ms: int = 60
    pre_roll_ms: int = 300
    hangover_ms: int = 800


@dataclass
class CaptureResult:
    """What one mic block produced."""

    chunks: list[bytes] = field(default_factory=list)  # PCM16 24 kHz, ready to append
    speech_started: bool = False  # the gate opened in this block
    speech_stopped: bool = False  # the gate closed in this block
    onset_offset_ms: float = 0.0  # when started: how far before the block's end speech began


class CapturePipeline:
    """Turns mic audio into the chunks streamed to the service, silence left out."""

    def __init__(
        self,
        rate_hz: int,
        gate: GateSettings,
        send_chunk_ms: int = 40,
        aec: str = "none",
        vad: str = "webrtc",
    ) -> None:
        self.rate_hz = rate_hz
        self._frame_frames = frames_for_ms(rate_hz, VAD_FRAME_MS)
        self._framer = Framer(self._frame_frames)
        self._ref_framer = Framer(self._frame_frames)
        self.canceller: EchoCanceller = make_canceller(aec, rate_hz)
        self.far_end_ms = 0  # far-end audio the canceller has adapted on
        self._gate = VadGate(
            rate_hz,
            frame_ms=VAD_FRAME_MS,
            aggressiveness=gate.aggressiveness,
            start_ms=gate.start_ms,
            pre_roll_ms=gate.pre_roll_ms,
            hangover_ms=gate.hangover_ms,
            # smoothed, with a noise-floor guard so that stationary noise and residual
            # echo do not open the gate (see scripts/bench/vad_bench.py)
            classifier=make_classifier(vad, rate_hz, aggressiveness=gate.aggressiveness),
        )
        self._resampler = StreamResampler(rate_hz, API_RATE_HZ)
        self._chunk_bytes = send_chunk_ms * API_BYTES_PER_MS
        self._pending = bytearray()
        self.frames_in = 0
        self.speech_frames = 0

    @property
    def is_open(self) -> bool:
        return self._gate.is_open

    @property
    def cancels_echo(self) -> bool:
        """True once a real canceller has adapted long enough to trust while speaking."""
        return self.canceller.name != "none" and self.far_end_ms >= AEC_WARMUP_MS

    def process(self, mic: Pcm, reference: Pcm | None = None) -> CaptureResult:
        """One mic block and the samples played in the same callback (the echo reference)."""
        result = CaptureResult()
        frames = self._framer.push(mic)
        refs = self._ref_framer.push(reference if reference is not None else np.zeros_like(mic))
        for i, (frame, ref) in enumerate(zip(frames, refs, strict=True)):
            self.frames_in += 1
            if self.far_end_ms < AEC_WARMUP_MS and _rms(ref) > FAR_END_RMS:
                self.far_end_ms += VAD_FRAME_MS
            out = self._gate.process(self.canceller.process(frame, ref))
            self.speech_frames += out.is_speech
            if out.opened:
                self._resampler.reset()
                result.speech_started = True
                # frames from the speech onset to the end of this block
                onset = out.onset_frame
                if onset is None:
                    onset = self._gate.frames_seen - 1
                frames_seen_at_block_end = self._gate.frames_seen + len(frames) - i - 1
                result.onset_offset_ms = (frames_seen_at_block_end - onset) * VAD_FRAME_MS
            for sendable in out.frames:
                self._pending += pcm_to_bytes(self._resampler.process(sendable))
            if out.closed:
                tail = self._resampler.process(_EMPTY, last=True)
                self._pending += pcm_to_bytes(tail)
                result.speech_stopped = True
                self._emit(result, flush=True)
        self._emit(result, flush=False)
        return result

    def _emit(self, result: CaptureResult, *, flush: bool) -> None:
        while len(self._pending) >= self._chunk_bytes:
            result.chunks.append(bytes(self._pending[: self._chunk_bytes]))
            del self._pending[: self._chunk_bytes]
        if flush and self._pending:
            result.chunks.append(bytes(self._pending))
            self._pending.clear()

    def reset(self) -> None:
        """Forget everything in flight (used when the connection drops)."""
        self._framer.reset()
        self._ref_framer.reset()
        self.canceller.reset()
        self.far_end_ms = 0
        self._gate.reset()
        self._resampler.reset()
        self._pending.clear()
