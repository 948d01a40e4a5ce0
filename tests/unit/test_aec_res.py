"""The residual echo suppressor's far-end-only mode, on controlled signals.

The echo estimate is white noise; the residual the linear filter left is other
noise about 27 dB under it whose level swings by +-10 dB band by band and frame
by frame (as a distorting loudspeaker's residue does); the user is a third
noise well above that residual, starting half-way through.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from device.audio.aec_res import ResidualSuppressor, SuppressorConfig

Float = npt.NDArray[np.float64]
N = 160  # 10 ms at 16 kHz
FRAMES = 400


def _swinging_residual(rng: np.random.Generator, level: float) -> Float:
    """Noise whose spectrum is reshaped every frame by random +-10 dB band gains."""
    out = np.zeros(FRAMES * N)
    for i in range(FRAMES):
        spec = np.fft.rfft(rng.standard_normal(2 * N))
        shape = np.repeat(10 ** (rng.uniform(-10, 10, 8) / 20), -(-spec.size // 8))[: spec.size]
        out[i * N : (i + 1) * N] = np.fft.irfft(spec * shape, 2 * N)[N:]
    out *= level / np.sqrt(np.mean(out**2))
    return out


def _signals(user_db: float | None) -> tuple[Float, Float, Float]:
    """(error, echo estimate, user part of the error) at int16 scale."""
    rng = np.random.default_rng(5)
    echo = 3000.0 * rng.standard_normal(FRAMES * N)
    residual = _swinging_residual(rng, 3000.0 * 10 ** (-27 / 20))
    user = np.zeros(FRAMES * N)
    if user_db is not None:
        # The user starts half-way, once the suppressor has learnt the echo alone.
        user[FRAMES // 2 * N :] = (
            rng.standard_normal(FRAMES // 2 * N) * 3000.0 * 10 ** (user_db / 20)
        )
    return residual + user, echo, user


def _run(cfg: SuppressorConfig, err: Float, echo: Float, misadjustment: float) -> Float:
    res = ResidualSuppressor(cfg)
    out = np.zeros_like(err)
    for i in range(FRAMES):
        block = slice(i * N, (i + 1) * N)
        out[block] = res.process(err[block], echo[block], misadjustment)
    return out


def _level_db(x: Float) -> float:
    tail = x[FRAMES // 2 * N :]  # after the leak estimate has settled
    return float(10 * np.log10(np.mean(tail**2) + 1e-12))


ON = SuppressorConfig(block_frames=N)
OFF = dataclasses.replace(ON, far_only_extra_db=0.0)


def test_far_end_alone_a_swinging_residual_is_suppressed_further() -> None:
    err, echo, _ = _signals(user_db=None)
    gentle = _level_db(_run(OFF, err, echo, 0.001))
    strong = _level_db(_run(ON, err, echo, 0.001))
    assert strong <= gentle - 6.0


def test_a_user_well_above_the_residual_is_kept() -> None:
    err, echo, user = _signals(user_db=-10.0)
    out = _run(ON, err, echo, 0.001)
    kept = _level_db(out) - _level_db(user)
    assert abs(kept) <= 1.0
    gentle = _run(OFF, err, echo, 0.001)
    assert abs(_level_db(out) - _level_db(gentle)) <= 0.5


def test_not_trusted_while_the_filter_is_still_learning() -> None:
    err, echo, _ = _signals(user_db=None)
    learning = _run(ON, err, echo, 0.5)
    off = _run(OFF, err, echo, 0.5)
    np.testing.assert_array_equal(learning, off)
