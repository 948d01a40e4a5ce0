"""Streaming and whole-buffer resampling keep length, pitch and level."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from device.audio.frames import Pcm
from device.audio.resample import StreamResampler, resample

RATE_PAIRS = [(16000, 24000), (48000, 24000), (24000, 48000), (24000, 16000)]


def sine(rate_hz: int, freq_hz: float, seconds: float, amplitude: float = 0.5) -> Pcm:
    t = np.arange(round(rate_hz * seconds)) / rate_hz
    return np.rint(amplitude * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def stream_through(
    resampler: StreamResampler, samples: Pcm, rng: np.random.Generator, max_chunk: int = 700
) -> Pcm:
    out: list[Pcm] = []
    pos = 0
    while pos < samples.shape[0]:
        n = int(rng.integers(0, max_chunk))
        out.append(resampler.process(samples[pos : pos + n]))
        pos += n
    out.append(resampler.process(np.zeros(0, dtype=np.int16), last=True))
    assert all(block.dtype == np.int16 and block.ndim == 1 for block in out)
    return np.concatenate(out)


def peak_hz(samples: Pcm, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.shape[0])))
    freqs = np.fft.rfftfreq(samples.shape[0], 1.0 / rate_hz)
    return float(freqs[int(np.argmax(spectrum))])


def rms_db(x: npt.NDArray[np.int16]) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


@pytest.mark.parametrize(("in_hz", "out_hz"), RATE_PAIRS)
def test_streaming_length_matches_ratio_over_random_chunks(in_hz: int, out_hz: int) -> None:
    rng = np.random.default_rng(in_hz + out_hz)
    samples = rng.integers(-8000, 8000, size=in_hz * 3 // 2 + 37).astype(np.int16)
    out = stream_through(StreamResampler(in_hz, out_hz), samples, rng)
    expected = samples.shape[0] * out_hz / in_hz
    assert abs(out.shape[0] - expected) <= 3


@pytest.mark.parametrize(("in_hz", "out_hz"), [(16000, 24000), (48000, 24000)])
def test_streaming_keeps_frequency_and_level(in_hz: int, out_hz: int) -> None:
    rng = np.random.default_rng(7)
    tone = sine(in_hz, 1000.0, 1.2)
    out = stream_through(StreamResampler(in_hz, out_hz), tone, rng)
    # Judge one second from the middle, away from the filter's start and end.
    middle = out[out_hz // 10 : out_hz // 10 + out_hz]
    assert peak_hz(middle, out_hz) == pytest.approx(1000.0, abs=1.0)
    reference = tone[in_hz // 10 : in_hz // 10 + in_hz]
    assert rms_db(middle) == pytest.approx(rms_db(reference), abs=0.5)


def test_streaming_matches_whole_buffer_resampling() -> None:
    tone = sine(16000, 440.0, 0.5)
    streamed = stream_through(StreamResampler(16000, 24000), tone, np.random.default_rng(3))
    whole = resample(tone, 16000, 24000)
    n = min(streamed.shape[0], whole.shape[0])
    assert abs(streamed.shape[0] - whole.shape[0]) <= 3
    diff = streamed[:n].astype(np.int32) - whole[:n].astype(np.int32)
    assert np.max(np.abs(diff[100:-100])) <= 2


def test_identity_when_rates_equal() -> None:
    resampler = StreamResampler(24000, 24000)
    block = np.arange(-50, 50, dtype=np.int16)
    out = resampler.process(block)
    np.testing.assert_array_equal(out, block)
    assert out.dtype == np.int16
    block[0] = 999
    assert out[0] == -50  # a fresh array, never the caller's buffer
    assert resampler.process(np.zeros(0, dtype=np.int16), last=True).shape == (0,)
    np.testing.assert_array_equal(resample(out, 24000, 24000), out)


def test_whole_buffer_keeps_frequency_and_level() -> None:
    tone = sine(48000, 1000.0, 1.0)
    out = resample(tone, 48000, 24000)
    assert out.dtype == np.int16
    assert out.shape == (24000,)
    assert peak_hz(out[2400:-2400], 24000) == pytest.approx(1000.0, abs=1.5)
    assert rms_db(out[2400:-2400]) == pytest.approx(rms_db(tone[4800:-4800]), abs=0.5)


def test_reset_forgets_previous_signal() -> None:
    resampler = StreamResampler(16000, 24000)
    resampler.process(sine(16000, 1000.0, 0.05, amplitude=0.9))
    resampler.reset()
    silence = np.zeros(1600, dtype=np.int16)
    out = np.concatenate([resampler.process(silence), resampler.process(silence[:0], last=True)])
    assert out.shape[0] == 2400
    assert np.max(np.abs(out)) == 0


def test_after_last_the_stream_starts_fresh() -> None:
    resampler = StreamResampler(48000, 24000)
    first = np.concatenate(
        [
            resampler.process(np.full(4800, 1000, dtype=np.int16)),
            resampler.process(np.zeros(0, dtype=np.int16), last=True),
        ]
    )
    second = np.concatenate(
        [
            resampler.process(np.full(4800, 1000, dtype=np.int16)),
            resampler.process(np.zeros(0, dtype=np.int16), last=True),
        ]
    )
    np.testing.assert_array_equal(first, second)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        StreamResampler(0, 24000)
    with pytest.raises(ValueError):
        StreamResampler(16000, 24000, quality="best")
    with pytest.raises(ValueError):
        StreamResampler(16000, 24000).process(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError):
        resample(np.zeros((10, 2), dtype=np.int16), 16000, 24000)
