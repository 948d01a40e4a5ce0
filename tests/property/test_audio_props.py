"""Invariants of the audio path that must hold for any chunking and any schedule."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from device.audio.frames import (
    Framer,
    Pcm,
    bytes_to_pcm,
    float_to_pcm,
    pcm_to_bytes,
    pcm_to_float,
)
from device.audio.playback import PlaybackBuffer
from device.audio.resample import StreamResampler
from device.audio.vad import VadGate

pcm_values = st.lists(st.integers(-32768, 32767), max_size=400)


def as_pcm(values: list[int]) -> Pcm:
    return np.array(values, dtype=np.int16)


def split(samples: Pcm, sizes: list[int]) -> list[Pcm]:
    """Cut ``samples`` at the given sizes; whatever is left becomes the last chunk."""
    chunks, pos = [], 0
    for size in sizes:
        chunks.append(samples[pos : pos + size])
        pos += size
    chunks.append(samples[pos:])
    return chunks


@settings(max_examples=100, deadline=None)
@given(
    frame_frames=st.integers(1, 64),
    total=st.integers(0, 2000),
    sizes=st.lists(st.integers(0, 300), max_size=30),
)
def test_framer_loses_nothing_for_any_chunking(
    frame_frames: int, total: int, sizes: list[int]
) -> None:
    samples = (np.arange(total) % 30000).astype(np.int16)
    framer = Framer(frame_frames)
    frames: list[Pcm] = []
    for chunk in split(samples, sizes):
        frames.extend(framer.push(chunk))
    assert all(f.shape == (frame_frames,) and f.dtype == np.int16 for f in frames)
    assert len(frames) == total // frame_frames
    assert framer.pending_frames == total % frame_frames
    assert framer.pending_frames < frame_frames
    tail = samples[total - framer.pending_frames :]
    np.testing.assert_array_equal(np.concatenate([*frames, tail]), samples)


@settings(max_examples=100, deadline=None)
@given(pcm_values)
def test_bytes_and_float_round_trips(values: list[int]) -> None:
    pcm = as_pcm(values)
    np.testing.assert_array_equal(bytes_to_pcm(pcm_to_bytes(pcm)), pcm)
    np.testing.assert_array_equal(float_to_pcm(pcm_to_float(pcm)), pcm)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("push"), st.integers(0, 3), st.integers(0, 500)),
            st.tuples(st.just("read"), st.integers(0, 700), st.just(0)),
        ),
        max_size=40,
    )
)
def test_playback_returns_every_sample_once_in_order(ops: list[tuple[str, int, int]]) -> None:
    rate_hz = 8000
    buf = PlaybackBuffer(rate_hz)
    pushed: list[Pcm] = []
    pushed_per_item = [0, 0, 0, 0]
    read: list[Pcm] = []
    read_frames = 0
    next_value = 1
    for op, a, b in ops:
        if op == "push":
            chunk = ((np.arange(b) + next_value - 1) % 30000 + 1).astype(np.int16)
            next_value += b
            assert buf.push(f"item{a}", chunk) == b
            pushed.append(chunk)
            pushed_per_item[a] += b
        else:
            block = buf.read(a)
            assert block.shape == (a,)
            read.append(block)
            read_frames += a
    # Drain whatever is left in random-sized reads too.
    while buf.queued_frames:
        read.append(buf.read(97))
        read_frames += 97

    audio = np.concatenate([np.zeros(0, dtype=np.int16), *read])
    total = sum(pushed_per_item)
    assert buf.dac_frames == read_frames
    # Audio is never 0 and padding always is: the non-zero samples are the audio.
    np.testing.assert_array_equal(
        audio[audio != 0], np.concatenate([np.zeros(0, dtype=np.int16), *pushed])
    )
    for i, frames in enumerate(pushed_per_item):
        assert buf.played_frames(f"item{i}") == frames
        assert buf.played_ms(f"item{i}") == frames * 1000 / rate_hz
    assert sum(buf.played_ms(f"item{i}") for i in range(4)) == total * 1000 / rate_hz
    started = [e.item_id for e in buf.take_events() if e.kind == "started"]
    assert len(started) == len(set(started))


@settings(max_examples=100, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 400), min_size=1, max_size=5),
    reads=st.lists(st.integers(0, 300), min_size=1, max_size=30),
)
def test_playback_clear_reports_what_was_heard(lengths: list[int], reads: list[int]) -> None:
    buf = PlaybackBuffer(1000)
    for i, n in enumerate(lengths):
        buf.push(f"item{i}", np.ones(n, dtype=np.int16))
        buf.end_item(f"item{i}")
    for n in reads:
        buf.read(n)
    events = buf.take_events()
    finished = {e.item_id for e in events if e.kind == "finished"}
    interrupted = dict(buf.clear())
    heard = sum(reads)
    for i, n in enumerate(lengths):
        item_id = f"item{i}"
        played = min(n, max(0, heard - sum(lengths[:i])))
        assert buf.played_frames(item_id) == played
        # Each item is either finished (all of it heard) or interrupted, never both.
        assert (item_id in finished) == (played == n)
        assert (item_id in interrupted) == (played < n)
        if item_id in interrupted:
            assert interrupted[item_id] == float(played)  # 1 frame is 1 ms at 1 kHz


@settings(max_examples=100, deadline=None)
@given(
    pattern=st.lists(st.booleans(), max_size=300),
    start_frames=st.integers(1, 5),
    pre_roll_frames=st.integers(0, 8),
    hangover_frames=st.integers(1, 6),
)
def test_gate_streams_each_frame_at_most_once_in_order(
    pattern: list[bool], start_frames: int, pre_roll_frames: int, hangover_frames: int
) -> None:
    def classify(frame: bytes, _rate_hz: int) -> bool:
        return pattern[int.from_bytes(frame[:2], "little")]

    gate = VadGate(
        8000,
        start_ms=10 * start_frames,
        pre_roll_ms=10 * pre_roll_frames,
        hangover_ms=10 * hangover_frames,
        classifier=classify,
    )
    streamed: list[int] = []
    was_open = False
    for i in range(len(pattern)):
        out = gate.process(np.full(80, i, dtype=np.int16))
        assert out.is_speech == pattern[i]
        assert out.opened == (not was_open and out.is_open)
        assert out.closed == (was_open and not out.is_open)
        if out.opened:
            assert out.onset_frame == i - start_frames + 1
            assert all(pattern[i - start_frames + 1 : i + 1])
            assert len(out.frames) <= max(pre_roll_frames, start_frames - 1) + 1
        if was_open or out.is_open:
            assert out.frames and int(out.frames[-1][0]) == i  # the current frame, last
        else:
            assert out.frames == []
        streamed.extend(int(f[0]) for f in out.frames)
        was_open = out.is_open
    assert streamed == sorted(set(streamed))


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(0, 600), max_size=20))
def test_resampler_output_does_not_depend_on_chunking(sizes: list[int]) -> None:
    rng = np.random.default_rng(1)
    samples = rng.integers(-10000, 10000, size=3000).astype(np.int16)
    whole = StreamResampler(16000, 24000)
    reference = np.concatenate([whole.process(samples), whole.process(samples[:0], last=True)])
    chunked = StreamResampler(16000, 24000)
    parts = [chunked.process(chunk) for chunk in split(samples, sizes)]
    out = np.concatenate([*parts, chunked.process(samples[:0], last=True)])
    assert out.shape == reference.shape
    assert np.max(np.abs(out.astype(np.int32) - reference)) <= 1
