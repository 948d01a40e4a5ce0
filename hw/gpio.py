"""Buttons and plain LEDs on the Pi's GPIO header, through gpiozero.

gpiozero picks its backend (lgpio, RPi.GPIO, ...) itself; ``pin_factory`` is
passed through so tests can hand in a ``MockFactory``. Every failure to open a pin
becomes a ``HardwareError`` that names the part and the pin, because the
backends' own messages ("Failed to add edge detection", "GPIO busy") do not
say which button of which board they were about.

``build_leds`` and ``build_buttons`` turn a board profile into adapters plus
notes for the start-up log, so the log says what each part was driven with,
or why it stays dark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from gpiozero import LED, PWMLED, Button
from gpiozero.exc import BadPinFactory, PinPWMUnsupported

from hw.apa102 import Apa102Ring, SpiFactory
from hw.boards import ButtonProfile, LedProfile
from hw.factory import NullButtons, NullLeds
from hw.ports import ButtonEvent, ButtonHandler, Buttons, HardwareError, Leds, Rgb

log = logging.getLogger(__name__)

PI_EXTRA = "pip install 'edgevoice[pi]'"
ON_OFF_THRESHOLD = 128
"""Without PWM a channel is lit from half brightness up: dim glows stay dark and
pulses blink, rather than every non-black colour looking the same."""


def pin_open_error(part: str, pin: int, exc: BaseException) -> HardwareError:
    """A HardwareError for a pin that would not open, with what to try."""
    cause = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, BadPinFactory):
        hint = (
            f"no GPIO backend could be loaded; on a Pi 5 install lgpio ({PI_EXTRA}), "
            "on other Pis lgpio or RPi.GPIO"
        )
    else:
        hint = (
            "is another process using the pin (another voice daemon, a HAT driver)? "
            f"On a Pi 5 install lgpio ({PI_EXTRA})"
        )
    return HardwareError(f"{part} on GPIO{pin} cannot be opened ({cause}); {hint}")


def _close_all(devices: Sequence[Any]) -> None:
    """Close every device, then raise the first failure: release all that can be."""
    first: BaseException | None = None
    for device in devices:
        try:
            device.close()
        except Exception as exc:
            first = first or exc
    if first is not None:
        raise first


class GpioButtons:
    """Push buttons on GPIO pins, one gpiozero ``Button`` each.

    The handler is called on gpiozero's own threads (the backend's edge
    thread), never on the event loop: it must hand the event over, e.g. with
    ``loop.call_soon_threadsafe``, and return quickly. An exception from it is
    logged and dropped, because raising into the backend's thread can stop all
    further edges from being delivered.
    """

    def __init__(
        self,
        buttons: Sequence[ButtonProfile],
        *,
        pin_factory: object | None = None,
        clock: Callable[[], float] = time.monotonic,
        bounce_s: float | None = 0.02,
    ) -> None:
        self._names = tuple(b.name for b in buttons)
        self._clock = clock
        self._handler: ButtonHandler | None = None
        self._devices: list[Any] = []
        self._closed = False
        try:
            for profile in buttons:
                self._open(profile, pin_factory, bounce_s)
        except BaseException:
            self.close()
            raise

    def _open(
        self, profile: ButtonProfile, pin_factory: object | None, bounce_s: float | None
    ) -> None:
        part = f"button {profile.name!r}"
        try:
            device = Button(
                profile.pin,
                pull_up=profile.active_low,
                bounce_time=bounce_s,
                pin_factory=pin_factory,
            )
        except Exception as exc:  # every backend fails differently; all mean "cannot open"
            raise pin_open_error(part, profile.pin, exc) from exc
        self._devices.append(device)
        try:  # edge detection is set up here, where RPi.GPIO can refuse it
            device.when_pressed = partial(self._edge, profile.name, True)
            device.when_released = partial(self._edge, profile.name, False)
        except Exception as exc:
            raise pin_open_error(part, profile.pin, exc) from exc

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def set_handler(self, handler: ButtonHandler | None) -> None:
        """Deliver edges to ``handler`` from now on (None: drop them)."""
        self._handler = handler

    def _edge(self, name: str, pressed: bool) -> None:
        handler = self._handler  # read once: set_handler may run on another thread
        if handler is None:
            return
        try:
            handler(ButtonEvent(name, pressed, self._clock()))
        except Exception:
            log.exception("button handler failed on %s %s", name, "press" if pressed else "release")

    def close(self) -> None:
        """Stop delivering edges and release the pins; idempotent."""
        self._handler = None
        if self._closed:
            return
        self._closed = True
        devices, self._devices = self._devices, []
        _close_all(devices)


class GpioLeds:
    """LEDs wired straight to GPIO pins: single-colour (one pin each) or RGB (three).

    A single-colour LED shows the brightest channel of its pixel. With PWM the
    brightness is kept; backends without PWM get on/off (see
    ``ON_OFF_THRESHOLD``). Each pin is a gpiozero ``PWMLED`` or ``LED`` of its
    own rather than an ``RGBLED``, so a pin that fails to open releases the
    ones opened before it.
    """

    def __init__(
        self, pins: Sequence[int], *, rgb: bool, pin_factory: object | None = None
    ) -> None:
        per_led = 3 if rgb else 1
        if not pins or len(pins) % per_led:
            raise ValueError(f"{len(pins)} pins do not make whole {'RGB ' if rgb else ''}LEDs")
        self._rgb = rgb
        self._count = len(pins) // per_led
        self._devices: list[Any] = []
        self._pwm: list[bool] = []
        self._last: tuple[int, ...] | None = None
        self._closed = False
        try:
            for pin in pins:
                self._open(pin, pin_factory)
        except BaseException:
            self._closed = True
            _close_all(self._devices)
            raise

    def _open(self, pin: int, pin_factory: object | None) -> None:
        try:
            try:
                device, pwm = PWMLED(pin, pin_factory=pin_factory), True
            except PinPWMUnsupported:  # PWMLED releases the pin before raising
                device, pwm = LED(pin, pin_factory=pin_factory), False
        except Exception as exc:  # every backend fails differently; all mean "cannot open"
            raise pin_open_error("LED", pin, exc) from exc
        self._devices.append(device)
        self._pwm.append(pwm)

    @property
    def count(self) -> int:
        return self._count

    @property
    def pwm(self) -> bool:
        """True when every pin dims by PWM; False when some are only on or off."""
        return all(self._pwm)

    def show(self, pixels: Sequence[Rgb]) -> None:
        """Show ``pixels``; ignored once closed (a refresh may race the shutdown)."""
        if len(pixels) != self._count:
            raise ValueError(f"expected {self._count} pixels, got {len(pixels)}")
        levels: list[int] = []
        for px in pixels:  # Rgb guarantees 0..255 per channel
            channels = (px.r, px.g, px.b)
            levels.extend(channels if self._rgb else (max(channels),))
        if self._closed or tuple(levels) == self._last:
            return
        for device, pwm, level in zip(self._devices, self._pwm, levels, strict=True):
            device.value = level / 255 if pwm else int(level >= ON_OFF_THRESHOLD)
        self._last = tuple(levels)

    def close(self) -> None:
        """Turn every LED off and release the pins; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            for device in self._devices:
                device.off()
        finally:
            _close_all(self._devices)


# ---------------------------------------------------------------- builders


def build_leds(
    profile: LedProfile,
    pin_factory: object | None = None,
    *,
    spi_factory: SpiFactory | None = None,
) -> tuple[Leds, list[str]]:
    """The LED adapter for a board's LED profile, and notes for the start-up log."""
    chip = profile.chip
    if chip == "none":
        return NullLeds(), []
    if chip == "apa102":
        if profile.spi_bus is None or profile.spi_device is None:
            raise HardwareError("APA102 LED profile without spi_bus/spi_device")
        ring = Apa102Ring(
            profile.count,
            spi_bus=profile.spi_bus,
            spi_device=profile.spi_device,
            power_pin=profile.power_pin,
            power_active_high=profile.power_active_high,
            spi_factory=spi_factory,
            pin_factory=pin_factory,
        )
        note = (
            f"LEDs: {profile.count} APA102 pixels on "
            f"/dev/spidev{profile.spi_bus}.{profile.spi_device}"
        )
        if profile.power_pin is not None:
            level = "high" if profile.power_active_high else "low"
            note += (
                f", powered by GPIO{profile.power_pin} (active {level}); a Pi Zero that "
                "resets when the ring lights up needs a stronger power supply"
            )
        return ring, [note]
    if chip in ("gpio", "gpio_rgb"):
        rgb = chip == "gpio_rgb"
        leds = GpioLeds(profile.pins, rgb=rgb, pin_factory=pin_factory)
        pins = ", ".join(f"GPIO{p}" for p in profile.pins)
        note = f"LEDs: {profile.count} {'RGB ' if rgb else ''}LED(s) on {pins}"
        if not leds.pwm:
            note += " (on/off only: this GPIO backend has no PWM)"
        return leds, [note]
    missing = {
        "usb_hid": "the USB array's pixel ring over USB HID",
        "i2c": "the LED controller on I2C (AIY Voice Bonnet, Mycroft SJ201)",
    }.get(chip, f"LED chip {chip!r}")
    return NullLeds(max(profile.count, 1)), [
        f"LEDs ({chip}): {missing} has no driver yet: they stay dark"
    ]


def build_buttons(
    profiles: Sequence[ButtonProfile],
    pin_factory: object | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Buttons, list[str]]:
    """The button adapter for a board's buttons, and notes for the start-up log."""
    if not profiles:
        return NullButtons(), []
    buttons = GpioButtons(profiles, pin_factory=pin_factory, clock=clock)
    listed = ", ".join(
        f"{b.name} on GPIO{b.pin} (active {'low' if b.active_low else 'high'})" for b in profiles
    )
    return buttons, [f"buttons: {listed}"]


__all__ = ["GpioButtons", "GpioLeds", "build_buttons", "build_leds", "pin_open_error"]
