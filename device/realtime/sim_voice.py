"""Reply audio for the simulator: spoken by espeak-ng when present, else a beep pattern.

A reply that can be heard makes ``edgevoice demo`` convincing and lets end-to-end
tests check that real audio reached the speaker. espeak-ng is a separate program
that may be missing on a build machine, so a recognisable two-tone pattern stands
in for it. Synthesis blocks for a fraction of a second: callers run it in a thread
executor so the event loop keeps serving the socket.
"""

from __future__ import annotations

import functools
import io
import logging
import shutil
import subprocess
import wave
from typing import Literal

import numpy as np
import soxr

OUTPUT_RATE_HZ = 24000
ESPEAK_WORDS_PER_MINUTE = 175
ESPEAK_TIMEOUT_S = 30.0
TONE_LEVEL_DBFS = -12.0
TONE_HIGH_HZ = 880.0
TONE_LOW_HZ = 660.0
TONE_BEEP_MS = 180
TONE_GAP_MS = 70
TONE_PAIRS = 3
TONE_FADE_MS = 8

VoiceEngine = Literal["auto", "espeak", "tone"]

_log = logging.getLogger(__name__)


def espeak_path() -> str | None:
    """Where espeak-ng is installed, or None when it is not on PATH."""
    return shutil.which("espeak-ng")


def synthesize(text: str, engine: VoiceEngine, speed: float = 1.0) -> bytes:
    """PCM16 mono 24 kHz audio speaking ``text`` (or the tone pattern)."""
    if engine == "tone" or (engine == "auto" and espeak_path() is None):
        return tone_pattern(speed)
    try:
        return espeak_pcm(text, speed)
    except (OSError, subprocess.SubprocessError, wave.Error, EOFError) as exc:
        if engine == "espeak":
            raise
        _log.warning("espeak-ng failed (%s); replying with the tone pattern", exc)
        return tone_pattern(speed)


@functools.lru_cache(maxsize=64)
def espeak_pcm(text: str, speed: float = 1.0) -> bytes:
    """Speak ``text`` with espeak-ng and resample its 22.05 kHz WAV to 24 kHz.

    The text goes in on stdin so nothing in it can be read as an option.
    Cached because the simulator tends to say the same sentence many times.
    """
    rate_wpm = max(80, round(ESPEAK_WORDS_PER_MINUTE * speed))
    program = espeak_path() or "espeak-ng"
    done = subprocess.run(
        [program, "--stdout", "-v", "en-us", "-s", str(rate_wpm)],
        input=text.encode("utf-8"),
        capture_output=True,
        check=True,
        timeout=ESPEAK_TIMEOUT_S,
    )
    return wav_to_pcm24k(done.stdout)


def wav_to_pcm24k(wav_bytes: bytes) -> bytes:
    """Mono PCM16 at 24 kHz from a 16-bit WAV of any rate.

    espeak-ng writes its WAV to a pipe with placeholder sizes in the header;
    ``readframes`` still returns exactly the frames present.
    """
    with wave.open(io.BytesIO(wav_bytes), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise wave.Error(f"expected 16-bit samples, got {8 * wav.getsampwidth()}-bit")
        channels = wav.getnchannels()
        rate_hz = wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    samples = np.frombuffer(raw[: len(raw) - len(raw) % (2 * channels)], dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate_hz != OUTPUT_RATE_HZ and samples.size:
        resampled = soxr.resample(samples.astype(np.float32) / 32768.0, rate_hz, OUTPUT_RATE_HZ)
        samples = np.clip(np.round(np.asarray(resampled) * 32768.0), -32768, 32767).astype(np.int16)
    return samples.astype("<i2").tobytes()


@functools.lru_cache(maxsize=8)
def tone_pattern(speed: float = 1.0) -> bytes:
    """Three high-low beep pairs at -12 dBFS, about 1.5 s: clearly not speech, clearly on.

    ``speed`` (audio.output.speed) shortens or lengthens the beeps and gaps alike."""
    amplitude = 32767.0 * 10.0 ** (TONE_LEVEL_DBFS / 20.0)
    beep_n = round(OUTPUT_RATE_HZ * TONE_BEEP_MS / 1000 / speed)
    gap = np.zeros(round(OUTPUT_RATE_HZ * TONE_GAP_MS / 1000 / speed))
    fade_n = OUTPUT_RATE_HZ * TONE_FADE_MS // 1000
    envelope = np.ones(beep_n)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade_n))
    envelope[:fade_n] = ramp
    envelope[-fade_n:] = ramp[::-1]
    t = np.arange(beep_n) / OUTPUT_RATE_HZ
    pieces: list[np.ndarray[tuple[int], np.dtype[np.float64]]] = []
    for _ in range(TONE_PAIRS):
        for freq_hz in (TONE_HIGH_HZ, TONE_LOW_HZ):
            pieces += [amplitude * envelope * np.sin(2 * np.pi * freq_hz * t), gap]
    return np.round(np.concatenate(pieces)).astype("<i2").tobytes()
