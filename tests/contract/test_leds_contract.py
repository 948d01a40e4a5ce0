"""One contract for every Leds adapter: the shipped fake and the real drivers.

Real drivers run on gpiozero's MockFactory (PWM pins where PWM is used) and on a
recording SPI transport, so what the hardware would show is read back from pin
states and SPI bytes. ``Rig.levels`` is that readback, 0..1 per channel or pin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from hw.apa102 import Apa102Ring, apa102_frame
from hw.gpio import GpioLeds
from hw.panel_fake import FakeLeds
from hw.ports import OFF, Leds, Rgb
from tests.unit.test_apa102 import RecordingSpi, decode_apa102

WHITE = Rgb(255, 255, 255)
AMBER = Rgb(255, 102, 0)


@dataclass
class Rig:
    leds: Leds
    levels: Callable[[], list[float]]
    """What the LEDs emit now, 0..1 per channel or pin."""


def _fake(factory: MockFactory) -> Rig:
    leds = FakeLeds(3)

    def levels() -> list[float]:
        if not leds.frames:
            return [0.0] * 9
        return [c / 255 for px in leds.frames[-1].pixels for c in (px.r, px.g, px.b)]

    return Rig(leds, levels)


def _gpio(pins: list[int], rgb: bool) -> Callable[[MockFactory], Rig]:
    def make(factory: MockFactory) -> Rig:
        leds = GpioLeds(pins, rgb=rgb, pin_factory=factory)
        return Rig(leds, lambda: [float(factory.pin(p).state) for p in pins])

    return make


def _ring(power_pin: int | None) -> Callable[[MockFactory], Rig]:
    def make(factory: MockFactory) -> Rig:
        spi = RecordingSpi()
        ring = Apa102Ring(
            4,
            spi_bus=0,
            spi_device=0,
            power_pin=power_pin,
            power_active_high=True,
            spi_factory=spi.factory,
            pin_factory=factory,
        )

        def levels() -> list[float]:
            if not spi.writes or (power_pin is not None and not factory.pin(power_pin).state):
                return [0.0] * 12
            return [c / 255 for px in decode_apa102(spi.frames[-1], 4) for c in (px.r, px.g, px.b)]

        return Rig(ring, levels)

    return make


RIGS: dict[str, tuple[Callable[[MockFactory], Rig], bool]] = {
    # name: (builder, whether the factory's pins do PWM)
    "fake": (_fake, False),
    "gpio-single-pwm": (_gpio([25], rgb=False), True),
    "gpio-single-on-off": (_gpio([25], rgb=False), False),
    "gpio-rgb-pwm": (_gpio([16, 20, 21], rgb=True), True),
    "gpio-two-rgb-on-off": (_gpio([16, 20, 21, 5, 6, 13], rgb=True), False),
    "apa102": (_ring(None), False),
    "apa102-power-pin": (_ring(5), False),
}
COUNTS = {
    "fake": 3,
    "gpio-single-pwm": 1,
    "gpio-single-on-off": 1,
    "gpio-rgb-pwm": 1,
    "gpio-two-rgb-on-off": 2,
    "apa102": 4,
    "apa102-power-pin": 4,
}


@contextmanager
def using(factory: MockFactory) -> Iterator[MockFactory]:
    """Make ``factory`` gpiozero's default for the block, then clear and restore."""
    previous = Device.pin_factory
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = previous


@pytest.fixture
def pwm_factory() -> Iterator[MockFactory]:
    with using(MockFactory(pin_class=MockPWMPin)) as factory:
        yield factory


@pytest.fixture
def plain_factory() -> Iterator[MockFactory]:
    with using(MockFactory(pin_class=MockPin)) as factory:
        yield factory


@pytest.fixture(params=list(RIGS))
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    name: str = request.param
    build, pwm = RIGS[name]
    with using(MockFactory(pin_class=MockPWMPin if pwm else MockPin)) as factory:
        rig = build(factory)
        assert rig.leds.count == COUNTS[name]
        yield rig
        rig.leds.close()


# ---------------------------------------------------------------- the contract


def test_is_a_leds_port(rig: Rig) -> None:
    assert isinstance(rig.leds, Leds)


def test_dark_before_anything_is_shown(rig: Rig) -> None:
    assert rig.levels() and max(rig.levels()) == 0.0


def test_show_lights_and_off_darkens(rig: Rig) -> None:
    rig.leds.show([WHITE] * rig.leds.count)
    assert rig.levels() == [1.0] * len(rig.levels())
    rig.leds.show([OFF] * rig.leds.count)
    assert max(rig.levels()) == 0.0


@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_number_of_pixels_is_a_value_error_and_changes_nothing(rig: Rig, delta: int) -> None:
    rig.leds.show([WHITE] * rig.leds.count)
    before = rig.levels()
    with pytest.raises(ValueError, match="pixels"):
        rig.leds.show([OFF] * (rig.leds.count + delta))
    assert rig.levels() == before


def test_channel_outside_a_byte_is_a_value_error(rig: Rig) -> None:
    with pytest.raises(ValueError, match=r"0\.\.255"):
        rig.leds.show([Rgb(0, 0, 300)] * rig.leds.count)


def test_close_turns_everything_off_and_is_idempotent(rig: Rig) -> None:
    rig.leds.show([AMBER] * rig.leds.count)
    assert max(rig.levels()) > 0.0
    rig.leds.close()
    assert max(rig.levels()) == 0.0
    rig.leds.close()
    assert max(rig.levels()) == 0.0


# ---------------------------------------------------------------- per implementation


def test_fake_records_each_change_once() -> None:
    leds = FakeLeds(2, clock=lambda: 1.0)
    leds.show([AMBER, OFF])
    leds.show([AMBER, OFF])
    leds.close()
    assert [f.pixels for f in leds.frames] == [(AMBER, OFF), (OFF, OFF)]


def test_single_pwm_led_shows_the_brightest_channel(pwm_factory: MockFactory) -> None:
    factory = pwm_factory
    leds = GpioLeds([25], rgb=False, pin_factory=factory)
    assert leds.pwm
    leds.show([Rgb(10, 51, 20)])
    assert factory.pin(25).state == pytest.approx(0.2)
    leds.close()
    assert factory.pin(25).state == 0


def test_on_off_led_lights_from_half_brightness(plain_factory: MockFactory) -> None:
    factory = plain_factory
    leds = GpioLeds([25], rgb=False, pin_factory=factory)
    assert not leds.pwm
    leds.show([Rgb(0, 0, 127)])
    assert factory.pin(25).state is False
    leds.show([Rgb(0, 0, 128)])
    assert factory.pin(25).state is True


def test_rgb_led_drives_red_green_blue_pins_in_order(pwm_factory: MockFactory) -> None:
    factory = pwm_factory
    leds = GpioLeds([16, 20, 21], rgb=True, pin_factory=factory)
    leds.show([AMBER])
    assert [factory.pin(p).state for p in (16, 20, 21)] == pytest.approx([1.0, 0.4, 0.0])


def test_ring_writes_the_exact_frame() -> None:
    spi = RecordingSpi()
    ring = Apa102Ring(
        3,
        spi_bus=0,
        spi_device=0,
        power_pin=None,
        power_active_high=True,
        brightness=16,
        spi_factory=spi.factory,
    )
    ring.show([AMBER, OFF, WHITE])
    ring.close()
    assert spi.frames == [
        bytes([0, 0, 0, 0, 0xF0, 0, 102, 255, 0xF0, 0, 0, 0, 0xF0, 255, 255, 255]) + b"\xff" * 4,
        apa102_frame([OFF] * 3, 16),
    ]
