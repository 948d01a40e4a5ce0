"""The real AudioDuplex: PortAudio (through PyAudio) callback streams.

Where the board's codec records and plays (the 2-mic HAT, a USB speakerphone,
PulseAudio's "pulse" device), one full-duplex stream carries both directions:
every mic block and the block played for it share one clock, so the echo
canceller sees a fixed delay. Where input and output are different devices
(the 4-mic HAT recording while the Pi's jack plays), there are two streams on
two clocks: the capture callback runs the daemon's callback and queues its
output in a bounded FIFO that the playback callback drains. The delay between
the two then varies with scheduling and drifts with the clocks; estimating and
following it belongs to the echo canceller, not here.

Callbacks run on PortAudio's thread. An exception escaping one aborts the
stream, so they catch everything, count it in ``errors`` and play silence.
PyAudio is imported only when a stream is opened, so this module imports on
machines without PortAudio. Listing and choosing devices lives in
``hw.pyaudio_devices``; block conversion and the two-clock FIFO in
``hw.pyaudio_blocks``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from hw.ports import AudioError, DuplexCallback, DuplexFormat, PcmBlock, StreamTime, XrunCounters
from hw.pyaudio_blocks import (
    PA_CONTINUE,
    PA_INT16,
    PA_INT32,
    BlockCodec,
    BlockFifo,
    TimeInfo,
    count_status,
    stream_time,
    sum_counters,
)
from hw.pyaudio_devices import (
    DeviceInfo,
    PaFactory,
    device_not_found,
    enumerate_devices,
    find_device,
    list_devices,
    new_pa,
)

_log = logging.getLogger(__name__)


class PyAudioDuplex:
    """AudioDuplex over PortAudio, opened lazily on ``start``.

    ``input_device`` and ``output_device`` are substrings of PortAudio device
    names ("seeed2micvoicec", "pulse"); ``output_device=None`` means the same
    device in one full-duplex stream. ``sample_width_bits=32`` is for codecs
    whose ALSA driver only offers S32_LE. ``pa_factory`` replaces
    ``pyaudio.PyAudio`` (tests, or a shared instance).
    """

    def __init__(
        self,
        fmt: DuplexFormat,
        input_device: str,
        output_device: str | None = None,
        *,
        sample_width_bits: int = 16,
        pa_factory: PaFactory | None = None,
    ) -> None:
        if sample_width_bits not in (16, 32):
            raise ValueError(f"sample_width_bits must be 16 or 32, not {sample_width_bits}")
        if min(fmt.rate_hz, fmt.block_frames, fmt.in_channels, fmt.out_channels) < 1:
            raise ValueError(f"every field of {fmt} must be positive")
        self._fmt, self._bits, self._pa_factory = fmt, sample_width_bits, pa_factory
        self._input_device, self._output_device = input_device, output_device
        self._pa: Any | None = None
        self._streams: list[Any] = []
        self._codec = BlockCodec(fmt, fmt.in_channels, fmt.out_channels, sample_width_bits)
        self._fifo: BlockFifo | None = None
        self._out_latency_s = 0.0
        self._callback: DuplexCallback | None = None
        self._control = threading.Lock()  # start/stop/close may come from different threads
        self._capture_xruns, self._playback_xruns = XrunCounters(), XrunCounters()
        self.errors = 0
        """Exceptions (or malformed blocks) from the callback, replaced by silence."""
        self.callbacks = 0
        """Blocks handed to the callback; the daemon's watchdog checks it keeps growing."""

    # -- the port ------------------------------------------------------------------
    @property
    def format(self) -> DuplexFormat:
        return self._fmt

    @property
    def xruns(self) -> XrunCounters:
        """A snapshot, cumulative over restarts (FIFO drops and underruns included)."""
        return sum_counters(self._capture_xruns, self._playback_xruns)

    @property
    def latency_s(self) -> tuple[float, float]:
        streams = list(self._streams)
        try:
            return (float(streams[0].get_input_latency()), float(streams[-1].get_output_latency()))
        except Exception:  # not open, or closed by stop() on another thread
            return (0.0, 0.0)

    @property
    def active(self) -> bool:
        """Whether PortAudio still runs the stream(s).

        False after ``stop`` and also when the host API ended a stream by itself
        (a device unplugged, or ALSA's pulse plugin failing while it connects),
        which no callback can report: the supervisor restarts on it.
        """
        streams = list(self._streams)
        try:
            return bool(streams) and all(s.is_active() for s in streams)
        except Exception:  # closed by stop() on another thread
            return False

    def start(self, callback: DuplexCallback) -> None:
        with self._control:
            self._callback = callback
            if self._streams:
                return  # already running: the new callback takes over at the next block
            try:
                if self._pa is None:
                    self._pa = new_pa(self._pa_factory)
                self._open_streams(self._pa)
            except BaseException:
                # Let the next start re-initialise PortAudio: only Pa_Initialize
                # re-scans devices, so a HAT that shows up later is found then.
                self._callback = None
                self._release()
                raise

    def stop(self) -> None:
        """Stop the callbacks at once; what is still buffered for the DAC is dropped."""
        with self._control:
            self._callback = None
            self._close_streams()

    def close(self) -> None:
        """Release the streams and PortAudio; a later ``start`` initialises it afresh.

        Only Pa_Initialize re-scans devices, so closing (not just stopping) after
        a fault is what lets a re-plugged USB array be found again.
        """
        with self._control:
            self._callback = None
            self._release()

    # -- opening and closing -------------------------------------------------------
    def _open_streams(self, pa: Any) -> None:
        fmt, devices = self._fmt, enumerate_devices(pa)
        plan: list[tuple[DeviceInfo, int, str, Callable[..., Any]]]
        if self._output_device is None:
            ch = max(fmt.in_channels, fmt.out_channels)
            dev = find_device(devices, self._input_device, ch, ch)
            if dev is None:
                raise device_not_found(devices, self._input_device, ch, ch)
            self._codec, self._fifo = BlockCodec(fmt, ch, ch, self._bits), None
            plan = [(dev, ch, "duplex", self._on_duplex)]
        else:
            mic = find_device(devices, self._input_device, fmt.in_channels, 0)
            dac = find_device(devices, self._output_device, 0, fmt.out_channels)
            if mic is None:
                raise device_not_found(devices, self._input_device, fmt.in_channels, 0)
            if dac is None:
                raise device_not_found(devices, self._output_device, 0, fmt.out_channels)
            self._codec = BlockCodec(fmt, fmt.in_channels, fmt.out_channels, self._bits)
            self._fifo = BlockFifo(self._capture_xruns, self._playback_xruns)
            plan = [
                (mic, fmt.in_channels, "input", self._on_capture),
                (dac, fmt.out_channels, "output", self._on_playback),
            ]
        for dev, ch, role, on_block in plan:
            is_in, is_out = role != "output", role != "input"
            try:
                stream = pa.open(
                    rate=fmt.rate_hz,
                    channels=ch,
                    format=PA_INT32 if self._bits == 32 else PA_INT16,
                    input=is_in,
                    output=is_out,
                    input_device_index=dev.index if is_in else None,
                    output_device_index=dev.index if is_out else None,
                    frames_per_buffer=fmt.block_frames,
                    start=False,
                    stream_callback=on_block,
                )
            except Exception as exc:  # OSError(errno, PortAudio's text) or ValueError
                raise AudioError(
                    f"cannot open {dev.name!r} ({role}) at "
                    f"{fmt.rate_hz} Hz, {ch} ch, {self._bits}-bit, "
                    f"{fmt.block_frames}-frame blocks: {exc}"
                ) from exc
            self._streams.append(stream)
        try:
            self._out_latency_s = float(self._streams[-1].get_output_latency())
            for stream in self._streams:
                stream.start_stream()
        except Exception as exc:
            raise AudioError(f"cannot start audio stream: {exc}") from exc

    def _close_streams(self) -> None:
        streams, self._streams = self._streams, []
        for stream in streams:
            try:
                stream.close()  # Pa_CloseStream aborts: no wait for the DAC to drain
            except Exception as exc:
                _log.debug("closing audio stream failed: %s", exc)

    def _release(self) -> None:
        self._close_streams()
        pa, self._pa = self._pa, None
        if pa is not None:
            try:
                pa.terminate()
            except Exception as exc:
                _log.debug("PortAudio terminate failed: %s", exc)

    # -- PortAudio's threads -------------------------------------------------------
    def _run_user(self, in_data: bytes, frames: int, when: StreamTime) -> PcmBlock | None:
        """The daemon's output block, or None for silence (stopped, raised, malformed)."""
        callback = self._callback
        if callback is None:
            return None
        self.callbacks += 1
        try:
            out = callback(self._codec.decode(in_data, frames), when)
        except Exception:
            out = None
        if not self._codec.valid(out, frames):
            self.errors += 1
            return None
        return out

    def _on_duplex(
        self, data: bytes, frames: int, info: TimeInfo, status: int
    ) -> tuple[bytes, int]:
        try:
            count_status(self._capture_xruns, status)
            out = self._run_user(data, frames, stream_time(info))
            if out is None:
                return self._codec.silence(frames), PA_CONTINUE
            return self._codec.encode(out), PA_CONTINUE
        except Exception:
            self.errors += 1
            return self._codec.silence(frames), PA_CONTINUE

    def _on_capture(
        self, data: bytes, frames: int, info: TimeInfo, status: int
    ) -> tuple[None, int]:
        try:
            count_status(self._capture_xruns, status)
            fifo = self._fifo
            queued_s = (len(fifo) if fifo else 0) * self._fmt.block_frames / self._fmt.rate_hz
            # A nominal estimate across two clocks; the echo canceller measures the real delay.
            dac_s = info.get("current_time", 0.0) + queued_s + self._out_latency_s
            out = self._run_user(data, frames, stream_time(info, dac_s))
            if fifo is not None:
                fifo.push(
                    np.zeros((frames, self._fmt.out_channels), np.int16) if out is None else out
                )
        except Exception:
            self.errors += 1
        return None, PA_CONTINUE

    def _on_playback(self, _: None, frames: int, info: TimeInfo, status: int) -> tuple[bytes, int]:
        try:
            count_status(self._playback_xruns, status)
            block = self._fifo.pull() if self._fifo is not None else None
            if block is None or len(block) != frames:
                return self._codec.silence(frames), PA_CONTINUE
            return self._codec.encode(block), PA_CONTINUE
        except Exception:
            self.errors += 1
            return self._codec.silence(frames), PA_CONTINUE


__all__ = ["DeviceInfo", "PyAudioDuplex", "list_devices"]
