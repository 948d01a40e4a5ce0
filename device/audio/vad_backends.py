"""Speech classifiers for the voice gate: one verdict per 10 ms frame.

Two backends, both streaming and stateful (call them once per frame, in order):

- ``webrtc``: a fitted logistic score (``vad_features``) of webrtcvad's verdicts
  in modes 0-2 and the frame's SNR in ten bands against each band's own
  noise floor, with start/stop thresholds. Raw webrtcvad fires on stationary
  noise and loses quiet syllables; the whitened SNR steadies both.
- ``silero``: the Silero VAD network (the ONNX file shipped in the ``silero-vad``
  wheel) run by onnxruntime on 16 kHz audio, 512-sample windows carrying the
  network's state from one window to the next; each 10 ms frame gets the latest
  window's probability, with on/off thresholds, and the voice-band energy
  sharpens both edges (the network alone reacts some 60 ms late).

Both share a level guard: speech cannot start unless the voice-band energy above
the noise floor reached ``min_speech_dbfs`` within the last 300 ms. That keeps
what the echo canceller leaves of the speaker's own voice (tens of dB below a
user speaking to the device) from opening the gate; the price is that a talker
much quieter than that at the mic is not heard (None turns the guard off).
While the device speaks, the guard also learns the echo the canceller removed
(``hear_echo``): speech cannot start unless the voice band stands within
``ECHO_MARGIN_DB`` of that echo, so a canceller that leaves 30 dB of residual
does not let the device hear itself, while a user 10 dB under the echo is heard.

No clocks: time is counted in frames.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from device.audio.vad import VAD_FRAME_MS, SpeechClassifier
from device.audio.vad_features import ANALYSIS_RATE_HZ, FRAME_SAMPLES, SpeechFeatures, score
from device.audio.vad_guard import DEFAULT_MIN_SPEECH_DBFS, ECHO_MARGIN_DB, LevelGuard

__all__ = [
    "DEFAULT_MIN_SPEECH_DBFS",
    "ECHO_MARGIN_DB",
    "SILERO_INSTALL_HINT",
    "VAD_BACKENDS",
    "SileroClassifier",
    "SpeechClassifier",
    "VadUnavailable",
    "WebrtcClassifier",
    "make_classifier",
    "silero_model_path",
]

VAD_BACKENDS = ("webrtc", "silero")
"""Backend names :func:`make_classifier` accepts."""

SILERO_INSTALL_HINT = "pip install onnxruntime && pip install --no-deps silero-vad"
"""silero-vad declares torch as a dependency, but only its model file is used here."""
_HINT = SILERO_INSTALL_HINT

SILERO_RATE_HZ = 16000
SILERO_WINDOW = 512
"""Samples per network step at 16 kHz (32 ms)."""
_SILERO_CONTEXT = 64
"""Samples of the previous window the network sees in front of each new one."""
_SILERO_MODEL = "silero_vad.onnx"

_FULL_SCALE = 32768.0


class VadUnavailable(Exception):
    """A backend's optional packages are not installed; the message says what to install."""


class _Rate:
    """Checks that every frame comes at the rate the classifier was built for."""

    def __init__(self, rate_hz: int) -> None:
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, int) or rate_hz <= 0:
            raise ValueError(f"rate_hz must be a positive integer, got {rate_hz!r}")
        if rate_hz % 100:
            raise ValueError(f"rate_hz={rate_hz} has no whole-sample 10 ms frame")
        self.rate_hz = rate_hz
        self._frame_bytes = {2 * ms * rate_hz // 1000 for ms in VAD_FRAME_MS}

    def check(self, rate_hz: int, frame: bytes) -> None:
        if rate_hz != self.rate_hz:
            raise ValueError(f"classifier built for {self.rate_hz} Hz got a {rate_hz} Hz frame")
        if len(frame) not in self._frame_bytes:
            raise ValueError(
                f"a frame must be 10, 20 or 30 ms of PCM16 at {rate_hz} Hz, got {len(frame)} bytes"
            )


class _Frames10ms:
    """Turns incoming frames into 10 ms float32 chunks at the analysis rate: the input
    rate itself when ``keep`` allows it, else 16 kHz through libsoxr (low delay)."""

    def __init__(self, rate_hz: int, keep: tuple[int, ...]) -> None:
        self.rate_hz = rate_hz if rate_hz in keep else SILERO_RATE_HZ
        self._stream: soxr.ResampleStream | None = None
        if self.rate_hz != rate_hz:
            self._stream = soxr.ResampleStream(
                rate_hz, self.rate_hz, 1, dtype="float32", quality="LQ"
            )
        self._step = self.rate_hz // 100
        self._pending = np.zeros(0, dtype=np.float32)

    def __call__(self, frame: bytes) -> list[npt.NDArray[np.float32]]:
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
        samples *= np.float32(1.0 / _FULL_SCALE)
        if self._stream is not None:
            out = self._stream.resample_chunk(samples)
            samples = np.asarray(out, dtype=np.float32).reshape(-1)
        if self._pending.size:
            samples = np.concatenate((self._pending, samples))
        usable = samples.shape[0] // self._step * self._step
        self._pending = samples[usable:].copy()
        return [samples[i : i + self._step] for i in range(0, usable, self._step)]

    def pcm(self, frame: bytes) -> list[bytes]:
        """The same chunks as PCM16 bytes; at the analysis rate, slices of ``frame``."""
        if self._stream is None:
            step = 2 * self._step
            if len(frame) == step:  # the usual 10 ms frame: nothing to cut
                return [frame]
            return [frame[i : i + step] for i in range(0, len(frame), step)]
        return [_to_pcm16(chunk) for chunk in self(frame)]


def _to_pcm16(samples: npt.NDArray[np.float32]) -> bytes:
    scaled = np.clip(np.rint(samples * _FULL_SCALE), -32768, 32767)
    data: bytes = scaled.astype("<i2").tobytes()
    return data


_AGGRESSIVENESS_STEP = 1.5
"""Per step of ``aggressiveness``: log-odds added to both score thresholds."""


class WebrtcClassifier:
    """The fitted speech score of ``vad_features`` with start/stop thresholds.

    Speech starts on the first frame whose score (log-odds) reaches
    ``start_score`` while the level guard allows it and the voice band stands
    ``start_snr_db`` over its noise floor (loud stationary noise, whose score
    wanders, then stays out), and ends after
    ``stop_frames`` frames in a row score under ``stop_score``. ``aggressiveness``
    (webrtcvad's 0..3 scale) moves both thresholds: 0 keeps the most speech (starts
    on the least evidence, holds longest), 3 the least; 2 is the fitted setting.
    Other rates are resampled to 16 kHz first.
    """

    def __init__(
        self,
        rate_hz: int,
        *,
        aggressiveness: int = 2,
        min_speech_dbfs: float | None = DEFAULT_MIN_SPEECH_DBFS,
        start_score: float = 1.0,
        stop_score: float = -0.5,
        stop_frames: int = 4,
        start_snr_db: float = 5.0,
    ) -> None:
        if isinstance(aggressiveness, bool) or aggressiveness not in range(4):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}")
        if stop_frames < 1:
            raise ValueError(f"stop_frames must be at least 1, got {stop_frames}")
        self._rate = _Rate(rate_hz)
        self._frames = _Frames10ms(rate_hz, (ANALYSIS_RATE_HZ,))
        self._features = SpeechFeatures()
        self._guard = LevelGuard(ANALYSIS_RATE_HZ, FRAME_SAMPLES, min_speech_dbfs)
        step = aggressiveness - 2  # 2 is the fitted setting
        self._start = start_score + _AGGRESSIVENESS_STEP * step
        self._stop = stop_score + _AGGRESSIVENESS_STEP * step
        self._stop_frames = stop_frames
        self._start_snr_db = start_snr_db
        self._quiet = 0
        self.active = False
        self.score = 0.0
        """The latest 10 ms frame's score."""

    def hear_echo(self, echo_power: float) -> None:
        """The mean power (full scale 1.0) the echo canceller removed from the next frame."""
        self._guard.hear_echo(echo_power)

    def __call__(self, frame: bytes, rate_hz: int) -> bool:
        self._rate.check(rate_hz, frame)
        for chunk in self._frames.pcm(frame):
            self.score = score(self._features.update(chunk))
            self._guard.update_power(self._features.voice_power)
            if self.active:
                self._quiet = 0 if self.score >= self._stop else self._quiet + 1
                self.active = self._quiet < self._stop_frames
            else:
                self.active = (
                    self.score >= self._start
                    and self._guard.loud
                    and self._guard.snr_db >= self._start_snr_db
                )
                self._quiet = 0
        return self.active


def silero_model_path() -> Path:
    """The ONNX model inside the installed ``silero-vad`` wheel, found without importing
    the package (its ``__init__`` imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadUnavailable(f"the silero backend needs the silero-vad model: {_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / _SILERO_MODEL
    if not path.is_file():
        raise VadUnavailable(f"silero-vad is installed but {path} is missing: reinstall it")
    return path


def _onnxruntime() -> Any:
    try:
        return importlib.import_module("onnxruntime")
    except ImportError as exc:
        raise VadUnavailable(f"the silero backend needs onnxruntime: {_HINT}") from exc


_QUIET, _TENTATIVE, _SPEECH = 0, 1, 2


class SileroClassifier:
    """Silero VAD, streaming, with the level guard sharpening its edges.

    The network takes 512 new samples at 16 kHz per step (32 ms) and carries its
    state from step to step; every 10 ms frame gets the latest step's probability.
    Speech starts when the probability reaches ``on_prob``, and ends when it drops
    below ``off_prob``. The network reacts some 60 ms late at both edges, so the
    voice-band energy, which reacts within a frame or two, helps at both:

    - a jump of ``onset_snr_db`` over the noise floor starts speech at once, on
      trial: unless the network confirms within ``confirm_frames`` it is dropped,
      and energy alone cannot start speech again for ``cooldown_frames``;
    - speech ends early when the energy has sat within ``trim_snr_db`` of the floor
      for ``trim_frames`` frames and the network is no longer sure (below ``trim_prob``).

    Speech never starts while the level guard finds nothing loud enough.
    """

    def __init__(
        self,
        rate_hz: int,
        *,
        on_prob: float = 0.5,
        off_prob: float = 0.35,
        min_speech_dbfs: float | None = DEFAULT_MIN_SPEECH_DBFS,
        onset_snr_db: float | None = 6.0,
        confirm_frames: int = 8,
        cooldown_frames: int = 30,
        trim_snr_db: float | None = 3.0,
        trim_frames: int = 3,
        trim_prob: float = 0.8,
        model_path: Path | None = None,
    ) -> None:
        ort = _onnxruntime()
        path = model_path if model_path is not None else silero_model_path()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._rate = _Rate(rate_hz)
        self._frames = _Frames10ms(rate_hz, (SILERO_RATE_HZ,))
        self._guard = LevelGuard(SILERO_RATE_HZ, SILERO_RATE_HZ // 100, min_speech_dbfs)
        self._on_prob = on_prob
        self._off_prob = off_prob
        self._onset_snr_db = onset_snr_db
        self._confirm_frames = confirm_frames
        self._cooldown_frames = cooldown_frames
        self._trim_snr_db = trim_snr_db
        self._trim_frames = trim_frames
        self._trim_prob = trim_prob
        self._state_in = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(_SILERO_CONTEXT, dtype=np.float32)
        self._window: list[npt.NDArray[np.float32]] = []
        self._window_samples = 0
        self._sr = np.array(SILERO_RATE_HZ, dtype=np.int64)
        self._mode = _QUIET
        self._trial_frames = 0
        self._cooldown = 0
        self._near_floor = 0
        self.probability = 0.0
        """Speech probability of the latest network step."""

    def hear_echo(self, echo_power: float) -> None:
        """The mean power (full scale 1.0) the echo canceller removed from the next frame."""
        self._guard.hear_echo(echo_power)

    def _step(self, window: npt.NDArray[np.float32]) -> float:
        x = np.concatenate((self._context, window))[np.newaxis, :]
        out, self._state_in = self._session.run(
            None, {"input": x, "state": self._state_in, "sr": self._sr}
        )
        self._context = window[-_SILERO_CONTEXT:].copy()
        return float(np.asarray(out).reshape(-1)[0])

    def _feed(self, chunk: npt.NDArray[np.float32]) -> None:
        self._window.append(chunk)
        self._window_samples += chunk.shape[0]
        if self._window_samples < SILERO_WINDOW:
            return
        joined = np.concatenate(self._window)
        self.probability = self._step(joined[:SILERO_WINDOW])
        rest = joined[SILERO_WINDOW:]
        self._window = [rest] if rest.size else []
        self._window_samples = int(rest.shape[0])

    def _decide(self) -> None:
        p = self.probability
        near_floor = self._trim_snr_db is not None and self._guard.snr_db < self._trim_snr_db
        self._near_floor = self._near_floor + 1 if near_floor else 0
        self._cooldown = max(self._cooldown - 1, 0)
        trimmed = self._near_floor >= self._trim_frames and p < self._trim_prob
        if self._mode == _SPEECH:
            if p < self._off_prob or trimmed:
                self._mode = _QUIET
            return
        if p >= self._on_prob and self._guard.loud:
            self._mode = _SPEECH
        elif self._mode == _TENTATIVE:
            self._trial_frames += 1
            if self._trial_frames > self._confirm_frames or self._near_floor >= self._trim_frames:
                self._mode = _QUIET
                self._cooldown = self._cooldown_frames
        elif (
            self._onset_snr_db is not None
            and self._cooldown == 0
            and self._guard.loud
            and self._guard.snr_db >= self._onset_snr_db
        ):
            self._mode = _TENTATIVE
            self._trial_frames = 0

    def __call__(self, frame: bytes, rate_hz: int) -> bool:
        self._rate.check(rate_hz, frame)
        for chunk in self._frames(frame):
            self._guard.update(chunk)
            self._feed(chunk)
            self._decide()
        return self._mode != _QUIET


def make_classifier(
    name: str,
    rate_hz: int,
    *,
    aggressiveness: int = 2,
    min_speech_dbfs: float | None = DEFAULT_MIN_SPEECH_DBFS,
) -> SpeechClassifier:
    """A fresh classifier for one stream of frames at ``rate_hz``.

    ``aggressiveness`` is webrtcvad's mode (the silero backend ignores it);
    ``min_speech_dbfs=None`` turns the level guard off. Raises ValueError for an
    unknown name or an unusable rate, VadUnavailable when the backend's packages
    are missing.
    """
    if name == "webrtc":
        return WebrtcClassifier(
            rate_hz, aggressiveness=aggressiveness, min_speech_dbfs=min_speech_dbfs
        )
    if name == "silero":
        return SileroClassifier(rate_hz, min_speech_dbfs=min_speech_dbfs)
    raise ValueError(f"unknown VAD backend {name!r}; choose one of {', '.join(VAD_BACKENDS)}")
