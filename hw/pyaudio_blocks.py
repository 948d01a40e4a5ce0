"""What PortAudio's callbacks do with each block: convert it, count its flags, queue it.

These pieces run on PortAudio's threads, so they touch no lock and no module
but numpy; kept apart from the stream adapter so each stays small and the
two-clock FIFO can be reasoned about on its own.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from hw.ports import DuplexFormat, PcmBlock, StreamTime, XrunCounters

TimeInfo = dict[str, float]
"""PyAudio's ``time_info`` argument: PortAudio's PaStreamCallbackTimeInfo as a dict."""

# PortAudio ABI constants (portaudio.h), so callbacks never touch the pyaudio module.
PA_INT32 = 0x00000002
PA_INT16 = 0x00000008
PA_CONTINUE = 0
STATUS_FLAGS = (  # PaStreamCallbackFlags bit -> XrunCounters field
    (0x01, "input_underflows"),
    (0x02, "input_overflows"),
    (0x04, "output_underflows"),
    (0x08, "output_overflows"),
    (0x10, "priming_output"),
)

# Two-clock FIFO: start playing once two blocks are queued (absorbs the phase between the
# two callbacks), hold at most eight (a slower DAC clock loses the oldest block, not memory).
FIFO_PREFILL_BLOCKS = 2
FIFO_MAX_BLOCKS = 8


def count_status(counters: XrunCounters, status: int) -> None:
    """Add one to the counter of every flag set in a callback's ``status``."""
    if status:
        for flag, name in STATUS_FLAGS:
            if status & flag:
                setattr(counters, name, getattr(counters, name) + 1)


def sum_counters(a: XrunCounters, b: XrunCounters) -> XrunCounters:
    """Field-by-field sum: the capture and playback streams' counts as one."""
    return XrunCounters(**{f: getattr(a, f) + getattr(b, f) for _, f in STATUS_FLAGS})


def stream_time(time_info: TimeInfo, output_dac_s: float | None = None) -> StreamTime:
    """PortAudio's timestamps for a block; ``output_dac_s`` overrides an estimated DAC time."""
    adc_s = time_info.get("input_buffer_adc_time", 0.0)
    now_s = time_info.get("current_time", 0.0)
    dac_s = time_info.get("output_buffer_dac_time", 0.0) if output_dac_s is None else output_dac_s
    return StreamTime(input_adc_s=adc_s, output_dac_s=dac_s, current_s=now_s)


class BlockCodec:
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


class BlockFifo:
    """Output blocks crossing from the capture clock to the playback clock.

    One writer and one reader thread; deque's append and popleft are atomic, so
    the audio threads take no lock. PortAudio hands every callback exactly
    ``frames_per_buffer`` frames, the same on both streams: blocks move whole.
    Drops count as output overflows (writer), running dry as underflows (reader).
    """

    def __init__(self, writer: XrunCounters, reader: XrunCounters) -> None:
        self._blocks: deque[PcmBlock] = deque(maxlen=FIFO_MAX_BLOCKS)
        self._playing = False
        self._writer, self._reader = writer, reader

    def __len__(self) -> int:
        return len(self._blocks)

    def push(self, block: PcmBlock) -> None:
        if len(self._blocks) == FIFO_MAX_BLOCKS:
            self._writer.output_overflows += 1  # deque(maxlen) drops the oldest
        self._blocks.append(block)

    def pull(self) -> PcmBlock | None:
        """The next block, or None for silence (still filling, or run dry)."""
        if not self._playing:
            if len(self._blocks) < FIFO_PREFILL_BLOCKS:
                return None
            self._playing = True
        try:
            return self._blocks.popleft()
        except IndexError:
            self._reader.output_underflows += 1
            self._playing = False  # refill before playing again
            return None
