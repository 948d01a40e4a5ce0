"""Echo cancellation backends on synthesized scenes.

Scenes: a far-end talker (espeak-ng when installed, else amplitude-modulated
harmonic noise with pauses), an echo path made of a bulk delay and a decaying
random impulse response, optionally a near-end talker. Everything is seeded, so
each test sees the same audio on every run. These tests check behaviour with
margins; the benchmark in scripts/bench measures the real targets.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import wave
from dataclasses import dataclass
from io import BytesIO

import numpy as np
import numpy.typing as npt
import pytest

from device.audio.aec import (
    BACKENDS,
    AecUnavailable,
    EchoCanceller,
    available_backends,
    make_canceller,
)
from device.audio.resample import resample

RATE = 16000
Float = npt.NDArray[np.float64]


def _espeak(text: str, voice: str) -> Float | None:
    if shutil.which("espeak-ng") is None:
        return None
    try:
        proc = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", "165", "--stdout", text],
            capture_output=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    data = proc.stdout
    # espeak-ng streams a WAV whose size fields are bogus; read the header only.
    with wave.open(BytesIO(data[:44] + b"\0\0"), "rb") as wav:
        rate = wav.getframerate()
    pcm = np.frombuffer(data[44 : 44 + (len(data) - 44) // 2 * 2], dtype="<i2").astype(np.int16)
    return resample(pcm, rate, RATE).astype(np.float64)


def _harmonic_talker(seconds: float, seed: int) -> Float:
    """Speech-like: a gliding harmonic series with noise, syllable-rate envelope, pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    base = 110.0 if seed == 1 else 210.0  # a low and a high voice
    # Intonation: a new pitch target every 200 ms, glided to.
    targets = base * rng.uniform(0.75, 1.35, n // (RATE // 5) + 2)
    f0 = np.interp(t, np.arange(targets.shape[0]) * 0.2, targets)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(h * phase + rng.uniform(0, 6)) / h for h in range(1, 30))
    noise = 2.0 * np.convolve(rng.standard_normal(n), np.ones(3) / 3, mode="same")
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 2
    words = (np.sin(2 * np.pi * 0.45 * t + rng.uniform(0, 6)) > -0.6).astype(float)
    out: Float = np.asarray((voiced + noise) * syllables * words, dtype=np.float64)
    return out


@functools.cache
def talker(kind: str, seconds: float) -> Float:
    text = {
        "far": "The weather today will be mostly sunny with a high of twenty four degrees. "
        "In the evening clouds gather over the hills and there is a chance of light rain. "
        "Tomorrow starts cool and bright, and the wind picks up from the west.",
        "near": "Hey, stop. I want to ask something else. What time is it in Tokyo? "
        "And can you set a timer for ten minutes please?",
    }[kind]
    speech = _espeak(text, "en-us" if kind == "far" else "en-us+f3")
    if speech is None:
        speech = _harmonic_talker(seconds, seed=1 if kind == "far" else 2)
    n = int(seconds * RATE)
    speech = np.tile(speech, n // speech.shape[0] + 1)[:n]
    out: Float = speech / np.max(np.abs(speech))
    return out


def echo_path(delay_ms: float, seed: int, tail_ms: float = 150.0) -> Float:
    rng = np.random.default_rng(seed)
    taps = int(tail_ms * RATE / 1000)
    decay = np.exp(-np.arange(taps) / (0.03 * RATE))  # about -60 dB over 200 ms
    # A loudspeaker centimetres from the mics: the direct path dominates the room.
    h = rng.standard_normal(taps) * decay * 0.03
    h[0] = 1.0
    h[1:4] += (0.5, -0.3, 0.1)
    return np.concatenate((np.zeros(int(delay_ms * RATE / 1000)), h))


@dataclass
class Scene:
    mic: npt.NDArray[np.int16]
    ref: npt.NDArray[np.int16]
    near: Float
    """Clean near-end at the microphone, int16 units."""


def scene(
    seconds: float,
    delay_ms: float = 40.0,
    *,
    near_from_s: float | None = None,
    near_db: float = -10.0,
    change_at_s: float | None = None,
    far: bool = True,
    seed: int = 3,
) -> Scene:
    n = int(seconds * RATE)
    x = 0.5 * talker("far", seconds) if far else np.zeros(n)
    echo = np.convolve(x, echo_path(delay_ms, seed))[:n]
    if change_at_s is not None:
        k = int(change_at_s * RATE)
        echo[k:] = np.convolve(x, echo_path(delay_ms, seed + 50))[k:n]
    active = np.abs(x) > 1e-3
    echo_rms = float(np.sqrt(np.mean(echo[active] ** 2))) if active.any() else 1.0
    echo *= 0.1 / echo_rms  # -20 dBFS while the far end talks
    near = np.zeros(n)
    if near_from_s is not None:
        k = int(near_from_s * RATE)
        voice = talker("near", seconds)[: n - k]
        voice_rms = float(np.sqrt(np.mean(voice[np.abs(voice) > 1e-3] ** 2)))
        near[k:] = voice * (0.1 * 10 ** (near_db / 20) / voice_rms)
    noise = np.random.default_rng(seed + 9).standard_normal(n) * 10 ** (-70 / 20)
    mic = np.clip(np.rint((echo + near + noise) * 32768), -32768, 32767).astype(np.int16)
    ref = np.clip(np.rint(x * 32768), -32768, 32767).astype(np.int16)
    return Scene(mic, ref, near * 32768)


def run(canceller: EchoCanceller, sc: Scene) -> npt.NDArray[np.int16]:
    n = canceller.frame_frames
    frames = sc.mic.shape[0] // n
    out = np.zeros(frames * n, dtype=np.int16)
    for i in range(frames):
        block = slice(i * n, (i + 1) * n)
        out[block] = canceller.process(sc.mic[block], sc.ref[block])
    return out


def erle_db(sc: Scene, out: npt.NDArray[np.int16], from_s: float, to_s: float) -> float:
    n = 160
    a, b = int(from_s * RATE) // n, int(to_s * RATE) // n
    m = sc.mic[a * n : b * n].astype(np.float64).reshape(-1, n)
    o = out[a * n : b * n].astype(np.float64).reshape(-1, n)
    r = sc.ref[a * n : b * n].astype(np.float64).reshape(-1, n)
    active = np.mean(r * r, axis=1) > 33.0**2
    return float(10 * np.log10(np.sum(m[active] ** 2) / (np.sum(o[active] ** 2) + 1e-9)))


def si_sdr_db(estimate: Float, target: Float) -> float:
    scale = float(estimate @ target) / float(target @ target)
    projection = scale * target
    residual = estimate - projection
    return float(10 * np.log10(float(projection @ projection) / float(residual @ residual)))


# -- ours ------------------------------------------------------------------------------


def test_ours_converges_to_30_db_erle() -> None:
    sc = scene(7.0)
    out = run(make_canceller("ours", RATE), sc)
    assert erle_db(sc, out, 3.0, 7.0) >= 30.0


def test_ours_does_not_diverge_over_30_s() -> None:
    sc = scene(30.0)
    out = run(make_canceller("ours", RATE), sc)
    early = erle_db(sc, out, 3.0, 8.0)
    for start in range(8, 30, 5):
        assert erle_db(sc, out, start, start + 5) >= min(30.0, early - 3.0)


def test_ours_keeps_near_end_speech_in_double_talk() -> None:
    sc = scene(11.0, near_from_s=4.0)
    out = run(make_canceller("ours", RATE), sc)
    k = 4 * RATE
    before = si_sdr_db(sc.mic[k:].astype(np.float64), sc.near[k : out.shape[0]])
    after = si_sdr_db(out[k:].astype(np.float64), sc.near[k : out.shape[0]])
    assert before < -5.0
    assert after >= 5.0


def test_ours_passes_near_end_alone_within_1_db() -> None:
    sc = scene(5.0, far=False, near_from_s=0.5)
    out = run(make_canceller("ours", RATE), sc)
    mic = sc.mic[: out.shape[0]].astype(np.float64)
    level_db = 10 * np.log10(np.sum(out.astype(np.float64) ** 2) / np.sum(mic**2))
    assert abs(level_db) <= 1.0


def test_ours_finds_a_120_ms_bulk_delay() -> None:
    sc = scene(8.0, delay_ms=120.0)
    canceller = make_canceller("ours", RATE)
    out = run(canceller, sc)
    assert erle_db(sc, out, 4.0, 8.0) >= 30.0
    assert 80.0 <= getattr(canceller, "delay_ms", 0.0) <= 130.0


def test_ours_reconverges_after_the_echo_path_changes() -> None:
    sc = scene(12.0, change_at_s=6.0)
    out = run(make_canceller("ours", RATE), sc)
    assert erle_db(sc, out, 3.0, 6.0) >= 30.0
    assert erle_db(sc, out, 7.0, 12.0) >= 25.0


@pytest.mark.parametrize("rate", [8000, 16000, 32000, 48000])
def test_ours_runs_at_every_rate(rate: int) -> None:
    canceller = make_canceller("ours", rate)
    n = canceller.frame_frames
    assert n == rate // 100
    rng = np.random.default_rng(0)
    ref = (rng.standard_normal(n * 50) * 3000).astype(np.int16)
    mic = (np.convolve(ref, [0.0, 0.0, 0.5, 0.2])[: ref.shape[0]]).astype(np.int16)
    out = [canceller.process(mic[i : i + n], ref[i : i + n]) for i in range(0, n * 50, n)]
    assert all(o.shape == (n,) and o.dtype == np.int16 for o in out)


def test_ours_reset_forgets_what_it_learnt() -> None:
    sc = scene(3.0)
    fresh = run(make_canceller("ours", RATE), sc)
    used = make_canceller("ours", RATE)
    run(used, scene(3.0, seed=8))
    used.reset()
    assert np.array_equal(run(used, sc), fresh)


def test_ours_silence_in_silence_out() -> None:
    canceller = make_canceller("ours", RATE)
    zeros = np.zeros(160, dtype=np.int16)
    for _ in range(100):
        assert not canceller.process(zeros, zeros).any()


# -- the interface ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ours", "none"])
@pytest.mark.parametrize("rate", [16000, 48000])
def test_frames_of_the_wrong_length_or_type_are_rejected(name: str, rate: int) -> None:
    canceller = make_canceller(name, rate)
    n = canceller.frame_frames
    good = np.zeros(n, dtype=np.int16)
    with pytest.raises(ValueError, match="samples"):
        canceller.process(np.zeros(n - 1, dtype=np.int16), good)
    with pytest.raises(ValueError, match="samples"):
        canceller.process(good, np.zeros(n + 1, dtype=np.int16))
    with pytest.raises(ValueError):
        canceller.process(good.astype(np.float32), good)
    with pytest.raises(ValueError):
        canceller.process(np.zeros((n, 2), dtype=np.int16), good)


def test_none_is_identity() -> None:
    canceller = make_canceller("none", RATE)
    sc = scene(1.0)
    out = run(canceller, sc)
    assert np.array_equal(out, sc.mic[: out.shape[0]])
    assert canceller.name == "none" and canceller.frame_frames == 160
    canceller.reset()


def test_make_canceller_rejects_unknown_names_rates_and_options() -> None:
    with pytest.raises(ValueError, match="unknown echo canceller"):
        make_canceller("magic", RATE)
    for rate in (11025, 44100, 0, -16000):
        with pytest.raises(ValueError, match="runs at"):
            make_canceller("ours", rate)
    with pytest.raises(ValueError):
        make_canceller("ours", RATE, no_such_option=1)
    with pytest.raises(ValueError):
        make_canceller("none", RATE, tail_ms=100)
    with pytest.raises(ValueError):
        make_canceller("ours", RATE, tail_ms=0)


def test_backend_names_and_availability() -> None:
    assert BACKENDS == ("ours", "webrtc", "speex", "none")
    found = available_backends()
    assert found[0] == "ours" and "none" in found
    assert all(name in BACKENDS for name in found)


# -- optional backends -----------------------------------------------------------------


def _optional(name: str) -> EchoCanceller:
    try:
        return make_canceller(name, RATE)
    except AecUnavailable as exc:
        pytest.skip(f"{name} backend not installed: {exc}")


@pytest.mark.parametrize("name", ["webrtc", "speex"])
def test_optional_backend_cancels_some_echo(name: str) -> None:
    canceller = _optional(name)
    assert canceller.name == name and canceller.frame_frames == 160
    sc = scene(6.0)
    out = run(canceller, sc)
    assert out.dtype == np.int16 and out.shape[0] == sc.mic.shape[0] // 160 * 160
    assert erle_db(sc, out, 3.0, 6.0) >= 6.0
    with pytest.raises(ValueError):
        canceller.process(np.zeros(100, dtype=np.int16), np.zeros(100, dtype=np.int16))
    canceller.reset()


@pytest.mark.parametrize("name", ["webrtc", "speex"])
def test_missing_optional_library_says_what_to_install(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    real = importlib.import_module

    def fake(module: str, package: str | None = None) -> object:
        if module.startswith(("livekit", "speexdsp")):
            raise ImportError(f"No module named {module!r}")
        return real(module, package)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(AecUnavailable, match="pip install"):
        make_canceller(name, RATE)
    assert name not in available_backends()
