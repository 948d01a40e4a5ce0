"""Speech classifiers: quiet and stationary noise stay quiet, speech fires promptly."""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

from device.audio import vad_backends
from device.audio.frames import Pcm, float_to_pcm, pcm_to_bytes
from device.audio.resample import resample
from device.audio.vad import VadGate
from device.audio.vad_backends import (
    VAD_BACKENDS,
    SpeechClassifier,
    VadUnavailable,
    make_classifier,
)

RATE_HZ = 16000
FRAME = RATE_HZ // 100
SPEECH_DBFS = -26.0
ONSET_LIMIT_MS = 90

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)


def _silero_missing() -> str | None:
    try:
        make_classifier("silero", RATE_HZ)
    except VadUnavailable as exc:
        return str(exc)
    return None


SILERO_MISSING = _silero_missing()
BACKENDS = [
    "webrtc",
    pytest.param(
        "silero",
        marks=pytest.mark.skipif(
            SILERO_MISSING is not None, reason=f"silero backend unavailable: {SILERO_MISSING}"
        ),
    ),
]


def pink(seconds: float, dbfs: float, seed: int = 1, rate_hz: int = RATE_HZ) -> Pcm:
    n = int(seconds * rate_hz)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate_hz)
    spectrum[1:] /= np.sqrt(freqs[1:] / freqs[1])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return float_to_pcm(noise * 10 ** (dbfs / 20) / np.sqrt(np.mean(noise**2)))


def decisions(classify: SpeechClassifier, audio: Pcm, rate_hz: int = RATE_HZ) -> list[bool]:
    step = rate_hz // 100
    return [
        classify(pcm_to_bytes(audio[i : i + step]), rate_hz)
        for i in range(0, audio.shape[0] - step + 1, step)
    ]


def frame_power(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    n = x.shape[0] // FRAME
    return np.asarray(np.mean(x[: n * FRAME].reshape(n, FRAME) ** 2, axis=1))


@pytest.fixture(scope="module")
def sentence(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pcm, int]:
    """A spoken sentence at 16 kHz, -26 dBFS active level, and its first speech frame
    (energy within 40 dB of the loudest frame)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path: Path = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(path), "Turn on the kitchen lights, please."],
        check=True,
        capture_output=True,
    )
    raw = path.read_bytes()
    rate_hz = int.from_bytes(raw[24:28], "little")
    data = raw[raw.index(b"data") + 8 :]
    pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)
    speech = resample(pcm, rate_hz, RATE_HZ).astype(np.float64) / 32768
    power = frame_power(speech)
    active = power >= power.max() * 1e-4
    speech *= 10 ** (SPEECH_DBFS / 20) / np.sqrt(power[active].mean())
    return float_to_pcm(speech), int(np.argmax(active))


def with_lead(speech: Pcm, lead_s: float, noise_dbfs: float | None) -> Pcm:
    """Speech after ``lead_s`` of quiet, over pink noise when ``noise_dbfs`` is set."""
    lead = np.zeros(int(lead_s * RATE_HZ), dtype=np.int16)
    tail = np.zeros(RATE_HZ // 2, dtype=np.int16)
    audio = np.concatenate([lead, speech, tail]).astype(np.int32)
    if noise_dbfs is not None:
        audio += pink(audio.shape[0] / RATE_HZ, noise_dbfs)
    return np.clip(audio, -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("backend", BACKENDS)
def test_digital_silence_never_fires(backend: str) -> None:
    assert not any(decisions(make_classifier(backend, RATE_HZ), np.zeros(3 * RATE_HZ, np.int16)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("noise_dbfs", [-60.0, -45.0, -30.0])
def test_stationary_pink_noise_does_not_fire(backend: str, noise_dbfs: float) -> None:
    verdicts = decisions(make_classifier(backend, RATE_HZ), pink(5.0, noise_dbfs, seed=3))
    assert sum(verdicts) == 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("noise_dbfs", [None, -46.0, -31.0])
def test_speech_fires_within_90_ms_of_its_start(
    backend: str, noise_dbfs: float | None, sentence: tuple[Pcm, int]
) -> None:
    speech, first = sentence
    lead_frames = 150
    verdicts = decisions(
        make_classifier(backend, RATE_HZ), with_lead(speech, lead_frames / 100, noise_dbfs)
    )
    onset = lead_frames + first
    assert not any(verdicts[:onset]), "fired before the speech"
    fired = verdicts.index(True)
    assert (fired + 1 - onset) * 10 <= ONSET_LIMIT_MS
    speech_frames = speech.shape[0] // FRAME
    assert sum(verdicts[onset : lead_frames + speech_frames]) > 0.6 * (speech_frames - first)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rate_hz", [8000, 44100, 48000])
def test_other_rates_give_the_same_onset(
    backend: str, rate_hz: int, sentence: tuple[Pcm, int]
) -> None:
    speech, first = sentence
    audio = resample(with_lead(speech, 1.0, -46.0), RATE_HZ, rate_hz)
    verdicts = decisions(make_classifier(backend, rate_hz), audio, rate_hz)
    fired = verdicts.index(True)
    assert 0 <= (fired + 1 - (100 + first)) * 10 <= ONSET_LIMIT_MS


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_of_20_and_30_ms_are_taken(backend: str, sentence: tuple[Pcm, int]) -> None:
    speech, first = sentence
    audio = with_lead(speech, 1.0, None)
    for frame_ms in (20, 30):
        step = RATE_HZ * frame_ms // 1000
        classify = make_classifier(backend, RATE_HZ)
        verdicts = [
            classify(pcm_to_bytes(audio[i : i + step]), RATE_HZ)
            for i in range(0, audio.shape[0] - step + 1, step)
        ]
        fired_ms = (verdicts.index(True) + 1) * frame_ms
        assert 0 <= fired_ms - (1000 + first * 10) <= ONSET_LIMIT_MS + frame_ms


@pytest.mark.parametrize("backend", BACKENDS)
def test_gate_with_backend_opens_once_at_the_sentence(
    backend: str, sentence: tuple[Pcm, int]
) -> None:
    speech, first = sentence
    audio = with_lead(speech, 1.0, -46.0)
    gate = VadGate(RATE_HZ, classifier=make_classifier(backend, RATE_HZ))
    outs = [gate.process(audio[i : i + FRAME]) for i in range(0, audio.shape[0] - FRAME + 1, FRAME)]
    opened = [o for o in outs if o.opened]
    assert len(opened) == 1
    assert opened[0].onset_frame is not None
    assert 0 <= opened[0].onset_frame - (100 + first) <= 9


@pytest.mark.parametrize("backend", BACKENDS)
def test_faint_speech_is_held_back_by_the_level_guard(
    backend: str, sentence: tuple[Pcm, int]
) -> None:
    """What is left of the speaker's own voice after echo cancellation is far below a
    user; speech 25 dB under the nominal level does not count."""
    speech, _ = sentence
    faint = (speech.astype(np.float64) * 10 ** (-25 / 20)).astype(np.int16)
    verdicts = decisions(make_classifier(backend, RATE_HZ), with_lead(faint, 1.0, -70.0))
    assert not any(verdicts)
    loose = make_classifier(backend, RATE_HZ, min_speech_dbfs=None)
    assert any(decisions(loose, with_lead(faint, 1.0, -70.0)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_misuse_is_reported(backend: str) -> None:
    classify = make_classifier(backend, RATE_HZ)
    with pytest.raises(ValueError, match="16000 Hz"):
        classify(bytes(2 * 480), 48000)
    with pytest.raises(ValueError, match="10, 20 or 30 ms"):
        classify(bytes(2 * 100), RATE_HZ)
    with pytest.raises(ValueError, match="10 ms"):
        make_classifier(backend, 22050)


def test_unknown_backend_and_bad_mode() -> None:
    assert VAD_BACKENDS == ("webrtc", "silero")
    with pytest.raises(ValueError, match="webrtc, silero"):
        make_classifier("nope", RATE_HZ)
    with pytest.raises(ValueError, match="aggressiveness"):
        make_classifier("webrtc", RATE_HZ, aggressiveness=4)


def test_missing_onnxruntime_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real: Callable[[str], ModuleType] = importlib.import_module

    def without_onnxruntime(name: str, package: str | None = None) -> ModuleType:
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real(name)

    monkeypatch.setattr(importlib, "import_module", without_onnxruntime)
    with pytest.raises(VadUnavailable, match="pip install onnxruntime"):
        make_classifier("silero", RATE_HZ)


def test_missing_model_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(VadUnavailable, match="silero-vad"):
        vad_backends.silero_model_path()


def _frame_powers(x: Pcm) -> list[float]:
    """Mean power per 10 ms frame, full scale 1.0."""
    return [float(p) for p in frame_power(x.astype(np.float64) / 32768)]


@pytest.fixture(scope="module")
def far_end(tmp_path_factory: pytest.TempPathFactory) -> Pcm:
    """The device's own voice at the mic, 10 dB above a user at the nominal level."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path: Path = tmp_path_factory.mktemp("far") / "far.wav"
    subprocess.run(
        [
            "espeak-ng",
            "-v",
            "en-gb",
            "-w",
            str(path),
            "Here is the forecast for today: sunny spells and a light breeze.",
        ],
        check=True,
        capture_output=True,
    )
    raw = path.read_bytes()
    data = raw[raw.index(b"data") + 8 :]
    pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)
    speech = resample(pcm, int.from_bytes(raw[24:28], "little"), RATE_HZ).astype(np.float64)
    power = frame_power(speech / 32768)
    active = power >= power.max() * 1e-4
    speech *= 10 ** ((SPEECH_DBFS + 10) / 20) / np.sqrt(power[active].mean()) / 32768
    return float_to_pcm(speech)


def _told(classify: SpeechClassifier, audio: Pcm, removed: Pcm) -> list[bool]:
    echo = _frame_powers(removed)
    out = []
    for n in range(audio.shape[0] // FRAME):
        classify.hear_echo(echo[n])  # type: ignore[attr-defined]
        out.append(classify(pcm_to_bytes(audio[n * FRAME : (n + 1) * FRAME]), RATE_HZ))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_residual_echo_30_db_down_does_not_fire_when_told_the_echo(
    backend: str, far_end: Pcm
) -> None:
    """A canceller that leaves the device's voice only 30 dB down: told how loud the
    removed echo was, the classifier ignores the residual; not told, it fires."""
    echo = with_lead(far_end, 1.0, None)
    residual = (echo.astype(np.float64) * 10 ** (-30 / 20)).astype(np.int32)
    audio = np.clip(residual + pink(echo.shape[0] / RATE_HZ, -55.0, seed=5), -32768, 32767)
    audio = audio.astype(np.int16)
    assert not any(_told(make_classifier(backend, RATE_HZ), audio, echo))
    assert any(decisions(make_classifier(backend, RATE_HZ), audio))


@pytest.mark.parametrize("backend", BACKENDS)
def test_user_10_db_under_the_echo_is_heard_while_the_device_speaks(
    backend: str, far_end: Pcm, sentence: tuple[Pcm, int]
) -> None:
    """Double talk: the canceller removed an echo 10 dB louder than the user and left a
    30 dB residual; the user still starts speech within the onset limit."""
    speech, first = sentence
    n = min(far_end.shape[0], speech.shape[0])
    echo = with_lead(far_end[:n], 1.0, None)
    user = with_lead(speech[:n], 1.0, None).astype(np.float64)
    audio = float_to_pcm(
        (user + echo * 10 ** (-30 / 20)) / 32768
        + pink(echo.shape[0] / RATE_HZ, -55.0, seed=6) / 32768
    )
    verdicts = _told(make_classifier(backend, RATE_HZ), audio, echo)
    onset = 100 + first
    assert not any(verdicts[:onset])
    assert (verdicts.index(True) + 1 - onset) * 10 <= ONSET_LIMIT_MS


@pytest.mark.parametrize("backend", BACKENDS)
def test_gate_tells_the_classifier_the_echo_from_the_mic_frame(backend: str, far_end: Pcm) -> None:
    """The gate reads the removed echo as mic minus clean: with the mic frame it stays
    closed on a residual 27 dB down, without it the residual opens it."""
    mic = with_lead(far_end, 1.0, -55.0)
    clean = (mic.astype(np.float64) * 10 ** (-27 / 20)).astype(np.int16)
    told = VadGate(RATE_HZ, classifier=make_classifier(backend, RATE_HZ))
    blind = VadGate(RATE_HZ, classifier=make_classifier(backend, RATE_HZ))
    opened_told = opened_blind = 0
    for i in range(0, mic.shape[0] - FRAME + 1, FRAME):
        opened_told += told.process(clean[i : i + FRAME], mic=mic[i : i + FRAME]).opened
        opened_blind += blind.process(clean[i : i + FRAME]).opened
    assert opened_told == 0
    assert opened_blind >= 1
    with pytest.raises(ValueError, match="mic must match"):
        told.process(clean[:FRAME], mic=mic[: FRAME // 2])


def test_aggressiveness_moves_the_start(sentence: tuple[Pcm, int]) -> None:
    """Mode 0 starts on less evidence than mode 3: never later, at least as many frames."""
    speech, _ = sentence
    audio = with_lead(speech, 1.0, -26.0)
    lax = decisions(make_classifier("webrtc", RATE_HZ, aggressiveness=0), audio)
    strict = decisions(make_classifier("webrtc", RATE_HZ, aggressiveness=3), audio)
    assert lax.index(True) <= strict.index(True)
    assert sum(lax) >= sum(strict)
    assert sum(lax) > sum(strict) or lax.index(True) < strict.index(True)
