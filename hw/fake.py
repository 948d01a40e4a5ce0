"""The fake sound card (and WAV helpers), shipped so the daemon runs without a Pi;
the fake LEDs, buttons and notifier are in ``hw.panel_fake``, the camera in
``hw.camera_fake``.

Fakes are driven by physical verbs: a WAV file is *spoken* into the mic
(``feed_wav``), a talker speaks from a direction (``feed_from``), and everything
the device does is recorded: every sample written to the DAC.

``FakeDuplex`` runs its callback from its own thread, paced in real time (or
``speed`` times faster), exactly like PortAudio does, so the daemon's thread
boundary is exercised for real. Tests that want virtual time do not start the
thread and call ``step()`` instead, or make it with ``paced=False``: then
``start()`` only attaches the callback and blocks run when the owner steps them
(a stopped or unplugged stream ignores ``step()``, as a dead device delivers nothing).
"""

from __future__ import annotations

import threading
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr

from hw.ports import (
    AudioError,
    DuplexCallback,
    DuplexFormat,
    StreamTime,
    XrunCounters,
)


def read_wav_mono(path: Path, rate_hz: int) -> npt.NDArray[np.int16]:
    """Read a PCM16 WAV as mono int16 at ``rate_hz`` (mixing channels, resampling)."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise AudioError(f"{path}: only 16-bit PCM WAV files are supported")
            channels = wav.getnchannels()
            source_rate_hz = wav.getframerate()
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioError(f"{path}: cannot read WAV file: {exc}") from exc
    mono: npt.NDArray[np.float32] = data.reshape(-1, channels).astype(np.float32).mean(axis=1)
    mono /= 32768.0
    if source_rate_hz != rate_hz:
        mono = np.asarray(soxr.resample(mono, source_rate_hz, rate_hz), dtype=np.float32)
    return np.clip(np.round(mono * 32768.0), -32768, 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, rate_hz: int) -> None:
    """Write int16 samples shaped (frames,) or (frames, channels) as a PCM16 WAV."""
    frames = samples.reshape(len(samples), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(frames.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(frames.astype("<i2").tobytes())


@dataclass
class _Source:
    start_frame: int
    samples: np.ndarray  # float32 mono


class FakeDuplex:
    """A full-duplex stream with a scripted mic and a recording DAC.

    ``mic_channels`` receive what is fed; ``loopback_channels`` carry what was
    played one block earlier (like the 6-mic kit's hardware loopback);
    ``echo_gain`` adds the played signal back into the mic after
    ``echo_delay_ms`` (a loudspeaker next to the mics). ``mic_positions_mm`` (one
    ``(x, y)`` per mic channel, as in a board profile) lets ``feed_from`` speak from
    a direction, each mic hearing it when the sound reaches it. ``keep_output=False``
    keeps no copy of what was played (``played()`` stays empty), so an hour-long
    run does not hold an hour of audio.
    """

    def __init__(
        self,
        fmt: DuplexFormat,
        *,
        mic_channels: Sequence[int] = (0,),
        loopback_channels: Sequence[int] = (),
        echo_gain: float = 0.0,
        echo_delay_ms: float = 0.0,
        speed: float = 1.0,
        output_latency_blocks: int = 2,
        paced: bool = True,
        keep_output: bool = True,
        mic_positions_mm: Sequence[tuple[float, float]] = (),
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._mic_positions_mm = tuple(mic_positions_mm)
        self._channel_sources: list[tuple[int, _Source]] = []  # heard by one channel only
        self._fmt = fmt
        self._mic_channels = tuple(mic_channels)
        self._loopback_channels = tuple(loopback_channels)
        self._echo_gain = echo_gain
        self._echo_delay_frames = round(echo_delay_ms * fmt.rate_hz / 1000)
        self._speed = speed
        self._paced = paced
        self._keep_output = keep_output
        # Not started (unpaced) or stopped: step() delivers nothing until start().
        self._halted = not paced
        self._latency_frames = output_latency_blocks * fmt.block_frames
        self._xruns = XrunCounters()
        self._sources: list[_Source] = []
        self._played: list[np.ndarray] = []
        self._played_mono: list[np.ndarray] = []
        self._frame = 0
        self._callback: DuplexCallback | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._unplugged = False
        self.callbacks = 0
        self.errors = 0
        """Exceptions (or malformed blocks) from the callback, replaced by silence."""

    # -- the port -------------------------------------------------------------
    @property
    def format(self) -> DuplexFormat:
        return self._fmt

    @property
    def xruns(self) -> XrunCounters:
        return self._xruns

    @property
    def latency_s(self) -> tuple[float, float]:
        return (self._fmt.block_ms / 1000.0, self._latency_frames / self._fmt.rate_hz)

    def start(self, callback: DuplexCallback) -> None:
        """Start the paced audio thread calling ``callback`` every block."""
        if self._unplugged:
            raise AudioError("fake audio device is unplugged")
        self._callback = callback
        self._halted = False
        if self._thread is not None or not self._paced:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="fake-duplex", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._halted = True
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def close(self) -> None:
        self.stop()

    # -- physical verbs -------------------------------------------------------
    @property
    def time_s(self) -> float:
        """The stream's clock: frames processed so far, in seconds."""
        return self._frame / self._fmt.rate_hz

    def feed(self, samples: np.ndarray, *, at_s: float | None = None, gain: float = 1.0) -> None:
        """Sound ``samples`` (mono int16 at the stream rate) into the mic at ``at_s``.

        ``at_s`` defaults to now on the stream clock.
        """
        start = self._frame if at_s is None else round(at_s * self._fmt.rate_hz)
        audio = samples.astype(np.float32) * gain
        with self._lock:
            self._sources.append(_Source(start, audio))

    def feed_wav(self, path: Path, *, at_s: float | None = None, gain: float = 1.0) -> float:
        """Speak a WAV file into the mic; returns its duration in seconds."""
        samples = read_wav_mono(path, self._fmt.rate_hz)
        self.feed(samples, at_s=at_s, gain=gain)
        return len(samples) / self._fmt.rate_hz

    def feed_from(
        self,
        samples: np.ndarray,
        azimuth_deg: float,
        *,
        at_s: float | None = None,
        gain: float = 1.0,
    ) -> None:
        """Sound ``samples`` (mono int16 at the stream rate) into the mics from a talker
        far away at ``azimuth_deg`` (counter-clockwise from +x of ``mic_positions_mm``):
        each mic hears it when the plane wave reaches it, to a fraction of a sample."""
        if len(self._mic_positions_mm) != len(self._mic_channels):
            raise ValueError("feed_from needs one mic position per mic channel")
        toward = np.array([np.cos(np.radians(azimuth_deg)), np.sin(np.radians(azimuth_deg))])
        lead_s = np.asarray(self._mic_positions_mm, np.float64) / 1000.0 @ toward / 343.0
        rate = self._fmt.rate_hz
        n = len(samples) + rate // 100  # room for the delays, so none wraps round
        spectrum = np.fft.rfft(samples.astype(np.float64) * gain, n)
        freqs = np.fft.rfftfreq(n, 1.0 / rate)
        start = self._frame if at_s is None else round(at_s * rate)
        with self._lock:
            for ch, lead in zip(self._mic_channels, lead_s, strict=True):
                delay_s = float(lead_s.max() - lead)  # the nearest mic hears it first
                heard = np.fft.irfft(spectrum * np.exp(-2j * np.pi * freqs * delay_s), n)
                self._channel_sources.append((ch, _Source(start, heard.astype(np.float32))))

    def unplug(self) -> None:
        """Pull the device: the stream stops and opening fails until ``plug()``."""
        self._unplugged = True
        self.stop()

    def plug(self) -> None:
        self._unplugged = False

    def step(self, blocks: int = 1) -> None:
        """Run the callback for ``blocks`` blocks now, without pacing (virtual time)."""
        if self._halted:
            return
        if self._callback is None:
            raise AudioError("start() or set_callback() first")
        for _ in range(blocks):
            self._tick()

    def set_callback(self, callback: DuplexCallback) -> None:
        """Attach a callback for manual stepping, without starting the thread."""
        self._callback = callback
        self._halted = False

    def played(self) -> np.ndarray:
        """Every frame written to the DAC so far, (frames, out_channels) int16."""
        if not self._played:
            return np.zeros((0, self._fmt.out_channels), np.int16)
        return np.concatenate(self._played)

    def save_output(self, path: Path) -> None:
        """Write every sample written to the DAC to a WAV file."""
        write_wav(path, self.played(), self._fmt.rate_hz)

    # -- internals ------------------------------------------------------------
    def _run(self) -> None:
        block_s = self._fmt.block_frames / self._fmt.rate_hz / self._speed
        next_at = time.monotonic()
        while not self._stopping.is_set():
            self._tick()
            next_at += block_s
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stopping.wait(delay)
            elif delay < -0.5:  # far behind (debugger, suspended VM): resync, count it
                self._xruns.output_underflows += 1
                next_at = time.monotonic()

    def _mic_block(self, n: int) -> np.ndarray:
        mono = np.zeros(n, np.float32)
        start, end = self._frame, self._frame + n
        with self._lock:
            live = []
            for src in self._sources:
                src_end = src.start_frame + len(src.samples)
                if src_end > start and src.start_frame < end:
                    a, b = max(start, src.start_frame), min(end, src_end)
                    offset = src.start_frame
                    mono[a - start : b - start] += src.samples[a - offset : b - offset]
                if src_end > end:
                    live.append(src)
            self._sources = live
        if self._echo_gain and self._played_mono:
            mono += self._echo_gain * self._delayed_output(start, n)
        return mono

    def _add_channel_sources(self, block: np.ndarray) -> None:
        """Mix what only one channel hears (``feed_from``) into ``block``, in place."""
        n = len(block)
        start, end = self._frame, self._frame + n
        extra = np.zeros(block.shape, np.float32)
        with self._lock:
            live = []
            for ch, src in self._channel_sources:
                src_end = src.start_frame + len(src.samples)
                if src_end > start and src.start_frame < end:
                    a, b = max(start, src.start_frame), min(end, src_end)
                    extra[a - start : b - start, ch] += src.samples[
                        a - src.start_frame : b - src.start_frame
                    ]
                if src_end > end:
                    live.append((ch, src))
            self._channel_sources = live
        mixed = np.round(block.astype(np.float32) + extra)
        block[:] = np.clip(mixed, -32768, 32767).astype(np.int16)

    def _delayed_output(self, start: int, n: int) -> np.ndarray:
        blocks = (self._echo_delay_frames + self._latency_frames) // n + 2
        played = np.concatenate(self._played_mono[-blocks:])
        # index into ``played``, whose last sample is stream frame self._frame - 1
        offset = self._frame - len(played)
        idx = np.arange(start, start + n) - self._echo_delay_frames - self._latency_frames - offset
        valid = (idx >= 0) & (idx < len(played))
        out = np.zeros(n, np.float32)
        out[valid] = played[idx[valid]]
        return out

    def _tick(self) -> None:
        callback = self._callback
        if callback is None:
            return
        fmt = self._fmt
        n = fmt.block_frames
        block = np.zeros((n, fmt.in_channels), np.int16)
        mono = np.clip(np.round(self._mic_block(n)), -32768, 32767).astype(np.int16)
        for ch in self._mic_channels:
            block[:, ch] = mono
        if self._channel_sources:
            self._add_channel_sources(block)
        if self._loopback_channels and self._played_mono:
            last = np.clip(np.round(self._played_mono[-1]), -32768, 32767).astype(np.int16)
            for ch in self._loopback_channels:
                block[:, ch] = last
        now_s = self._frame / fmt.rate_hz
        stream_time = StreamTime(
            input_adc_s=now_s,
            output_dac_s=(self._frame + self._latency_frames) / fmt.rate_hz,
            current_s=now_s,
        )
        try:
            out = callback(block, stream_time)
        except Exception:  # like PortAudio's adapter: a raising callback must not end the stream
            out = None
        if not (
            isinstance(out, np.ndarray)
            and out.dtype == np.int16
            and out.shape == (n, fmt.out_channels)
        ):
            self.errors += 1
            out = np.zeros((n, fmt.out_channels), np.int16)
        if self._keep_output:
            self._played.append(out.copy())
        self._played_mono.append(out[:, 0].astype(np.float32))
        if len(self._played_mono) > 64:
            del self._played_mono[:-64]
        self._frame += n
        self.callbacks += 1
