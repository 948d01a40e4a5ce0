"""The wake word: microWakeWord models run by ``pymicro-wakeword`` on the
echo-cancelled microphone signal.

The models take 16 kHz mono PCM16 in 10 ms steps, the frame the capture pipeline
already works on; a board running at 48 kHz is resampled with soxr first. The
package ships models ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa"), each a
``.tflite`` file with a JSON manifest that holds its detection threshold and
averaging window; a model of one's own is loaded from such a manifest.

A model keeps firing for a few hundred ms after the word ends (its probability
is averaged over a sliding window), so after a detection the detector is
deaf for ``refractory_s``: one utterance triggers once. Time is counted in
frames, never read from a clock.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Protocol

from device.audio.frames import Pcm, check_mono_pcm, pcm_to_bytes
from device.audio.resample import StreamResampler
from device.audio.wakeword_model import StreamingFeatures, StreamingModel
from device.config_listen import WAKE_WORDS
from device.errors import ConfigError

MODEL_RATE_HZ = 16000
FRAME_MS = 10
INSTALL_HINT = "pip install pymicro-wakeword (a base dependency of edgevoice)"


class WakeWordUnavailable(ConfigError):
    """No wake-word model could be loaded: the message names the key and what to do."""


class WakeWordModel(Protocol):
    """A model as the package loads it (``MicroWakeWord``): one probability per feature
    window. The detector runs its interpreter itself (``wakeword_model``)."""

    probability_cutoff: float

    def process_streaming_prob(self, features: Any) -> float | None: ...


def _package() -> Any:
    try:
        return importlib.import_module("pymicro_wakeword")
    except ImportError as exc:
        missing = f"the pymicro-wakeword package is missing ({exc}); {INSTALL_HINT}"
        raise RuntimeError(missing) from exc


def load_model(name: str, path: Path | None) -> tuple[WakeWordModel, str]:
    """The model and its phrase: ``path`` (a manifest) when given, else a shipped one.

    Raises RuntimeError (package missing), ValueError (unknown shipped name) or
    OSError/ValueError for a manifest that cannot be read or loaded.
    """
    package = _package()
    if path is None:
        if name not in WAKE_WORDS:
            raise ValueError(f"no shipped wake word {name!r}; shipped: {', '.join(WAKE_WORDS)}")
        model = package.MicroWakeWord.from_builtin(package.Model(name))
        return model, str(model.wake_word)
    if path.suffix == ".tflite":
        raise ValueError(
            "give the model's JSON manifest (it names the .tflite file), "
            f"such as {path.with_suffix('.json')}"
        )
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or "micro" not in manifest or "model" not in manifest:
        raise ValueError('not a microWakeWord manifest (it needs "model" and "micro" entries)')
    tflite = path.parent / str(manifest["model"])
    if not tflite.is_file():
        raise FileNotFoundError(f"the model file it names, {tflite}, does not exist")
    model = package.MicroWakeWord.from_config(path)
    return model, str(model.wake_word)


class WakeWordDetector:
    """Feeds 10 ms frames to a wake-word model; ``process`` is True once per utterance."""

    def __init__(
        self,
        model: WakeWordModel,
        phrase: str,
        rate_hz: int,
        *,
        refractory_s: float = 2.0,
    ) -> None:
        self.model = model
        self.phrase = phrase
        self.rate_hz = rate_hz
        self._features = StreamingFeatures()
        self._step = StreamingModel(model)
        # At the model's own rate the frame goes in as it is (no copy, no filter).
        self._resampler = (
            StreamResampler(rate_hz, MODEL_RATE_HZ, quality="LQ")
            if rate_hz != MODEL_RATE_HZ
            else None
        )
        self._refractory_frames = round(refractory_s * 1000 / FRAME_MS)
        self._deaf_frames = 0
        self.detections = 0
        self.last_probability = 0.0

    def process(self, frame: Pcm) -> bool:
        """One frame of the echo-cancelled signal at ``rate_hz``; True when the wake
        word ended in it (and the detector was not deaf from the last one)."""
        check_mono_pcm(frame, "frame")
        fired = False
        pcm = frame if self._resampler is None else self._resampler.process(frame)
        audio = pcm_to_bytes(pcm)
        for features in self._features.process(audio):
            probability = self._step.process(features)
            self.last_probability = probability
            if probability > self._step.probability_cutoff and self._deaf_frames == 0:
                fired = True
        if self._deaf_frames:
            self._deaf_frames -= 1
        if fired:
            self.detections += 1
            self._deaf_frames = self._refractory_frames
        return fired

    def deafen(self) -> None:
        """Ignore the wake word for ``refractory_s`` from now (another activation began)."""
        self._deaf_frames = self._refractory_frames


def make_detector(
    name: str,
    path: Path | None,
    rate_hz: int,
    *,
    refractory_s: float,
    source: str,
) -> WakeWordDetector:
    """A detector for the configured wake word, or a clear error naming the key.

    Raises:
        WakeWordUnavailable: the package is missing, or the model cannot be loaded.
    """
    key = "listen.wake_word_model" if path is not None else "listen.wake_word"
    what = str(path) if path is not None else repr(name)
    try:
        model, phrase = load_model(name, path)
    except (OSError, ValueError, RuntimeError, KeyError, json.JSONDecodeError) as exc:
        remedy = (
            "give the path of a microWakeWord model's JSON manifest with its .tflite beside it"
            if path is not None
            else f"choose one of {', '.join(WAKE_WORDS)}; {INSTALL_HINT}"
        )
        raise WakeWordUnavailable(
            source,
            key,
            f"the wake word {what} cannot be loaded: {exc}; {remedy}, "
            'or set listen.mode = "always" or "push_to_talk"',
        ) from exc
    return WakeWordDetector(model, phrase, rate_hz, refractory_s=refractory_s)
