"""The DAC-side buffer: what was played, per item, on the DAC sample clock."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from device.audio.frames import Pcm
from device.audio.playback import PlaybackBuffer, PlaybackEvent

RATE_HZ = 24000


def tone(n: int, start: int = 1) -> Pcm:
    """Non-zero, traceable samples: start, start + 1, ... (wrapping below 30000)."""
    return ((np.arange(n) + start - 1) % 29999 + 1).astype(np.int16)


def test_read_zero_pads_when_empty_and_counts_dac_frames() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    out = buf.read(480)
    assert out.dtype == np.int16 and out.shape == (480,)
    assert not out.any()
    assert buf.read(0).shape == (0,)
    assert buf.dac_frames == 480
    assert buf.current_item is None
    assert buf.take_events() == []


def test_read_spanning_items_charges_each_item() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    assert buf.push("a", tone(300)) == 300
    assert buf.push("b", tone(200, start=1000)) == 200
    assert buf.queued_frames == 500
    assert buf.queued_ms == pytest.approx(500 * 1000 / RATE_HZ)
    assert buf.current_item == "a"

    first = buf.read(240)
    np.testing.assert_array_equal(first, tone(240))
    assert buf.played_frames("a") == 240 and buf.played_frames("b") == 0

    second = buf.read(240)  # 60 of a, 180 of b
    np.testing.assert_array_equal(second[:60], tone(300)[240:])
    np.testing.assert_array_equal(second[60:], tone(180, start=1000))
    assert buf.current_item == "b"
    assert buf.played_ms("a") == pytest.approx(300 * 1000 / RATE_HZ)
    assert buf.played_ms("b") == pytest.approx(180 * 1000 / RATE_HZ)

    third = buf.read(240)  # 20 of b, then padding
    np.testing.assert_array_equal(third[:20], tone(200, start=1000)[180:])
    assert not third[20:].any()
    assert buf.played_frames("b") == 200
    assert buf.queued_frames == 0
    assert buf.current_item is None
    assert buf.dac_frames == 720
    assert buf.played_ms("never-pushed") == 0.0


def test_started_and_finished_events_carry_dac_frame() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    buf.read(100)  # the DAC clock runs on silence before anything is queued
    buf.push("a", tone(150))
    buf.end_item("a")
    buf.push("b", tone(50))
    buf.read(120)
    assert buf.take_events() == [PlaybackEvent("a", "started", 100)]
    buf.read(120)
    assert buf.take_events() == [
        PlaybackEvent("a", "finished", 250),
        PlaybackEvent("b", "started", 250),
    ]
    assert buf.take_events() == []
    buf.read(120)  # b fully read, but not ended: it may still get audio
    assert buf.take_events() == []
    buf.end_item("b")  # finished is stamped where its last sample was read
    assert buf.take_events() == [PlaybackEvent("b", "finished", 300)]
    buf.end_item("b")
    assert buf.take_events() == []


def test_item_ended_before_any_audio_finishes_at_once() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    buf.read(10)
    buf.end_item("silent")
    assert buf.take_events() == [PlaybackEvent("silent", "finished", 10)]


def test_push_after_end_is_an_error() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    buf.push("a", tone(10))
    buf.end_item("a")
    with pytest.raises(ValueError, match="ended"):
        buf.push("a", tone(10))


def test_clear_interrupts_with_played_ms() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    buf.push("a", tone(480))
    buf.end_item("a")
    buf.push("b", tone(4800))
    buf.push("c", tone(480))
    buf.read(480 + 1200)  # all of a, 50 ms of b
    buf.take_events()
    interrupted = buf.clear()
    assert interrupted == [("b", 50.0), ("c", 0.0)]  # 1200 frames at 24 kHz
    assert buf.take_events() == [
        PlaybackEvent("b", "interrupted", 1680),
        PlaybackEvent("c", "interrupted", 1680),
    ]
    assert buf.queued_frames == 0 and buf.current_item is None
    assert not buf.read(100).any()
    assert buf.played_ms("b") == pytest.approx(50.0)
    # Late audio of a cancelled reply stays silent and is not counted as overflow.
    assert buf.push("b", tone(480)) == 0
    assert buf.queued_frames == 0 and buf.dropped_frames == 0
    buf.end_item("b")
    assert buf.take_events() == []
    assert buf.clear() == []


def test_clear_interrupts_a_starved_item_still_streaming() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    buf.push("a", tone(240))
    buf.read(480)  # ran dry: the reply is late, not over
    buf.take_events()
    assert buf.clear() == [("a", 10.0)]  # 240 frames at 24 kHz
    assert buf.take_events() == [PlaybackEvent("a", "interrupted", 480)]


def test_bound_drops_and_counts_excess() -> None:
    buf = PlaybackBuffer(1000, max_queued_s=0.5)
    assert buf.max_queued_frames == 500
    assert buf.push("a", tone(300)) == 300
    assert buf.push("a", tone(300, start=301)) == 200
    assert buf.dropped_frames == 100
    assert buf.push("b", tone(10)) == 0
    assert buf.dropped_frames == 110
    out = buf.read(600)
    np.testing.assert_array_equal(out[:500], tone(500))
    assert not out[500:].any()
    assert buf.played_frames("a") == 500
    assert buf.push("b", tone(10)) == 10  # room again once read


def test_pushed_audio_is_copied() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    chunk = tone(10)
    buf.push("a", chunk)
    chunk[:] = 0
    np.testing.assert_array_equal(buf.read(10), tone(10))


def test_forget_drops_done_items_only() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    buf.push("a", tone(10))
    with pytest.raises(ValueError, match="still playing"):
        buf.forget("a")
    buf.end_item("a")
    buf.read(10)
    assert buf.played_frames("a") == 10
    buf.forget("a")
    assert buf.played_frames("a") == 0
    buf.forget("unknown")  # nothing to do
    assert buf.push("a", tone(5)) == 5  # the id may be used again afresh


@pytest.mark.parametrize(
    "kwargs", [{"rate_hz": 0}, {"max_queued_s": 0.0}, {"max_queued_s": float("inf")}]
)
def test_bad_arguments(kwargs: dict[str, float]) -> None:
    params: dict[str, float] = {"rate_hz": RATE_HZ, **kwargs}
    with pytest.raises(ValueError):
        PlaybackBuffer(**params)  # type: ignore[arg-type]


def test_bad_reads_and_pushes() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    with pytest.raises(ValueError):
        buf.read(-1)
    with pytest.raises(ValueError):
        buf.push("a", np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError):
        buf.push("a", np.zeros((10, 2), dtype=np.int16))


def test_one_writer_one_reader_thread_lose_and_repeat_nothing() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    items = [f"item{i}" for i in range(20)]
    expected = [tone(37 * (i + 1), start=1 + 1000 * i) for i in range(len(items))]
    writer_done = threading.Event()
    received: list[Pcm] = []
    accepted: list[int] = []

    def write() -> None:
        for item_id, samples in zip(items, expected, strict=True):
            for chunk in np.array_split(samples, 7):
                accepted.append(buf.push(item_id, chunk))
            buf.end_item(item_id)
        writer_done.set()

    def read() -> None:
        for _ in range(10_000_000):  # bounded, never expected to run out
            done = writer_done.is_set()
            block = buf.read(113)
            received.append(block[block != 0])  # audio is never 0; padding always is
            if done and buf.queued_frames == 0:
                return

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(accepted) == sum(s.shape[0] for s in expected)
    np.testing.assert_array_equal(np.concatenate(received), np.concatenate(expected))
    for item_id, samples in zip(items, expected, strict=True):
        assert buf.played_frames(item_id) == samples.shape[0]
    events = buf.take_events()
    assert [(e.item_id, e.kind) for e in events] == [
        (item_id, kind) for item_id in items for kind in ("started", "finished")
    ]
    dac_frames = [e.dac_frame for e in events]
    assert dac_frames == sorted(dac_frames)
    assert buf.dac_frames % 113 == 0 and buf.dac_frames >= sum(s.shape[0] for s in expected)
