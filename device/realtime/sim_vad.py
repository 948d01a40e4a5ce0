"""Turn detection for the simulator, decided on the input timeline alone.

The service's VAD is a model; the simulator needs something deterministic that
behaves the same on a laptop, a Pi and a CI box, so it uses frame energy. Every
decision counts samples of the audio the client appended, never the wall clock,
which keeps tests on virtual time and makes a WAV produce the same events at any
streaming speed.

Threshold mapping: the session's ``threshold`` (0..1, higher = less sensitive)
becomes a level in dBFS, linearly from -70 dBFS at 0.0 to -20 dBFS at 1.0:
``level_dbfs = -70 + 50 * threshold``, so the default 0.5 means -45 dBFS. A 10 ms
frame is voiced when its RMS level reaches that. Speech starts after
``ONSET_FRAMES`` voiced frames in a row (a click is not a turn); its
``audio_start_ms`` is the first voiced frame minus ``prefix_padding_ms``. Speech
stops once ``silence_duration_ms`` of unvoiced frames have followed, and
``audio_end_ms`` is the end of that silence. ``semantic_vad`` uses the same
detector with 2000/1000/500 ms of silence for low/medium(auto)/high eagerness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

SAMPLE_RATE_HZ = 24000
FRAME_MS = 10
FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000
ONSET_FRAMES = 3
MIN_LEVEL_DBFS = -70.0
LEVEL_SPAN_DB = 50.0
SEMANTIC_SILENCE_MS = {"low": 2000, "medium": 1000, "auto": 1000, "high": 500}
SEMANTIC_PREFIX_PADDING_MS = 300
SEMANTIC_THRESHOLD = 0.5


def threshold_to_dbfs(threshold: float) -> float:
    """Map the session's 0..1 VAD threshold to a frame level in dBFS."""
    return MIN_LEVEL_DBFS + LEVEL_SPAN_DB * threshold


def frame_level_dbfs(frame: np.ndarray[Any, np.dtype[np.int16]]) -> float:
    """RMS level of one frame relative to full scale; digital silence is -inf."""
    rms = math.sqrt(float(np.mean(np.square(frame.astype(np.float64)))))
    return 20.0 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


@dataclass(frozen=True)
class VadSettings:
    """What the detector needs from ``audio.input.turn_detection``."""

    threshold_dbfs: float
    prefix_padding_ms: int
    silence_duration_ms: int

    @classmethod
    def from_turn_detection(cls, config: dict[str, Any]) -> VadSettings:
        if config["type"] == "semantic_vad":
            return cls(
                threshold_to_dbfs(SEMANTIC_THRESHOLD),
                SEMANTIC_PREFIX_PADDING_MS,
                SEMANTIC_SILENCE_MS[config["eagerness"]],
            )
        return cls(
            threshold_to_dbfs(config["threshold"]),
            config["prefix_padding_ms"],
            config["silence_duration_ms"],
        )


@dataclass(frozen=True)
class VadMark:
    """A turn boundary on the input timeline (milliseconds since the session began)."""

    kind: Literal["start", "stop"]
    at_ms: int


class EnergyVad:
    """Frame-energy speech detector over a continuous stream of PCM16 samples."""

    def __init__(self, settings: VadSettings, position_samples: int = 0) -> None:
        self.settings = settings
        self.in_speech = False
        self._carry = np.zeros(0, dtype=np.int16)
        self._frame_start = position_samples  # input sample index of the next frame
        self._voiced_run = 0
        self._silent_run = 0

    def reset(self) -> None:
        """Forget the current turn (after a manual commit or clear); keep the clock."""
        self.in_speech = False
        self._voiced_run = 0
        self._silent_run = 0

    def push(self, samples: np.ndarray[Any, np.dtype[np.int16]]) -> list[VadMark]:
        """Feed the next samples of the input timeline; return the boundaries found."""
        data = np.concatenate([self._carry, samples]) if self._carry.size else samples
        marks: list[VadMark] = []
        whole = data.size - data.size % FRAME_SAMPLES
        for offset in range(0, whole, FRAME_SAMPLES):
            mark = self._frame(data[offset : offset + FRAME_SAMPLES])
            if mark is not None:
                marks.append(mark)
        self._carry = data[whole:].copy()
        return marks

    def _frame(self, frame: np.ndarray[Any, np.dtype[np.int16]]) -> VadMark | None:
        voiced = frame_level_dbfs(frame) >= self.settings.threshold_dbfs
        start_ms = self._frame_start * 1000 // SAMPLE_RATE_HZ
        self._frame_start += FRAME_SAMPLES
        end_ms = start_ms + FRAME_MS
        if not self.in_speech:
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run < ONSET_FRAMES:
                return None
            self.in_speech = True
            self._silent_run = 0
            onset_ms = end_ms - ONSET_FRAMES * FRAME_MS
            return VadMark("start", max(0, onset_ms - self.settings.prefix_padding_ms))
        self._silent_run = 0 if voiced else self._silent_run + 1
        if self._silent_run * FRAME_MS < max(self.settings.silence_duration_ms, FRAME_MS):
            return None
        self.reset()
        return VadMark("stop", end_ms)
