"""The capture pipeline: mic blocks in, 24 kHz PCM16 chunks for the API out.

    mic (board rate) -> 10 ms frames -> VAD gate (pre-roll, hangover)
                     -> soxr to 24 kHz -> chunks of ``send_chunk_ms``

Synchronous and free of clocks: it is driven block by block, so tests feed it
sample arrays and check what comes out.

The gate can be held open: while the talk button is held (``hold``), for a
number of ms (``hold_for_ms``), and for ``tail_ms`` after the gate closes. Then
every frame is streamed, silence included, because the service decides the end
of a turn (or its idle timeout) on the audio it receives. With ``follow_gate``
off (push-to-talk) only a hold streams; the gate still reports speech.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

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


class Tap(NamedTuple):
    """One 10 ms frame as the listening logic sees it (wake word, barge-in)."""

    mic: Pcm  # the microphone frame
    clean: Pcm  # the same frame, echo-cancelled
    is_speech: bool  # the gate's voice detector's verdict on ``clean``


@dataclass
class CaptureResult:
    """What one mic block produced."""

    chunks: list[bytes] = field(default_factory=list)  # PCM16 24 kHz, ready to append
    speech_started: bool = False  # the gate opened in this block
    speech_stopped: bool = False  # the gate closed in this block
    onset_offset_ms: float = 0.0  # when started: how far before the block's end speech began
    taps: list[Tap] = field(default_factory=list)  # every frame of the block, in order


class CapturePipeline:
    """Turns mic audio into the chunks streamed to the service, silence left out."""

    def __init__(
        self,
        rate_hz: int,
        gate: GateSettings,
        send_chunk_ms: int = 40,
        aec: str = "none",
        vad: str = "webrtc",
        tail_ms: int = 0,
        follow_gate: bool = True,
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
        self.held = False  # the talk button is down: stream whatever the gate says
        self._hold_frames = 0  # frames still to stream whatever the gate says
        self._tail_frames = tail_ms // VAD_FRAME_MS
        self._streaming = False  # the last frame was streamed
        self._follow_gate = follow_gate  # False (push-to-talk): only a hold streams

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
            clean = self.canceller.process(frame, ref)
            out = self._gate.process(clean, mic=frame)
            self.speech_frames += out.is_speech
            result.taps.append(Tap(frame, clean, out.is_speech))
            if out.closed and self._tail_frames:
                self._hold_frames = max(self._hold_frames, self._tail_frames)
            forced = self.held or self._hold_frames > 0
            self._hold_frames = max(0, self._hold_frames - 1)
            # Held open, every frame goes once (a pre-roll would repeat what went out).
            gate_open = out.is_open and self._follow_gate
            if forced or (self._streaming and gate_open and out.opened):
                sendable = [clean]
            else:
                sendable = out.frames if self._follow_gate else []
            if sendable and not self._streaming:
                self._resampler.reset()
            was_streaming, self._streaming = self._streaming, forced or gate_open
            if out.opened:
                result.speech_started = True
                # frames from the speech onset to the end of this block
                onset = out.onset_frame
                if onset is None:
                    onset = self._gate.frames_seen - 1
                frames_seen_at_block_end = self._gate.frames_seen + len(frames) - i - 1
                result.onset_offset_ms = (frames_seen_at_block_end - onset) * VAD_FRAME_MS
            if sendable:
                # One call for a whole pre-roll: libsoxr's output does not depend on
                # how the stream is cut.
                audio = sendable[0] if len(sendable) == 1 else np.concatenate(sendable)
                self._pending += pcm_to_bytes(self._resampler.process(audio))
            if out.closed:
                result.speech_stopped = True
            if was_streaming and not self._streaming:
                self._flush(result)
        self._emit(result, flush=False)
        return result

    def _flush(self, result: CaptureResult) -> None:
        """The stream ends here: the resampler's tail and every pending byte go out."""
        self._pending += pcm_to_bytes(self._resampler.process(_EMPTY, last=True))
        self._emit(result, flush=True)

    def hold(self, held: bool) -> list[bytes]:
        """The talk button went down (True) or up: stream every frame while it is down.

        Returns the chunks that end the stream on release (the audio still pending),
        so they can be sent before the turn is committed; nothing on a press.
        """
        self.held = held
        result = CaptureResult()
        if not held and self._streaming:
            self._streaming = False  # the gate, if open, starts a fresh stream
            self._flush(result)
        return result.chunks

    def hold_for_ms(self, duration_ms: int) -> None:
        """Stream every frame for the next ``duration_ms`` of audio (0 ends a hold early)."""
        self._hold_frames = max(0, duration_ms) // VAD_FRAME_MS

    def _emit(self, result: CaptureResult, *, flush: bool) -> None:
        while len(self._pending) >= self._chunk_bytes:
            result.chunks.append(bytes(self._pending[: self._chunk_bytes]))
            del self._pending[: self._chunk_bytes]
        if flush and self._pending:
            result.chunks.append(bytes(self._pending))
            self._pending.clear()

    def restart_gate(self) -> None:
        """A new activation: forget what the gate heard and what waits to be sent (the
        wake word itself must not be streamed), but keep what the canceller learnt."""
        self._gate.reset()
        self._resampler.reset()
        self._pending.clear()
        self._streaming = False

    def reset(self) -> None:
        """Forget everything in flight (used when the connection drops)."""
        self._framer.reset()
        self._ref_framer.reset()
        self.canceller.reset()
        self.far_end_ms = 0
        self._gate.reset()
        self._resampler.reset()
        self._pending.clear()
        self._hold_frames = 0
        self._streaming = False
