"""The one thread boundary between the audio callback and the event loop.

The audio callback (PortAudio's thread, or the fake's) calls ``callback``: it
takes the next output block from the playback buffer, keeps the mic channel and
the echo reference of the same block together, puts them in a bounded ring,
wakes the loop with ``call_soon_threadsafe`` and returns the output. It never
blocks for long (one short lock) and never raises: an exception inside a
PortAudio callback aborts the stream, so it is counted and answered with
silence instead.

Everything else happens on the event loop, which drains the ring with ``get``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from device.audio.frames import Pcm
from device.audio.playback import PlaybackBuffer, PlaybackEvent
from hw.ports import DuplexFormat, PcmBlock, StreamTime


@dataclass(frozen=True)
class CapturedBlock:
    """One callback's worth of audio, as the loop sees it."""

    mic: Pcm  # the mic channel, mono int16 at the board rate
    reference: Pcm  # what the DAC played in the same callback (or the hardware loopback)
    at_s: float  # monotonic time of the callback
    stream_time: StreamTime
    playback_events: tuple[PlaybackEvent, ...]  # what started/finished playing in it
    mics: PcmBlock | None = None  # the raw mic channels (frames, mics), for direction finding


@dataclass
class BridgeStats:
    callbacks: int = 0
    dropped_blocks: int = 0  # the loop fell behind by more than the ring holds
    errors: int = 0  # exceptions caught inside the callback


class AudioBridge:
    """Moves mic blocks to the loop and playback audio to the DAC."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fmt: DuplexFormat,
        playback: PlaybackBuffer,
        *,
        mic_channel: int,
        loopback_channels: Sequence[int] = (),
        doa_channels: Sequence[int] = (),
        capacity_blocks: int = 50,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= mic_channel < fmt.in_channels:
            raise ValueError(f"mic channel {mic_channel} outside 0..{fmt.in_channels - 1}")
        self._loop = loop
        self._fmt = fmt
        self._playback = playback
        self._mic_channel = mic_channel
        self._loopback = tuple(loopback_channels)
        self._doa = list(doa_channels)  # kept apart, before the mix to one channel
        if any(not 0 <= ch < fmt.in_channels for ch in self._doa):
            raise ValueError(f"mic channels {self._doa} outside 0..{fmt.in_channels - 1}")
        self._clock = clock
        self._ring: deque[CapturedBlock] = deque(maxlen=capacity_blocks)
        self._lock = threading.Lock()
        self._wake_pending = False
        self._ready = asyncio.Event()
        self._silence = np.zeros((fmt.block_frames, fmt.out_channels), np.int16)
        self.stats = BridgeStats()

    # -- audio thread ----------------------------------------------------------
    def callback(self, mic: PcmBlock, stream_time: StreamTime) -> PcmBlock:
        try:
            return self._callback(mic, stream_time)
        except Exception:
            self.stats.errors += 1
            return self._silence

    def _callback(self, mic: PcmBlock, stream_time: StreamTime) -> PcmBlock:
        self.stats.callbacks += 1
        played = self._playback.read(self._fmt.block_frames)
        if self._loopback:
            reference = mic[:, list(self._loopback)].mean(axis=1).astype(np.int16)
        else:
            reference = played
        block = CapturedBlock(
            mic=mic[:, self._mic_channel].copy(),
            reference=reference,
            at_s=self._clock(),
            stream_time=stream_time,
            playback_events=tuple(self._playback.take_events()),
            mics=mic[:, self._doa] if self._doa else None,  # fancy indexing copies
        )
        with self._lock:
            if len(self._ring) == self._ring.maxlen:
                # Drop the oldest audio, but keep what it says about playback.
                self.stats.dropped_blocks += 1
                lost = self._ring.popleft()
                if lost.playback_events:
                    events = lost.playback_events + block.playback_events
                    block = dataclasses.replace(block, playback_events=events)
            self._ring.append(block)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            # RuntimeError: the loop is closed because the daemon is stopping
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._ready.set)
        return np.repeat(played[:, None], self._fmt.out_channels, axis=1)

    # -- event loop --------------------------------------------------------------
    async def get(self) -> list[CapturedBlock]:
        """Wait for captured blocks and return all that are pending, oldest first."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            with self._lock:
                self._wake_pending = False
                blocks = list(self._ring)
                self._ring.clear()
            if blocks:
                return blocks
