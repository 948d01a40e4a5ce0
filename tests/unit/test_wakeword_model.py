"""The wake-word model's streaming step gives the library's probabilities exactly."""

from __future__ import annotations

import numpy as np
import pytest
from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

from device.audio.frames import Pcm
from device.audio.wakeword_model import StreamingFeatures, StreamingModel
from device.config_listen import WAKE_WORDS
from device.demo_listen import shipped_wake_word
from hw.fake import read_wav_mono

RATE_HZ = 16000


def speech_and_noise(name: str) -> Pcm:
    """The shipped recording of a wake word between stretches of noise and silence."""
    said = read_wav_mono(shipped_wake_word(name), RATE_HZ)
    noise = (np.random.default_rng(3).standard_normal(RATE_HZ) * 600).astype(np.int16)
    silence = np.zeros(RATE_HZ // 2, np.int16)
    return np.concatenate([noise, said, silence, said, noise])


def library_probabilities(name: str, audio: Pcm, block: int) -> list[float]:
    model = MicroWakeWord.from_builtin(Model(name))
    features = MicroWakeWordFeatures()
    found = []
    for i in range(0, len(audio), block):
        for row in features.process_streaming(audio[i : i + block].tobytes()):
            found.append(model.process_streaming_prob(row) or 0.0)
    return found


def our_probabilities(name: str, audio: Pcm, block: int) -> list[float]:
    model = StreamingModel(MicroWakeWord.from_builtin(Model(name)))
    features = StreamingFeatures()
    found = []
    for i in range(0, len(audio), block):
        for row in features.process(audio[i : i + block].tobytes()):
            found.append(model.process(row))
    return found


@pytest.mark.parametrize("name", WAKE_WORDS)
def test_every_probability_is_the_librarys(name: str) -> None:
    audio = speech_and_noise(name)
    theirs = library_probabilities(name, audio, 160)
    ours = our_probabilities(name, audio, 160)
    assert len(ours) == len(theirs) > 100
    assert ours == theirs  # bit for bit, frame by frame
    assert max(ours) > MicroWakeWord.from_builtin(Model(name)).probability_cutoff  # it fired


def test_blocks_that_do_not_fill_whole_frames_give_the_same_rows() -> None:
    audio = speech_and_noise("okay_nabu")
    ours = our_probabilities("okay_nabu", audio, 157)  # rows straddle the blocks
    assert ours == library_probabilities("okay_nabu", audio, 157)
    assert ours == our_probabilities("okay_nabu", audio, 160)
