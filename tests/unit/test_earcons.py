"""Earcons are short, click-free, at the designed pitches, and follow the volume."""

from __future__ import annotations

import numpy as np
import pytest

from device.ui import earcons
from device.ui.earcons import EARCON_NAMES, EARCONS, PEAK, duration_ms, envelope, pcm, render

RATES_HZ = (16000, 48000)


@pytest.mark.parametrize("name", EARCON_NAMES)
def test_every_earcon_is_short(name: str) -> None:
    assert 50 < duration_ms(name) < 400
    assert len(render(name, 16000)) == round(duration_ms(name) * 16)


@pytest.mark.parametrize("rate_hz", RATES_HZ)
@pytest.mark.parametrize("name", EARCON_NAMES)
def test_starts_and_ends_in_silence_without_a_click(name: str, rate_hz: int) -> None:
    samples = render(name, rate_hz)
    assert samples[0] == 0.0
    assert samples[-1] == 0.0
    # a click is a jump from silence: the first and last samples step up gently
    assert abs(samples[1]) < 0.002 * PEAK
    assert abs(samples[-2]) < 0.002 * PEAK
    ms = rate_hz // 1000
    assert np.abs(samples[:ms]).max() < 0.1 * PEAK
    assert np.abs(samples[-ms:]).max() < 0.1 * PEAK
    assert np.abs(samples).max() == pytest.approx(PEAK)


def test_the_envelope_rises_from_zero_and_falls_to_zero() -> None:
    env = envelope(4800, 48000)
    assert env[0] == 0.0 and env[-1] == 0.0
    peak = int(np.argmax(env))
    assert 0 < peak < len(env) // 4  # struck, then fading
    assert np.all(np.diff(env[: peak + 1]) >= 0)
    assert np.all(np.diff(env[peak:]) <= 0)
    assert envelope(1, 48000).tolist() == [0.0]


def _spectrum(samples: np.ndarray, rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
    n = 1 << 16  # zero-padded: fine frequency steps for short sounds
    magnitude = np.abs(np.fft.rfft(samples * np.hanning(len(samples)), n))
    return np.fft.rfftfreq(n, 1 / rate_hz), magnitude


def _solo_segments(name: str, rate_hz: int) -> list[tuple[float, np.ndarray]]:
    """(note frequency, the stretch of the earcon where that note plays alone)."""
    samples = render(name, rate_hz)
    notes = sorted(EARCONS[name], key=lambda n: n.start_ms)
    out = []
    for i, note in enumerate(notes):
        begin_ms = notes[i - 1].start_ms + notes[i - 1].length_ms if i else note.start_ms
        end_ms = notes[i + 1].start_ms if i + 1 < len(notes) else note.start_ms + note.length_ms
        out.append(
            (
                note.freq_hz,
                samples[round(begin_ms * rate_hz / 1000) : round(end_ms * rate_hz / 1000)],
            )
        )
    return out


@pytest.mark.parametrize("rate_hz", RATES_HZ)
@pytest.mark.parametrize("name", EARCON_NAMES)
def test_the_spectrum_peaks_at_the_designed_notes(name: str, rate_hz: int) -> None:
    for freq_hz, segment in _solo_segments(name, rate_hz):
        assert len(segment) > rate_hz // 50  # each note is heard alone for 20 ms or more
        freqs, magnitude = _spectrum(segment, rate_hz)
        strongest_hz = freqs[np.argmax(magnitude)]
        assert strongest_hz == pytest.approx(freq_hz, abs=10.0), name
    # over the whole earcon, nothing away from the notes and their harmonics is loud
    freqs, magnitude = _spectrum(render(name, rate_hz), rate_hz)
    designed = [n.freq_hz * h for n in EARCONS[name] for h, _ in earcons.PARTIALS]
    far = np.ones(len(freqs), bool)
    for f in designed:
        far &= np.abs(freqs - f) > 100.0
    assert magnitude[far].max() < 0.05 * magnitude.max()


def test_rising_and_falling_earcons_go_the_way_they_mean() -> None:
    def pitches(name: str) -> list[float]:
        return [n.freq_hz for n in sorted(EARCONS[name], key=lambda n: n.start_ms)]

    assert pitches("wake") == sorted(pitches("wake"))
    assert pitches("unmute") == sorted(pitches("unmute"))
    for name in ("listening_end", "mute", "offline"):
        assert pitches(name) == sorted(pitches(name), reverse=True)


def test_pcm_is_at_the_playback_volume() -> None:
    full = pcm("wake", 16000, 1.0)
    quiet = pcm("wake", 16000, 0.25)
    assert full.dtype == np.int16
    assert np.abs(full).max() == round(PEAK * 32767)
    assert np.abs(quiet).max() == pytest.approx(0.25 * PEAK * 32767, abs=1)
    assert not pcm("wake", 16000, 0.0).any()


def test_rendered_earcons_are_cached_and_read_only() -> None:
    a = render("volume", 16000)
    assert render("volume", 16000) is a
    with pytest.raises(ValueError):
        a[0] = 1.0
