"""Earcons mixed over the reply: heard and in the echo reference, but never reply audio."""

from __future__ import annotations

import numpy as np
import pytest

from device.audio.playback import MAX_OVERLAY_S, PlaybackBuffer

RATE_HZ = 16000


def const(n: int, value: int) -> np.ndarray:
    return np.full(n, value, np.int16)


def test_an_overlay_plays_alone_when_no_reply_is_queued() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    assert buf.play_over(const(300, 1000))
    assert buf.queued_frames == 0  # not reply audio
    assert buf.overlay_frames == 300
    out = buf.read(200)
    assert out.tolist() == [1000] * 200
    out = buf.read(200)
    assert out.tolist() == [1000] * 100 + [0] * 100
    assert buf.overlay_frames == 0
    assert buf.take_events() == []  # no item started or finished


def test_an_overlay_is_mixed_over_the_reply_without_being_charged_to_it() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    buf.push("item", const(400, 200))
    buf.play_over(const(100, 50))
    out = buf.read(400)
    assert out[:100].tolist() == [250] * 100
    assert out[100:].tolist() == [200] * 300
    assert buf.played_frames("item") == 400  # what the truncation will count


def test_mixing_saturates_instead_of_wrapping() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    buf.push("item", const(10, 30000))
    buf.play_over(const(10, 10000))
    assert buf.read(10).tolist() == [32767] * 10
    buf.push("quiet", const(10, -30000))
    buf.play_over(const(10, -10000))
    assert buf.read(10).tolist() == [-32768] * 10


def test_barge_in_cuts_the_reply_but_not_the_earcon() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    buf.push("item", const(1000, 200))
    buf.play_over(const(500, 50))
    buf.read(100)
    assert buf.clear() == [("item", pytest.approx(100 * 1000 / RATE_HZ))]
    out = buf.read(500)
    assert out.tolist() == [50] * 400 + [0] * 100


def test_overlays_play_one_after_another_and_a_burst_is_bounded() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    assert buf.play_over(const(3, 1))
    assert buf.play_over(const(3, 2))
    assert buf.read(8).tolist() == [1, 1, 1, 2, 2, 2, 0, 0]
    limit = round(MAX_OVERLAY_S * RATE_HZ)
    assert buf.play_over(const(limit - 10, 1))
    assert not buf.play_over(const(20, 1))  # would pass the bound: dropped
    assert buf.overlay_frames == limit - 10
    with pytest.raises(ValueError):
        buf.play_over(np.zeros(4, np.float32))  # type: ignore[arg-type]


def test_level_is_the_rms_of_what_was_last_played() -> None:
    buf = PlaybackBuffer(RATE_HZ)
    assert buf.level == 0.0
    buf.push("item", const(160, 16384))
    buf.read(160)
    assert buf.level == pytest.approx(0.5)
    buf.read(160)
    assert buf.level == 0.0
    buf.play_over(const(160, -8192))
    buf.read(160)
    assert buf.level == pytest.approx(0.25)
