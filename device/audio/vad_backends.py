"""Speech classifiers for the voice gate: one verdict per 10 ms frame.

Two backends, both streaming and stateful (call them once per frame, in order):

- ``webrtc``: webrtcvad's verdict, kept only where the frame's voice-band energy
  stands clear of a tracked noise floor, then smoothed with a short on/off
  hysteresis. Raw webrtcvad fires on stationary noise; the floor guard stops that.
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

No clocks: time is counted in frames.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr
import webrtcvad

from device.audio.vad import VAD_FRAME_MS, VAD_RATES_HZ, SpeechClassifier

__all__ = [
    "DEFAULT_MIN_SPEECH_DBFS",
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

DEFAULT_MIN_SPEECH_DBFS = -38.0
"""Loudest voice-band level above the noise floor, within the last 300 ms, that a
frame needs before speech can start: 12 dB under a user at the nominal -26 dBFS."""

SILERO_RATE_HZ = 16000
SILERO_WINDOW = 512
"""Samples per network step at 16 kHz (32 ms)."""
_SILERO_CONTEXT = 64
"""Samples of the previous window the network sees in front of each new one."""
_SILERO_MODEL = "silero_vad.onnx"

_FULL_SCALE = 32768.0
_SILENCE_DB = -100.0
_BAND_HZ = (250.0, 4000.0)
"""Voice band for the energy guard; below it sits most room and pink noise."""
_FLOOR_BLOCK_FRAMES = 10
_FLOOR_BLOCKS = 15
"""Noise floor = lowest smoothed frame energy of the last 15 blocks of 100 ms."""
_LOUD_FRAMES = 30
"""How far back (10 ms frames) the level guard looks for a loud enough frame."""


class VadUnavailable(Exception):
    """A backend's optional packages are not installed; the message says what to install."""


def _db(power: float) -> float:
    return 10.0 * float(np.log10(power)) if power > 1e-10 else _SILENCE_DB


class _LevelGuard:
    """Voice-band energy of each frame against a minimum-statistics noise floor.

    After ``update``: ``snr_db`` is the smoothed voice-band energy over the floor,
    ``loud`` whether the part above the floor reached ``min_speech_dbfs`` within
    the last ``_LOUD_FRAMES`` frames (always true when that is None).
    """

    def __init__(self, rate_hz: int, frame_samples: int, min_speech_dbfs: float | None) -> None:
        self._nfft = 1 << (frame_samples - 1).bit_length()
        freqs = np.fft.rfftfreq(self._nfft, 1.0 / rate_hz)
        self._band = (freqs >= _BAND_HZ[0]) & (freqs <= _BAND_HZ[1])
        # Parseval: twice the one-sided band energy over nfft is the band's share of
        # the frame's energy; divided by its length, of its mean power per sample.
        self._scale = 2.0 / (self._nfft * frame_samples)
        self._min_power = None if min_speech_dbfs is None else 10.0 ** (min_speech_dbfs / 10.0)
        self._recent: deque[float] = deque(maxlen=3)
        self._block_min = float("inf")
        self._block_frames = 0
        self._blocks: deque[float] = deque(maxlen=_FLOOR_BLOCKS)
        self._since_loud = _LOUD_FRAMES
        self.snr_db = 0.0
        self.loud = min_speech_dbfs is None

    def update(self, samples: npt.NDArray[np.float32]) -> None:
        spectrum = np.fft.rfft(samples, self._nfft)
        power = float(np.sum(np.abs(spectrum[self._band]) ** 2)) * self._scale
        self._recent.append(power)
        smooth = sum(self._recent) / len(self._recent)
        self._block_min = min(self._block_min, smooth)
        self._block_frames += 1
        if self._block_frames == _FLOOR_BLOCK_FRAMES:
            self._blocks.append(self._block_min)
            self._block_min = float("inf")
            self._block_frames = 0
        floor = min(min(self._blocks, default=smooth), self._block_min)
        self.snr_db = _db(smooth) - _db(floor)
        if self._min_power is not None:
            loud_now = smooth - floor >= self._min_power
            self._since_loud = 0 if loud_now else self._since_loud + 1
            self.loud = self._since_loud < _LOUD_FRAMES


class _Hysteresis:
    """On once ``on_frames`` of the last ``window`` frames were candidates (and the
    level guard allows a start); off after ``off_frames`` non-candidates in a row."""

    def __init__(self, window: int, on_frames: int, off_frames: int) -> None:
        self._recent: deque[bool] = deque(maxlen=window)
        self._on_frames = on_frames
        self._off_frames = off_frames
        self._quiet = 0
        self.active = False

    def update(self, candidate: bool, may_start: bool) -> bool:
        self._recent.append(candidate)
        self._quiet = 0 if candidate else self._quiet + 1
        if self.active:
            self.active = self._quiet < self._off_frames
        else:
            self.active = may_start and sum(self._recent) >= self._on_frames
        return self.active


class _Rate:
    """Checks that every frame comes at the rate the classifier was built for."""

    def __init__(self, rate_hz: int) -> None:
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, int) or rate_hz <= 0:
            raise ValueError(f"rate_hz must be a positive integer, got {rate_hz!r}")
        if rate_hz % 100:
            raise ValueError(f"rate_hz={rate_hz} has no whole-sample 10 ms frame")
        self.rate_hz = rate_hz

    def check(self, rate_hz: int, frame: bytes) -> None:
        if rate_hz != self.rate_hz:
            raise ValueError(f"classifier built for {self.rate_hz} Hz got a {rate_hz} Hz frame")
        if len(frame) % 2 or len(frame) // 2 * 1000 not in [ms * rate_hz for ms in VAD_FRAME_MS]:
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


def _to_pcm16(samples: npt.NDArray[np.float32]) -> bytes:
    scaled = np.clip(np.rint(samples * _FULL_SCALE), -32768, 32767)
    data: bytes = scaled.astype("<i2").tobytes()
    return data


class WebrtcClassifier:
    """webrtcvad behind a noise-floor guard, with a short on/off hysteresis.

    A 10 ms frame is a candidate when webrtcvad calls it speech and its voice-band
    energy stands ``margin_db`` over the noise floor; speech starts once ``on_frames``
    of the last ``window`` frames were candidates and ends after ``off_frames``
    non-candidates in a row. Rates webrtcvad does not take (44100, 24000 Hz, ...)
    are resampled to 16 kHz first.
    """

    def __init__(self, rate_hz: int, *, aggressiveness: int = 2, margin_db: float = 5.0,
                 min_speech_dbfs: float | None = DEFAULT_MIN_SPEECH_DBFS,
                 window: int = 3, on_frames: int = 2, off_frames: int = 18) -> None:
        if isinstance(aggressiveness, bool) or aggressiveness not in range(4):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}")
        if not 1 <= on_frames <= window:
            raise ValueError(f"on_frames must be 1..window={window}, got {on_frames}")
        self._rate = _Rate(rate_hz)
        self._frames = _Frames10ms(rate_hz, VAD_RATES_HZ)
        self._vad = webrtcvad.Vad(aggressiveness)
        self._guard = _LevelGuard(self._frames.rate_hz, self._frames.rate_hz // 100,
                                  min_speech_dbfs)
        self._margin_db = margin_db
        self._smooth = _Hysteresis(window, on_frames, off_frames)

    def __call__(self, frame: bytes, rate_hz: int) -> bool:
        self._rate.check(rate_hz, frame)
        for chunk in self._frames(frame):
            self._guard.update(chunk)
            raw = bool(self._vad.is_speech(_to_pcm16(chunk), self._frames.rate_hz))
            candidate = raw and self._guard.snr_db >= self._margin_db
            self._smooth.update(candidate, self._guard.loud)
        return self._smooth.active


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

    def __init__(self, rate_hz: int, *, on_prob: float = 0.5, off_prob: float = 0.35,
                 min_speech_dbfs: float | None = DEFAULT_MIN_SPEECH_DBFS,
                 onset_snr_db: float | None = 6.0, confirm_frames: int = 8,
                 cooldown_frames: int = 30, trim_snr_db: float | None = 3.0,
                 trim_frames: int = 3, trim_prob: float = 0.8,
                 model_path: Path | None = None) -> None:
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
        self._guard = _LevelGuard(SILERO_RATE_HZ, SILERO_RATE_HZ // 100, min_speech_dbfs)
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
        elif (self._onset_snr_db is not None and self._cooldown == 0 and self._guard.loud
              and self._guard.snr_db >= self._onset_snr_db):
            self._mode = _TENTATIVE
            self._trial_frames = 0

    def __call__(self, frame: bytes, rate_hz: int) -> bool:
        self._rate.check(rate_hz, frame)
        for chunk in self._frames(frame):
            self._guard.update(chunk)
            self._feed(chunk)
            self._decide()
        return self._mode != _QUIET


def make_classifier(name: str, rate_hz: int, *, aggressiveness: int = 2,
                    min_speech_dbfs: float | None = DEFAULT_MIN_SPEECH_DBFS) -> SpeechClassifier:
    """A fresh classifier for one stream of frames at ``rate_hz``.

    ``aggressiveness`` is webrtcvad's mode (the silero backend ignores it);
    ``min_speech_dbfs=None`` turns the level guard off. Raises ValueError for an
    unknown name or an unusable rate, VadUnavailable when the backend's packages
    are missing.
    """
    if name == "webrtc":
        return WebrtcClassifier(rate_hz, aggressiveness=aggressiveness,
                                min_speech_dbfs=min_speech_dbfs)
    if name == "silero":
        return SileroClassifier(rate_hz, min_speech_dbfs=min_speech_dbfs)
    raise ValueError(f"unknown VAD backend {name!r}; choose one of {', '.join(VAD_BACKENDS)}")
