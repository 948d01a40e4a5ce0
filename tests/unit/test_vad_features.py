"""The webrtc backend's speech score: whitened against any noise tilt, floored above
digital silence, and fitted weights that match the features."""

from __future__ import annotations

import numpy as np
import pytest

from device.audio.frames import Pcm, float_to_pcm, pcm_to_bytes
from device.audio.vad_backends import WebrtcClassifier
from device.audio.vad_features import BIAS, FEATURES, WEIGHTS, SpeechFeatures, score
from tests.unit.test_vad_backends import FRAME, RATE_HZ, sentence, with_lead

__all__ = ["sentence"]  # the shared fixture: a spoken sentence at -26 dBFS


def tilted_noise(seconds: float, dbfs: float, slope: float, seed: int) -> Pcm:
    """Gaussian noise whose power falls as f**-slope: 0 white, 1 pink, 2 brown."""
    n = int(seconds * RATE_HZ)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE_HZ)
    spectrum[1:] /= (freqs[1:] / freqs[1]) ** (slope / 2)
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return float_to_pcm(noise * 10 ** (dbfs / 20) / np.sqrt(np.mean(noise**2)))


def frames_of(audio: Pcm) -> list[bytes]:
    return [pcm_to_bytes(audio[i : i + FRAME]) for i in range(0, audio.shape[0] - FRAME + 1, FRAME)]


def test_weights_match_the_features() -> None:
    assert len(WEIGHTS) == len(FEATURES)
    values = SpeechFeatures().update(bytes(2 * FRAME))
    assert len(values) == len(FEATURES)
    assert score(values) == pytest.approx(BIAS)  # digital silence: every feature is 0


@pytest.mark.parametrize("slope", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("dbfs", [-50.0, -25.0, -15.0])
def test_stationary_noise_of_any_tilt_is_whitened(slope: float, dbfs: float) -> None:
    """Each band is read against its own floor, and the frame's trend is removed so
    brown noise does not leak upwards: white, pink and brown noise at any level sit
    a few dB over their floors, and the classifier never calls them speech."""
    audio = tilted_noise(4.0, dbfs, slope, seed=11)
    extract = SpeechFeatures()
    rows = [extract.update(f) for f in frames_of(audio)]
    settled = rows[200:]  # after 2 s: the floor has seen 1.5 s of the noise
    assert max(row[FEATURES.index("band SNR, 140 ms")] for row in settled) < 5.0
    assert max(row[FEATURES.index("high band SNR, 50 ms")] for row in settled) < 5.0
    classify = WebrtcClassifier(RATE_HZ)
    assert not any(classify(f, RATE_HZ) for f in frames_of(audio))


def test_a_faint_leak_over_digital_silence_ends_speech(sentence: tuple[Pcm, int]) -> None:
    """Fake hardware gives digital silence between sounds, and an echo canceller leaks
    a trace of the device's voice into it (-75 dBFS). Against a floor of zero that
    trace would stand 30 dB over the noise and hold speech on; it must not."""
    speech, _ = sentence
    leak = (speech.astype(np.float64) * 10 ** (-49 / 20)).astype(np.int16)
    audio = np.concatenate([with_lead(speech, 1.0, None), leak, leak])
    classify = WebrtcClassifier(RATE_HZ)
    verdicts = [classify(f, RATE_HZ) for f in frames_of(audio)]
    speech_end = (RATE_HZ + speech.shape[0] + RATE_HZ // 2) // FRAME
    assert any(verdicts[:speech_end])
    assert not any(verdicts[speech_end + 30 :])


def test_the_fast_spectrum_is_numpys_to_the_last_bit() -> None:
    """The voice-band power comes from a reused FFT kernel and a dot-product mean; both
    must give exactly what the plain numpy calls give, or the fitted score drifts."""
    rng = np.random.default_rng(5)
    extract = SpeechFeatures()
    freqs = np.fft.rfftfreq(256, 1 / RATE_HZ)
    voice = (freqs >= 250.0) & (freqs <= 4000.0)
    ramp = np.linspace(-1.0, 1.0, FRAME)
    for level in (0, 3, 300, 30000):
        pcm = rng.integers(-level, level + 1, size=FRAME).astype(np.int16)
        extract.update(pcm_to_bytes(pcm))
        x = pcm.astype(np.float64)
        slope = float(np.dot(ramp, x)) * (1.0 / float(ramp @ ramp))
        x -= float(np.add.reduce(x)) / FRAME
        x -= slope * ramp
        spectrum = np.fft.rfft(x, 256)
        power = spectrum.real * spectrum.real + spectrum.imag * spectrum.imag
        expected = float(np.add.reduce(power[voice])) * (2.0 / (256 * FRAME * 32768.0 * 32768.0))
        assert extract.voice_power == expected
