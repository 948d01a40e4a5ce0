"""The capture path reuses work buffers from one 10 ms frame to the next: what it
hands out must stay what it was, and the fast paths must agree with the plain ones."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from device.audio import aec_fft
from device.audio.aec import make_canceller
from device.audio.frames import float_to_pcm
from device.audio.resample import StreamResampler, _finite_float32_to_pcm

RATE = 16000
FRAME = RATE // 100


def _echo_scene(frames: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    ref = (rng.standard_normal(frames * FRAME) * 3000).astype(np.int16)
    echo = np.convolve(ref.astype(float), [0.0] * 40 + [0.5, 0.2, -0.1])[: ref.size]
    mic = np.clip(echo + rng.standard_normal(ref.size) * 30, -32768, 32767).astype(np.int16)
    return mic, ref


@pytest.mark.parametrize("suppress", [True, False])
def test_ours_frames_stay_unchanged_after_later_frames(suppress: bool) -> None:
    canceller = make_canceller("ours", RATE, suppress=suppress)
    mic, ref = _echo_scene(60)
    outs = []
    kept = []
    for i in range(60):
        frame = slice(i * FRAME, (i + 1) * FRAME)
        out = canceller.process(mic[frame], ref[frame])
        outs.append(out)
        kept.append(out.copy())
    for out, copy in zip(outs, kept, strict=True):
        assert np.array_equal(out, copy)
    assert not all(np.array_equal(a, b) for a, b in itertools.pairwise(outs))


def test_ours_gives_the_same_output_as_a_fresh_canceller_after_reset() -> None:
    mic, ref = _echo_scene(40)
    used = make_canceller("ours", RATE)
    for i in range(40):  # fill every work buffer with something
        used.process(mic[i * FRAME : (i + 1) * FRAME], ref[i * FRAME : (i + 1) * FRAME])
    used.reset()
    fresh = make_canceller("ours", RATE)
    for i in range(40):
        frame = slice(i * FRAME, (i + 1) * FRAME)
        assert np.array_equal(
            used.process(mic[frame], ref[frame]), fresh.process(mic[frame], ref[frame])
        )


def test_fft_kernels_with_and_without_out_agree_with_numpy() -> None:
    x = np.random.default_rng(0).standard_normal((3, 2 * FRAME))
    spectrum = np.empty((3, FRAME + 1), dtype=np.complex128)
    for rfft, irfft in (
        (aec_fft.rfft, aec_fft.irfft),
        (aec_fft._public_rfft, aec_fft._public_irfft),
    ):
        assert np.allclose(rfft(x), np.fft.rfft(x))
        assert rfft(x, out=spectrum) is spectrum
        assert np.allclose(spectrum, np.fft.rfft(x))
        back = np.empty_like(x)
        assert irfft(spectrum, 2 * FRAME, out=back) is back
        assert np.allclose(back, x)


def test_resampler_rounding_matches_float_to_pcm() -> None:
    rng = np.random.default_rng(1)
    edges = np.array([1.0, -1.0, 32767 / 32768, 0.5 / 32768, -0.5 / 32768, 2.5 / 32768, -1.5])
    x = np.concatenate((rng.uniform(-1.3, 1.3, 50_000), edges)).astype(np.float32)
    assert np.array_equal(_finite_float32_to_pcm(x), float_to_pcm(x))


def test_resampled_stream_is_int16_and_as_long_as_the_rate_ratio() -> None:
    resampler = StreamResampler(16000, 24000)
    tone = (np.sin(np.arange(16000) * 0.05) * 20000).astype(np.int16)
    parts = [resampler.process(tone[i : i + FRAME]) for i in range(0, tone.size, FRAME)]
    parts.append(resampler.process(np.zeros(0, np.int16), last=True))
    out = np.concatenate(parts)
    assert out.dtype == np.int16
    assert out.size == 24000
    assert int(np.abs(out).max()) > 19000
