"""Earcons: the short sounds that say what the speaker just did, made by the program.

No sound files: each earcon is a few notes, each note a sine with two soft
harmonics under an envelope that rises from exactly 0 and falls back to exactly
0, so no earcon starts or ends with a click. They are kept short (under 400 ms)
so they never hold up a conversation, and they are pitched in two registers:
rising notes for "on" (wake, unmute), falling ones for "off" (end of listening,
mute, offline), a low repeated note for an error.

Pure: ``render`` returns float samples in [-1, 1]; ``pcm`` scales them to the
playback volume as int16. The daemon mixes them over the reply (see
``PlaybackBuffer.play_over``), so they reach the DAC and the echo reference
but are never counted as reply audio.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float64]

PEAK = 0.35
"""Peak level of every earcon at full volume (about -9 dBFS): audible over a quiet
room, well under the reply's speech."""
ATTACK_MS = 6.0
"""Rise from silence: long enough not to click, short enough to sound struck."""
RELEASE_MS = 25.0
"""Fall to silence at a note's end."""
DECAY_PER_S = 9.0
"""Exponential decay rate between attack and release: a bell-like fade."""
PARTIALS: tuple[tuple[int, float], ...] = ((1, 1.0), (2, 0.3), (3, 0.1))
"""(harmonic, relative amplitude): a soft, round timbre whose strongest
component is the note itself."""


@dataclass(frozen=True)
class Note:
    """One note of an earcon; times in ms from the earcon's start."""

    freq_hz: float
    start_ms: float
    length_ms: float
    level: float = 1.0


EARCONS: Mapping[str, tuple[Note, ...]] = MappingProxyType({
    # G5 then C6, rising: "I am listening".
    "wake": (Note(784.0, 0.0, 120.0), Note(1046.5, 90.0, 170.0, 0.9)),
    # C6 then G5, falling: "I stopped listening".
    "listening_end": (Note(1046.5, 0.0, 100.0, 0.8), Note(784.0, 80.0, 150.0, 0.8)),
    # C5 then G4, low and falling: the microphone is off.
    "mute": (Note(523.25, 0.0, 130.0), Note(392.0, 110.0, 210.0)),
    # G4 then C5, low and rising: the microphone is on again.
    "unmute": (Note(392.0, 0.0, 130.0), Note(523.25, 110.0, 210.0)),
    # Two low E-flats: something needs a person.
    "error": (Note(311.13, 0.0, 140.0), Note(311.13, 190.0, 170.0)),
    # E5, C5, G4, descending: the connection is gone.
    "offline": (Note(659.25, 0.0, 110.0, 0.8), Note(523.25, 95.0, 110.0, 0.8),
                Note(392.0, 190.0, 170.0, 0.8)),
    # One short A5 tick, played at the new volume.
    "volume": (Note(880.0, 0.0, 90.0),),
})  # fmt: skip

EARCON_NAMES: tuple[str, ...] = tuple(EARCONS)


def envelope(length: int, rate_hz: int) -> Samples:
    """A note's envelope: raised-cosine attack from 0, exponential decay, raised-cosine
    release to 0. Both ends are exactly 0, so the note starts and ends without a click."""
    if length <= 1:
        return np.zeros(max(length, 0))
    t_s = np.arange(length) / rate_hz
    env = np.exp(-DECAY_PER_S * t_s)
    attack = min(length // 2, max(2, round(ATTACK_MS * rate_hz / 1000)))
    release = min(length - attack, max(2, round(RELEASE_MS * rate_hz / 1000)))
    env[:attack] *= 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, attack))
    env[length - release :] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, math.pi, release))
    return env


def _note(note: Note, rate_hz: int) -> Samples:
    n = round(note.length_ms * rate_hz / 1000)
    t_s = np.arange(n) / rate_hz
    tone = np.zeros(n)
    for harmonic, amplitude in PARTIALS:
        freq_hz = note.freq_hz * harmonic
        if freq_hz < rate_hz / 2:  # a partial above Nyquist would fold back as a false note
            tone += amplitude * np.sin(2 * math.pi * freq_hz * t_s)
    return note.level * tone * envelope(n, rate_hz)


@functools.lru_cache(maxsize=64)
def render(name: str, rate_hz: int) -> Samples:
    """The earcon ``name`` at ``rate_hz``, peaking at ``PEAK``; read-only (cached)."""
    notes = EARCONS[name]
    end_ms = max(note.start_ms + note.length_ms for note in notes)
    out = np.zeros(round(end_ms * rate_hz / 1000))
    for note in notes:
        start = round(note.start_ms * rate_hz / 1000)
        samples = _note(note, rate_hz)
        out[start : start + len(samples)] += samples
    peak = float(np.abs(out).max())
    if peak > 0:
        out *= PEAK / peak
    out.setflags(write=False)
    return out


def pcm(name: str, rate_hz: int, gain: float) -> npt.NDArray[np.int16]:
    """The earcon as int16 PCM scaled by the playback ``gain`` (the volume)."""
    scaled = render(name, rate_hz) * (max(0.0, min(1.0, gain)) * 32767.0)
    return np.round(scaled).astype(np.int16)


def duration_ms(name: str) -> float:
    """How long the earcon lasts."""
    return max(note.start_ms + note.length_ms for note in EARCONS[name])
