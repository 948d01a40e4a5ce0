"""LED patterns as pure functions of state and time.

``pattern(state, t_s, count, ...)`` returns the pixels to show; the caller decides
when to refresh. No clock here, so patterns are tested at chosen instants. The
same patterns serve a ring of APA102 pixels (3 or 12), a single RGB LED and a
single-colour LED (which shows the brightest channel: every state but idle
reaches half brightness at least part of the time, so an LED without PWM still
shows it, as a blink where a ring pulses).

Pixel ``i`` of ``count`` sits at ``360 * i / count`` degrees, the frame a
direction of arrival (``doa_deg``) is given in.

    idle       off, or a dim blue glow
    wake       a white flash fading into the listening blue (toward the talker)
    listening  blue; with a direction, brightest toward the talker
    thinking   a cyan pulse
    speaking   white breathing with the speaker's output level
    muted      red at the microphones (all pixels when their places are unknown)
    offline    a red twinkle, one pixel at a time
    fault      three red flashes, then a pause
    setup      a slow amber pulse
    volume     the level as a lit arc (a single LED: its brightness), shown briefly
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from device.state import State
from hw.ports import OFF, Rgb

BLUE = Rgb(0, 80, 255)
CYAN = Rgb(0, 200, 200)
WHITE = Rgb(255, 255, 255)
RED = Rgb(255, 0, 0)
IDLE_DIM = Rgb(0, 0, 8)
AMBER = Rgb(255, 120, 0)
GREEN = Rgb(0, 220, 60)

WAKE_FLASH_S = 0.3
"""How long the wake flash takes to fade into the listening colour."""
FAULT_CYCLE_S = 2.0
FAULT_FLASH_S = 0.2
FAULT_FLASHES = 3
TWINKLE_HZ = 4.0
LISTEN_FLOOR = 0.15
"""Brightness of the pixels facing away from the talker: the ring still reads as on."""
LEVEL_FLOOR_DBFS = -50.0
LEVEL_CEILING_DBFS = -10.0
"""Output levels mapped onto the speaking brightness: quieter is the floor, louder full."""
MUTED_LEVEL = 0.8


def _pulse(t_s: float, period_s: float, low: float = 0.15) -> float:
    """0..1 smooth pulse with the given period, never quite dark."""
    phase = (t_s % period_s) / period_s
    return low + (1 - low) * 0.5 * (1 - math.cos(2 * math.pi * phase))


def _all(colour: Rgb, count: int) -> list[Rgb]:
    return [colour] * count


def level_fraction(level: float) -> float:
    """An output RMS level (0..1 of full scale) as 0..1 on a dB scale."""
    if level <= 0:
        return 0.0
    dbfs = 20 * math.log10(level)
    span = LEVEL_CEILING_DBFS - LEVEL_FLOOR_DBFS
    return min(1.0, max(0.0, (dbfs - LEVEL_FLOOR_DBFS) / span))


def pixel_angle_deg(index: int, count: int) -> float:
    return 360.0 * index / count


def toward(doa_deg: float | None, count: int) -> list[float]:
    """Per-pixel brightness factors: 1 at the pixel facing ``doa_deg``, falling off
    with the angle to it; all 1 without a direction or on fewer than three pixels."""
    if doa_deg is None or count < 3:
        return [1.0] * count
    factors = []
    for i in range(count):
        off_deg = abs((pixel_angle_deg(i, count) - doa_deg + 180.0) % 360.0 - 180.0)
        factors.append(max(LISTEN_FLOOR, math.cos(math.radians(off_deg) / 2) ** 8))
    return factors


def _listening(count: int, doa_deg: float | None) -> list[Rgb]:
    return [BLUE.scaled(f) for f in toward(doa_deg, count)]


def _wake(age_s: float, count: int, doa_deg: float | None) -> list[Rgb]:
    flash = max(0.0, 1.0 - age_s / WAKE_FLASH_S)
    return [_blend(BLUE.scaled(f), WHITE, flash) for f in toward(doa_deg, count)]


def _blend(a: Rgb, b: Rgb, weight_b: float) -> Rgb:
    w = min(1.0, max(0.0, weight_b))
    return Rgb(
        *(round(x * (1 - w) + y * w) for x, y in zip((a.r, a.g, a.b), (b.r, b.g, b.b), strict=True))
    )


def _muted(count: int, mic_pixels: Sequence[int]) -> list[Rgb]:
    lit = RED.scaled(MUTED_LEVEL)
    places = [i for i in mic_pixels if 0 <= i < count]
    if count < 3 or not places:
        return _all(lit, count)
    return [lit if i in places else OFF for i in range(count)]


def _speaking(t_s: float, count: int, level: float) -> list[Rgb]:
    # Follows the output level; without sound it still breathes slowly.
    breath = _pulse(t_s, 2.0, low=0.0)
    brightness = 0.35 + 0.65 * max(level_fraction(level), 0.3 * breath)
    return _all(WHITE.scaled(brightness), count)


def _offline(t_s: float, count: int) -> list[Rgb]:
    if count < 3:  # a single LED blinks instead of twinkling
        on = (t_s * TWINKLE_HZ / 2) % 1.0 < 0.25
        return _all(RED.scaled(0.6) if on else OFF, count)
    lit = int(t_s * TWINKLE_HZ) % count
    return [RED.scaled(0.6) if i == lit else OFF for i in range(count)]


def _fault(age_s: float, count: int) -> list[Rgb]:
    phase = age_s % FAULT_CYCLE_S
    on = phase < 2 * FAULT_FLASH_S * FAULT_FLASHES and (phase % (2 * FAULT_FLASH_S)) < FAULT_FLASH_S
    return _all(RED if on else OFF, count)


def pattern(
    state: State,
    t_s: float,
    count: int,
    *,
    entered_s: float = 0.0,
    level: float = 0.0,
    doa_deg: float | None = None,
    mic_pixels: Sequence[int] = (),
    idle_glow: bool = True,
) -> list[Rgb]:
    """What ``count`` LEDs show in ``state`` at time ``t_s`` (seconds, any origin).

    ``entered_s`` is when the state was entered (same clock): the wake flash and the
    fault flashes count from it. ``level`` is the speaker's output RMS (0..1),
    ``doa_deg`` the talker's direction if known, ``mic_pixels`` the pixels next to
    the microphones, ``idle_glow`` False keeps the LEDs off while idle.
    """
    age_s = max(0.0, t_s - entered_s)
    if state is State.IDLE:
        return _all(IDLE_DIM if idle_glow else OFF, count)
    if state is State.WAKE:
        return _wake(age_s, count, doa_deg)
    if state is State.LISTENING:
        return _listening(count, doa_deg)
    if state is State.THINKING:
        return _all(CYAN.scaled(_pulse(t_s, 1.0)), count)
    if state is State.SPEAKING:
        return _speaking(t_s, count, level)
    if state is State.MUTED:
        return _muted(count, mic_pixels)
    if state is State.SETUP:
        return _all(AMBER.scaled(_pulse(t_s, 3.0)), count)
    if state is State.OFFLINE:
        return _offline(t_s, count)
    return _fault(age_s, count)


def volume_pixels(percent: int, count: int) -> list[Rgb]:
    """The volume as an arc of ``round(percent * count / 100)`` lit pixels (at least
    one above 0); a ring of fewer than three shows it as brightness."""
    fraction = max(0, min(100, percent)) / 100.0
    if count < 3:
        return _all(GREEN.scaled(fraction), count)
    lit = max(1, round(fraction * count)) if fraction > 0 else 0
    return [GREEN if i < lit else OFF for i in range(count)]


def scaled(pixels: Sequence[Rgb], brightness: float) -> list[Rgb]:
    """Every pixel dimmed by ``brightness`` (0..1), the installer's limit."""
    if brightness >= 1.0:
        return list(pixels)
    return [p.scaled(brightness) for p in pixels]
