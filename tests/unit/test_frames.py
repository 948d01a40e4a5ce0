"""Framing and PCM conversions."""

from __future__ import annotations

import numpy as np
import pytest

from device.audio.frames import (
    Framer,
    bytes_to_pcm,
    float_to_pcm,
    frames_for_ms,
    pcm_to_bytes,
    pcm_to_float,
)


def ramp(n: int, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n) % 30000).astype(np.int16)


def test_framer_cuts_exact_frames_and_carries_leftover() -> None:
    framer = Framer(160)
    assert framer.push(ramp(100)) == []
    assert framer.pending_frames == 100
    frames = framer.push(ramp(250, start=100))
    assert len(frames) == 2
    assert framer.pending_frames == 30
    np.testing.assert_array_equal(frames[0], ramp(160))
    np.testing.assert_array_equal(frames[1], ramp(160, start=160))
    assert all(f.dtype == np.int16 and f.shape == (160,) for f in frames)


def test_framer_one_big_chunk_gives_many_frames() -> None:
    framer = Framer(10)
    frames = framer.push(ramp(105))
    assert len(frames) == 10
    assert framer.pending_frames == 5
    np.testing.assert_array_equal(np.concatenate(frames), ramp(100))


def test_framer_frames_are_copies() -> None:
    framer = Framer(4)
    chunk = ramp(8)
    frames = framer.push(chunk)
    chunk[:] = 0
    np.testing.assert_array_equal(frames[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(frames[1], [4, 5, 6, 7])


def test_framer_leftover_survives_caller_reusing_its_buffer() -> None:
    framer = Framer(4)
    chunk = ramp(6)
    framer.push(chunk)
    chunk[:] = 0  # the sound card hands the same buffer back for the next block
    np.testing.assert_array_equal(framer.push(chunk[:2])[0], [4, 5, 0, 0])


def test_framer_reset_drops_pending() -> None:
    framer = Framer(4)
    framer.push(ramp(3))
    framer.reset()
    assert framer.pending_frames == 0
    np.testing.assert_array_equal(framer.push(ramp(4, start=50))[0], ramp(4, start=50))


def test_framer_empty_chunk() -> None:
    framer = Framer(4)
    assert framer.push(np.zeros(0, dtype=np.int16)) == []
    assert framer.pending_frames == 0


@pytest.mark.parametrize(
    "bad",
    [np.zeros(8, dtype=np.float32), np.zeros((4, 2), dtype=np.int16), np.zeros(8, dtype=np.int32)],
)
def test_framer_rejects_non_mono_int16(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        Framer(4).push(bad)


def test_framer_rejects_non_positive_size() -> None:
    with pytest.raises(ValueError):
        Framer(0)


@pytest.mark.parametrize(
    ("rate_hz", "ms", "frames"),
    [
        (16000, 10, 160),
        (48000, 10, 480),
        (24000, 20, 480),
        (44100, 10, 441),
        (8000, 2.5, 20),
        (24000, 0.125, 3),
        (10000, 0.1, 1),
        (16000, 0, 0),
    ],
)
def test_frames_for_ms_exact(rate_hz: int, ms: float, frames: int) -> None:
    assert frames_for_ms(rate_hz, ms) == frames


@pytest.mark.parametrize(
    ("rate_hz", "ms"),
    [(22050, 10), (44100, 1), (16000, 0.01), (16000, -10), (0, 10), (16000, float("nan"))],
)
def test_frames_for_ms_rejects_fractional_or_bad(rate_hz: int, ms: float) -> None:
    with pytest.raises(ValueError):
        frames_for_ms(rate_hz, ms)


def test_bytes_round_trip_is_little_endian() -> None:
    pcm = np.array([0, 1, -1, 32767, -32768, 256], dtype=np.int16)
    data = pcm_to_bytes(pcm)
    assert data[:6] == b"\x00\x00\x01\x00\xff\xff"
    assert len(data) == 12
    back = bytes_to_pcm(data)
    assert back.dtype == np.int16
    np.testing.assert_array_equal(back, pcm)
    back[0] = 5  # decoded audio is writable, not a view on immutable bytes
    assert back[0] == 5


def test_bytes_to_pcm_rejects_odd_length() -> None:
    with pytest.raises(ValueError, match="even"):
        bytes_to_pcm(b"\x00\x01\x02")


def test_float_to_pcm_clips_and_rounds() -> None:
    x = np.array([0.0, 0.5, -0.5, 1.0, 2.0, -1.0, -3.0, 1.0 / 65536 * 1.2, np.nan])
    pcm = float_to_pcm(x)
    assert pcm.dtype == np.int16
    np.testing.assert_array_equal(pcm, [0, 16384, -16384, 32767, 32767, -32768, -32768, 1, 0])


def test_float_round_trip() -> None:
    pcm = np.array([-32768, -1, 0, 1, 12345, 32767], dtype=np.int16)
    as_float = pcm_to_float(pcm)
    assert as_float.dtype == np.float32
    assert as_float.min() >= -1.0 and as_float.max() < 1.0
    np.testing.assert_array_equal(float_to_pcm(as_float), pcm)
