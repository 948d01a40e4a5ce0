"""The wake word: pymicro-wakeword's shipped models on real (synthesized) speech."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from device.audio.frames import Pcm
from device.audio.wakeword import WakeWordDetector, WakeWordUnavailable, make_detector
from device.config_listen import WAKE_WORDS
from device.demo import shipped_question
from device.demo_listen import shipped_wake_word
from hw.fake import read_wav_mono

RATE_HZ = 16000
FRAME = RATE_HZ // 100


def detector(name: str = "okay_nabu", rate_hz: int = RATE_HZ, **kw: float) -> WakeWordDetector:
    return make_detector(
        name, None, rate_hz, refractory_s=kw.get("refractory_s", 2.0), source="test.toml"
    )


def fired_at_s(det: WakeWordDetector, audio: Pcm) -> list[float]:
    frame = det.rate_hz // 100
    return [
        (i + frame) / det.rate_hz
        for i in range(0, len(audio) - frame + 1, frame)
        if det.process(audio[i : i + frame])
    ]


def padded(speech: Pcm, rate_hz: int = RATE_HZ) -> Pcm:
    silence = np.zeros(rate_hz // 2, np.int16)
    return np.concatenate([silence, speech, silence, silence])


def espeak(tmp_path: Path, text: str, voice: str) -> Pcm:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng; scripts/test does)")
    wav = tmp_path / "said.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True)
    return read_wav_mono(wav, RATE_HZ)


def test_the_shipped_names_are_the_packages_models() -> None:
    from pymicro_wakeword import Model

    assert set(WAKE_WORDS) == {m.value for m in Model}


@pytest.mark.parametrize(("text", "voice"), [("okay nabu", "en-us"), ("okay nabu", "en-gb")])
def test_a_spoken_wake_word_fires_once(tmp_path: Path, text: str, voice: str) -> None:
    said = espeak(tmp_path, text, voice)
    det = detector()
    fired = fired_at_s(det, padded(said))
    assert len(fired) == 1  # the model fires on many frames; the refractory time keeps one
    end_of_speech_s = 0.5 + np.flatnonzero(np.abs(said) > 300)[-1] / RATE_HZ
    assert end_of_speech_s < fired[0] < end_of_speech_s + 0.5  # at the end of the word


@pytest.mark.parametrize("name", WAKE_WORDS)
def test_each_shipped_recording_fires_its_own_model_and_no_other(name: str) -> None:
    said = padded(read_wav_mono(shipped_wake_word(name), RATE_HZ))
    for model in WAKE_WORDS:
        assert len(fired_at_s(detector(model), said)) == (1 if model == name else 0), model


def test_other_speech_and_noise_never_fire(tmp_path: Path) -> None:
    question = read_wav_mono(shipped_question(), RATE_HZ)
    rng = np.random.default_rng(7)
    noise = np.clip(rng.normal(0, 3000, RATE_HZ * 10), -32768, 32767).astype(np.int16)
    sentences = [
        espeak(tmp_path, "what is the weather like tomorrow in the city", "en-us"),
        espeak(tmp_path, "okay, now turn the music up a little", "en-gb"),
        espeak(tmp_path, "the cabbage was on the table", "en+m3"),
    ]
    for audio in [question, noise, *sentences]:
        for name in WAKE_WORDS:
            assert fired_at_s(detector(name), padded(audio)) == [], name


def test_48_khz_boards_are_resampled_for_the_model() -> None:
    said = read_wav_mono(shipped_wake_word("okay_nabu"), 48000)
    assert len(fired_at_s(detector(rate_hz=48000), padded(said, 48000))) == 1


def test_the_refractory_time_lets_a_second_utterance_through() -> None:
    said = read_wav_mono(shipped_wake_word("alexa"), RATE_HZ)
    gap = np.zeros(int(RATE_HZ * 1.5), np.int16)
    twice = padded(np.concatenate([said, gap, said]))
    assert len(fired_at_s(detector("alexa", refractory_s=1.0), twice)) == 2
    assert len(fired_at_s(detector("alexa", refractory_s=5.0), twice)) == 1


def test_deafen_ignores_the_word_for_a_while() -> None:
    said = padded(read_wav_mono(shipped_wake_word("alexa"), RATE_HZ))
    det = detector("alexa")
    det.deafen()  # the talk button just opened a turn
    assert fired_at_s(det, said) == []


def test_a_model_of_ones_own_loads_from_its_manifest(tmp_path: Path) -> None:
    import pymicro_wakeword

    models = Path(pymicro_wakeword.__file__).parent / "models"
    manifest = json.loads((models / "hey_mycroft.json").read_text())
    manifest["model"] = "mine.tflite"
    manifest["wake_word"] = "Hey Mine"
    shutil.copy(models / "hey_mycroft.tflite", tmp_path / "mine.tflite")
    (tmp_path / "mine.json").write_text(json.dumps(manifest))
    det = make_detector(
        "okay_nabu", tmp_path / "mine.json", RATE_HZ, refractory_s=2.0, source="test.toml"
    )
    assert det.phrase == "Hey Mine"
    said = padded(read_wav_mono(shipped_wake_word("hey_mycroft"), RATE_HZ))
    assert len(fired_at_s(det, said)) == 1


def test_a_missing_model_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(WakeWordUnavailable) as caught:
        make_detector(
            "okay_nabu",
            tmp_path / "gone.json",
            RATE_HZ,
            refractory_s=2.0,
            source="/etc/edgevoice/edgevoice.toml",
        )
    message = str(caught.value)
    assert message.startswith("/etc/edgevoice/edgevoice.toml: listen.wake_word_model: ")
    assert "gone.json" in message and "JSON manifest" in message
    assert 'listen.mode = "always"' in message


def test_a_tflite_path_is_told_to_give_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "mine.tflite").write_bytes(b"\0" * 16)
    with pytest.raises(WakeWordUnavailable, match=r"mine\.json"):
        make_detector(
            "okay_nabu", tmp_path / "mine.tflite", RATE_HZ, refractory_s=2.0, source="x.toml"
        )


def test_a_manifest_naming_a_missing_model_file_says_which(tmp_path: Path) -> None:
    (tmp_path / "mine.json").write_text(json.dumps({"model": "nope.tflite", "micro": {}}))
    with pytest.raises(WakeWordUnavailable, match=r"nope\.tflite.*does not exist"):
        make_detector(
            "okay_nabu", tmp_path / "mine.json", RATE_HZ, refractory_s=2.0, source="x.toml"
        )


def test_not_a_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.json").write_text("[1, 2]")
    with pytest.raises(WakeWordUnavailable, match="not a microWakeWord manifest"):
        make_detector(
            "okay_nabu", tmp_path / "mine.json", RATE_HZ, refractory_s=2.0, source="x.toml"
        )
