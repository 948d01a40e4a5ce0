"""The thread boundary: mic blocks reach the loop, playback reaches the DAC."""

from __future__ import annotations

import asyncio

import numpy as np

from device.audio.bridge import AudioBridge
from device.audio.playback import PlaybackBuffer
from hw.fake import FakeDuplex
from hw.ports import DuplexFormat, StreamTime

FMT = DuplexFormat(rate_hz=16000, block_frames=160, in_channels=2, out_channels=2)
T = StreamTime(0.0, 0.02, 0.0)


def test_blocks_cross_from_the_audio_thread() -> None:
    asyncio.run(_cross_threads())


async def _cross_threads() -> None:
    loop = asyncio.get_running_loop()
    playback = PlaybackBuffer(16000)
    bridge = AudioBridge(loop, FMT, playback, mic_channel=1)
    duplex = FakeDuplex(FMT, mic_channels=(1,), speed=10.0)
    duplex.feed(np.arange(1, 1601, dtype=np.int16))
    duplex.start(bridge.callback)
    got: list[np.ndarray] = []
    try:
        while sum(len(b.mic) for b in got) < 1600:
            got += await asyncio.wait_for(bridge.get(), 5)
    finally:
        duplex.stop()
    mic = np.concatenate([b.mic for b in got])
    assert np.array_equal(mic[:1600], np.arange(1, 1601))
    assert bridge.stats.errors == 0


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_playback_goes_to_all_output_channels_and_is_the_reference() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        playback = PlaybackBuffer(16000)
        playback.push("item_1", np.full(200, 7, np.int16))
        bridge = AudioBridge(loop, FMT, playback, mic_channel=0)
        out1 = bridge.callback(np.zeros((160, 2), np.int16), T)
        out2 = bridge.callback(np.zeros((160, 2), np.int16), T)
        assert (out1 == 7).all() and out1.shape == (160, 2)
        assert (out2[:40] == 7).all() and not out2[40:].any()
        blocks = await bridge.get()
        assert [int(b.reference.sum()) for b in blocks] == [7 * 160, 7 * 40]
        assert [e.kind for e in blocks[0].playback_events] == ["started"]

    run(body())


def test_hardware_loopback_is_the_reference_when_present() -> None:
    async def body() -> None:
        fmt = DuplexFormat(16000, 160, 8, 8)
        bridge = AudioBridge(
            asyncio.get_running_loop(),
            fmt,
            PlaybackBuffer(16000),
            mic_channel=0,
            loopback_channels=(6, 7),
        )
        mic = np.zeros((160, 8), np.int16)
        mic[:, 6] = 100
        mic[:, 7] = 300
        bridge.callback(mic, T)
        (block,) = await bridge.get()
        assert (block.reference == 200).all()

    run(body())


def test_callback_never_raises_and_counts_errors() -> None:
    async def body() -> None:
        bridge = AudioBridge(asyncio.get_running_loop(), FMT, PlaybackBuffer(16000), mic_channel=0)
        out = bridge.callback(np.zeros((3,), np.int16), T)  # wrong shape from a broken driver
        assert out.shape == (160, 2) and not out.any()
        assert bridge.stats.errors == 1

    run(body())


def test_ring_drops_oldest_but_keeps_playback_events() -> None:
    async def body() -> None:
        playback = PlaybackBuffer(16000)
        bridge = AudioBridge(
            asyncio.get_running_loop(), FMT, playback, mic_channel=0, capacity_blocks=3
        )
        playback.push("item_1", np.ones(10, np.int16))
        for i in range(5):
            mic = np.full((160, 2), i, np.int16)
            bridge.callback(mic, T)
        blocks = await bridge.get()
        assert [int(b.mic[0]) for b in blocks] == [2, 3, 4]
        assert bridge.stats.dropped_blocks == 2
        # the "started" of the first (dropped) block survives in the kept ones
        kinds = [e.kind for b in blocks for e in b.playback_events]
        assert kinds.count("started") == 1

    run(body())
