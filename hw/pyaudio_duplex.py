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
machines without PortAudio.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hw.ports import AudioError, DuplexCallback, DuplexFormat, PcmBlock, StreamTime, XrunCounters

_log = logging.getLogger(__name__)

PaFactory = Callable[[], Any]
TimeInfo = dict[str, float]

# PortAudio ABI constants (portaudio.h), so callbacks never touch the pyaudio module.
_PA_INT32 = 0x00000002
_PA_INT16 = 0x00000008
_PA_CONTINUE = 0
_STATUS_FLAGS = (  # PaStreamCallbackFlags bit -> XrunCounters field
    (0x01, "input_underflows"),
    (0x02, "input_overflows"),
    (0x04, "output_underflows"),
    (0x08, "output_overflows"),
    (0x10, "priming_output"),
)

# Two-clock FIFO: start playing once two blocks are queued (absorbs the phase between the
# two callbacks), hold at most eight (a slower DAC clock loses the oldest block, not memory).
_FIFO_PREFILL_BLOCKS = 2
_FIFO_MAX_BLOCKS = 8


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device, as ``edgevoice devices`` and error messages show it."""

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate_hz: float
    host_api: str


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point fd 2 at /dev/null while PortAudio initialises.

    Pa_Initialize probes every ALSA card and JACK, and ALSA and JACK print about
    80 lines straight to fd 2 (no Python involved) even when everything works;
    in the journal that noise buries the messages that matter.
    """
    if sys.stderr is not None:
        sys.stderr.flush()
    try:
        saved_fd = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to protect
        yield
        return
    try:
        devnull_fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull_fd, 2)
        os.close(devnull_fd)
        yield
    finally:
        os.dup2(saved_fd, 2)
        os.close(saved_fd)


def _default_pa_factory() -> Any:
    try:
        import pyaudio
    except ImportError as exc:
        raise AudioError("PyAudio is not installed (pip install 'edgevoice[hw]')") from exc
    return pyaudio.PyAudio()


def _new_pa(pa_factory: PaFactory | None) -> Any:
    try:
        with _stderr_silenced():
            return (pa_factory or _default_pa_factory)()
    except AudioError:
        raise
    except Exception as exc:  # PortAudio reports init failures as OSError
        raise AudioError(f"cannot initialise PortAudio: {exc}") from exc


def _enumerate(pa: Any) -> list[DeviceInfo]:
    apis = [str(pa.get_host_api_info_by_index(i)["name"]) for i in range(pa.get_host_api_count())]
    devices = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        api = apis[info["hostApi"]] if 0 <= info["hostApi"] < len(apis) else "?"
        channels = int(info["maxInputChannels"]), int(info["maxOutputChannels"])
        rate_hz = float(info["defaultSampleRate"])
        devices.append(DeviceInfo(index, str(info["name"]), *channels, rate_hz, api))
    return devices


def list_devices(pa_factory: PaFactory | None = None) -> list[DeviceInfo]:
    """Every device PortAudio sees right now (it re-scans on each call)."""
    pa = _new_pa(pa_factory)
    try:
        return _enumerate(pa)
    finally:
        pa.terminate()


def _find(devices: list[DeviceInfo], wanted: str, in_ch: int, out_ch: int) -> DeviceInfo | None:
    """First device whose name contains ``wanted`` (an exact name wins) with enough channels."""
    key = wanted.lower()
    fits = [d for d in devices if key in d.name.lower()]
    fits = [d for d in fits if d.max_input_channels >= in_ch and d.max_output_channels >= out_ch]
    return next(iter([d for d in fits if d.name.lower() == key] or fits), None)


def _not_found(devices: list[DeviceInfo], wanted: str, in_ch: int, out_ch: int) -> AudioError:
    need = [f">= {n} {side} channels" for n, side in ((in_ch, "input"), (out_ch, "output")) if n]
    ins = [f"{d.index} {d.name!r} ({d.max_input_channels} ch)" for d in devices]
    outs = [f"{d.index} {d.name!r} ({d.max_output_channels} ch)" for d in devices]
    ins = [text for text, d in zip(ins, devices, strict=True) if d.max_input_channels]
    outs = [text for text, d in zip(outs, devices, strict=True) if d.max_output_channels]
    return AudioError(
        f"no audio device with {wanted!r} in its name and {' and '.join(need)}; "
        f"input devices: {', '.join(ins) or 'none'}; output devices: {', '.join(outs) or 'none'}"
    )


def _count_status(counters: XrunCounters, status: int) -> None:
    if status:
        for flag, name in _STATUS_FLAGS:
            if status & flag:
                setattr(counters, name, getattr(counters, name) + 1)


def _stream_time(time_info: TimeInfo, output_dac_s: float | None = None) -> StreamTime:
    adc_s = time_info.get("input_buffer_adc_time", 0.0)
    now_s = time_info.get("current_time", 0.0)
    dac_s = time_info.get("output_buffer_dac_time", 0.0) if output_dac_s is None else output_dac_s
    return StreamTime(input_adc_s=adc_s, output_dac_s=dac_s, current_s=now_s)


class _Codec:
    """Bytes <-> int16 blocks for one stream layout.

    PyAudio opens a duplex stream with one channel count for both directions, so
    the stream may carry more channels than the daemon asked for: surplus input
    channels are dropped, mono output is copied to every channel (a mono reply
    comes out of both speakers), any other shortfall is padded with silence. A
    32-bit stream (codecs whose driver only offers S32_LE) keeps the top 16 bits.
    """

    def __init__(self, fmt: DuplexFormat, in_stream_ch: int, out_stream_ch: int, bits: int):
        self.fmt, self.in_stream_ch, self.out_stream_ch = fmt, in_stream_ch, out_stream_ch
        self.wide = bits == 32
        self.frame_bytes = out_stream_ch * bits // 8

    def silence(self, frames: int) -> bytes:
        return bytes(frames * self.frame_bytes)

    def decode(self, data: bytes, frames: int) -> PcmBlock:
        raw = np.frombuffer(data, dtype="<i4" if self.wide else "<i2")
        raw = raw.reshape(frames, self.in_stream_ch)[:, : self.fmt.in_channels]
        return (raw >> 16).astype(np.int16) if self.wide else np.array(raw, dtype=np.int16)

    def valid(self, block: object, frames: int) -> bool:
        shape = (frames, self.fmt.out_channels)
        return isinstance(block, np.ndarray) and block.dtype == np.int16 and block.shape == shape

    def encode(self, block: PcmBlock) -> bytes:
        frames, channels = block.shape
        if channels != self.out_stream_ch:
            wide = np.zeros((frames, self.out_stream_ch), dtype=np.int16)
            wide[:, : self.out_stream_ch if channels == 1 else channels] = block
            block = wide
        if self.wide:
            return (block.astype("<i4") << 16).tobytes()
        return block.astype("<i2", copy=False).tobytes()


class _BlockFifo:
    """Output blocks crossing from the capture clock to the playback clock.

    One writer and one reader thread; deque's append and popleft are atomic, so
    the audio threads take no lock. PortAudio hands every callback exactly
    ``frames_per_buffer`` frames, the same on both streams: blocks move whole.
    Drops count as output overflows (writer), running dry as underflows (reader).
    """

    def __init__(self, writer: XrunCounters, reader: XrunCounters) -> None:
        self._blocks: deque[PcmBlock] = deque(maxlen=_FIFO_MAX_BLOCKS)
        self._playing = False
        self._writer, self._reader = writer, reader

    def __len__(self) -> int:
        return len(self._blocks)

    def push(self, block: PcmBlock) -> None:
        if len(self._blocks) == _FIFO_MAX_BLOCKS:
            self._writer.output_overflows += 1  # deque(maxlen) drops the oldest
        self._blocks.append(block)

    def pull(self) -> PcmBlock | None:
        """The next block, or None for silence (still filling, or run dry)."""
        if not self._playing:
            if len(self._blocks) < _FIFO_PREFILL_BLOCKS:
                return None
            self._playing = True
        try:
            return self._blocks.popleft()
        except IndexError:
            self._reader.output_underflows += 1
            self._playing = False  # refill before playing again
            return None


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
        pa_factory: Callable[[], Any] | None = None,
    ) -> None:
        if sample_width_bits not in (16, 32):
            raise ValueError(f"sample_width_bits must be 16 or 32, not {sample_width_bits}")
        if min(fmt.rate_hz, fmt.block_frames, fmt.in_channels, fmt.out_channels) < 1:
            raise ValueError(f"every field of {fmt} must be positive")
        self._fmt, self._bits, self._pa_factory = fmt, sample_width_bits, pa_factory
        self._input_device, self._output_device = input_device, output_device
        self._pa: Any | None = None
        self._streams: list[Any] = []
        self._codec = _Codec(fmt, fmt.in_channels, fmt.out_channels, sample_width_bits)
        self._fifo: _BlockFifo | None = None
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
        a, b = self._capture_xruns, self._playback_xruns
        return XrunCounters(**{f: getattr(a, f) + getattr(b, f) for _, f in _STATUS_FLAGS})

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
                    self._pa = _new_pa(self._pa_factory)
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
        with self._control:
            self._callback = None
            self._release()

    # -- opening and closing -------------------------------------------------------
    def _open_streams(self, pa: Any) -> None:
        fmt, devices = self._fmt, _enumerate(pa)
        plan: list[tuple[DeviceInfo, int, str, Callable[..., Any]]]
        if self._output_device is None:
            ch = max(fmt.in_channels, fmt.out_channels)
            dev = _find(devices, self._input_device, ch, ch)
            if dev is None:
                raise _not_found(devices, self._input_device, ch, ch)
            self._codec, self._fifo = _Codec(fmt, ch, ch, self._bits), None
            plan = [(dev, ch, "duplex", self._on_duplex)]
        else:
            mic = _find(devices, self._input_device, fmt.in_channels, 0)
            dac = _find(devices, self._output_device, 0, fmt.out_channels)
            if mic is None:
                raise _not_found(devices, self._input_device, fmt.in_channels, 0)
            if dac is None:
                raise _not_found(devices, self._output_device, 0, fmt.out_channels)
            self._codec = _Codec(fmt, fmt.in_channels, fmt.out_channels, self._bits)
            self._fifo = _BlockFifo(self._capture_xruns, self._playback_xruns)
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
                    format=_PA_INT32 if self._bits == 32 else _PA_INT16,
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
            _count_status(self._capture_xruns, status)
            out = self._run_user(data, frames, _stream_time(info))
            if out is None:
                return self._codec.silence(frames), _PA_CONTINUE
            return self._codec.encode(out), _PA_CONTINUE
        except Exception:
            self.errors += 1
            return self._codec.silence(frames), _PA_CONTINUE

    def _on_capture(
        self, data: bytes, frames: int, info: TimeInfo, status: int
    ) -> tuple[None, int]:
        try:
            _count_status(self._capture_xruns, status)
            fifo = self._fifo
            queued_s = (len(fifo) if fifo else 0) * self._fmt.block_frames / self._fmt.rate_hz
            # A nominal estimate across two clocks; the echo canceller measures the real delay.
            dac_s = info.get("current_time", 0.0) + queued_s + self._out_latency_s
            out = self._run_user(data, frames, _stream_time(info, dac_s))
            if fifo is not None:
                fifo.push(
                    np.zeros((frames, self._fmt.out_channels), np.int16) if out is None else out
                )
        except Exception:
            self.errors += 1
        return None, _PA_CONTINUE

    def _on_playback(self, _: None, frames: int, info: TimeInfo, status: int) -> tuple[bytes, int]:
        try:
            _count_status(self._playback_xruns, status)
            block = self._fifo.pull() if self._fifo is not None else None
            if block is None or len(block) != frames:
                return self._codec.silence(frames), _PA_CONTINUE
            return self._codec.encode(block), _PA_CONTINUE
        except Exception:
            self.errors += 1
            return self._codec.silence(frames), _PA_CONTINUE


__all__ = ["DeviceInfo", "PyAudioDuplex", "list_devices"]
