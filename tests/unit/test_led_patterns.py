"""LED patterns as pure functions of state and time, on 1, 3 and 12 pixels."""

from __future__ import annotations

import numpy as np
import pytest

from device.state import State
from device.ui.leds import (
    BLUE,
    FAULT_CYCLE_S,
    GREEN,
    IDLE_DIM,
    RED,
    WHITE,
    level_fraction,
    pattern,
    scaled,
    toward,
    volume_pixels,
)
from hw.gpio import ON_OFF_THRESHOLD
from hw.ports import OFF, Rgb

COUNTS = (1, 3, 12)
TIMES_S = tuple(np.arange(0.0, 4.0, 0.01))


def brightness(pixel: Rgb) -> int:
    return max(pixel.r, pixel.g, pixel.b)


@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("state", list(State))
def test_every_state_gives_one_colour_per_pixel(state: State, count: int) -> None:
    for t_s in (0.0, 0.13, 1.0, 2.71, 1000.5):
        pixels = pattern(state, t_s, count, entered_s=0.0, level=0.1, doa_deg=45.0,
                         mic_pixels=(0, 2))  # fmt: skip
        assert len(pixels) == count
        assert all(isinstance(p, Rgb) for p in pixels)


@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("state", [s for s in State if s is not State.IDLE])
def test_every_state_but_idle_shows_on_an_led_without_pwm(state: State, count: int) -> None:
    """A single-colour LED without PWM lights from half brightness up: each state must
    reach that at some moment, or it would look like idle."""
    peak = max(brightness(p) for t in TIMES_S for p in pattern(state, t, count))
    assert peak >= ON_OFF_THRESHOLD


@pytest.mark.parametrize("count", COUNTS)
def test_idle_glows_dimly_or_stays_off(count: int) -> None:
    assert pattern(State.IDLE, 5.0, count) == [IDLE_DIM] * count
    assert brightness(IDLE_DIM) < ON_OFF_THRESHOLD
    assert pattern(State.IDLE, 5.0, count, idle_glow=False) == [OFF] * count


@pytest.mark.parametrize("count", COUNTS)
def test_wake_flashes_white_then_settles_into_listening_blue(count: int) -> None:
    assert pattern(State.WAKE, 10.0, count, entered_s=10.0) == [WHITE] * count
    middle = pattern(State.WAKE, 10.15, count, entered_s=10.0)[0]
    assert middle not in (WHITE, BLUE) and middle.b > middle.r
    assert pattern(State.WAKE, 10.5, count, entered_s=10.0) == pattern(State.LISTENING, 10.5, count)


def test_listening_lights_toward_the_talker_on_a_ring() -> None:
    pixels = pattern(State.LISTENING, 0.0, 12, doa_deg=90.0)  # pixel 3 sits at 90 degrees
    levels = [brightness(p) for p in pixels]
    assert levels.index(max(levels)) == 3
    assert pixels[3] == BLUE
    assert levels[9] < levels[2] < levels[3]  # opposite is dimmest, neighbours between
    assert min(levels) > 0  # the whole ring still reads as listening
    factors = toward(359.0, 12)  # the angle wraps: 359 degrees faces pixel 0
    assert factors.index(max(factors)) == 0


@pytest.mark.parametrize("count", (1, 3, 12))
def test_listening_without_a_direction_lights_all_alike(count: int) -> None:
    assert pattern(State.LISTENING, 0.0, count) == [BLUE] * count
    if count < 3:
        assert pattern(State.LISTENING, 0.0, count, doa_deg=90.0) == [BLUE] * count


@pytest.mark.parametrize("count", COUNTS)
def test_thinking_pulses(count: int) -> None:
    levels = {brightness(pattern(State.THINKING, t, count)[0]) for t in TIMES_S[:100]}
    assert max(levels) > 2 * min(levels) > 0


@pytest.mark.parametrize("count", COUNTS)
def test_speaking_follows_the_output_level(count: int) -> None:
    quiet, loud = 10 ** (-45 / 20), 10 ** (-12 / 20)
    at = 0.0  # the slow breath at its lowest
    dim = brightness(pattern(State.SPEAKING, at, count, level=quiet)[0])
    bright = brightness(pattern(State.SPEAKING, at, count, level=loud)[0])
    assert bright > 1.5 * dim > 0
    # without sound it still breathes
    silent = {brightness(pattern(State.SPEAKING, t, count)[0]) for t in TIMES_S[:200]}
    assert max(silent) > min(silent) > 0
    assert level_fraction(0.0) == 0.0 and level_fraction(1.0) == 1.0


def test_muted_lights_red_at_the_microphones() -> None:
    ring = pattern(State.MUTED, 0.0, 12, mic_pixels=(0, 3, 6, 9))
    lit = [i for i, p in enumerate(ring) if p != OFF]
    assert lit == [0, 3, 6, 9]
    assert all(ring[i].r > 128 and ring[i].g == ring[i].b == 0 for i in lit)
    # unknown places, or fewer pixels than that makes sense for: all red
    assert all(p.r > 128 and p.g == 0 for p in pattern(State.MUTED, 0.0, 12))
    assert all(p.r > 128 for p in pattern(State.MUTED, 0.0, 1, mic_pixels=(0, 3)))
    assert [p != OFF for p in pattern(State.MUTED, 0.0, 3, mic_pixels=(0, 2))] == [
        True, False, True]  # fmt: skip


def test_offline_twinkles_one_pixel_at_a_time_round_the_ring() -> None:
    seen = set()
    for t in TIMES_S:
        pixels = pattern(State.OFFLINE, t, 12)
        lit = [i for i, p in enumerate(pixels) if p != OFF]
        assert len(lit) == 1 and pixels[lit[0]].r > 0 and pixels[lit[0]].g == 0
        seen.add(lit[0])
    assert seen == set(range(12))
    single = {pattern(State.OFFLINE, t, 1)[0] for t in TIMES_S}
    assert OFF in single and len(single) == 2  # a single LED blinks red


@pytest.mark.parametrize("count", COUNTS)
def test_fault_is_three_red_flashes_then_a_pause(count: int) -> None:
    entered = 7.3
    on = [pattern(State.FAULT, entered + t, count, entered_s=entered)[0] == RED
          for t in np.arange(0.0, FAULT_CYCLE_S, 0.01)]  # fmt: skip
    flashes = sum(1 for a, b in zip([False, *on], on, strict=False) if b and not a)
    assert on[0]  # the first flash starts as the fault begins
    assert flashes == 3
    assert not any(on[-50:])  # then a pause


@pytest.mark.parametrize("count", COUNTS)
def test_setup_is_a_slow_amber_pulse(count: int) -> None:
    pixels = [pattern(State.SETUP, t, count)[0] for t in TIMES_S]
    assert all(p.r > p.g > p.b == 0 for p in pixels if p != OFF)
    assert len({brightness(p) for p in pixels}) > 10


def test_volume_shows_as_an_arc_on_a_ring_and_brightness_on_one_led() -> None:
    assert volume_pixels(0, 12) == [OFF] * 12
    assert volume_pixels(50, 12) == [GREEN] * 6 + [OFF] * 6
    assert volume_pixels(100, 12) == [GREEN] * 12
    assert volume_pixels(3, 12) == [GREEN] + [OFF] * 11  # above 0 always shows something
    assert volume_pixels(70, 3) == [GREEN] * 2 + [OFF]
    assert volume_pixels(80, 1)[0] == GREEN.scaled(0.8)
    assert brightness(volume_pixels(30, 1)[0]) < brightness(volume_pixels(90, 1)[0])


def test_brightness_limit_scales_every_pixel() -> None:
    pixels = pattern(State.LISTENING, 0.0, 3)
    assert scaled(pixels, 1.0) == pixels
    assert scaled(pixels, 0.5) == [BLUE.scaled(0.5)] * 3
