"""APA102 LED rings over SPI (ReSpeaker 2-mic, 4-mic and 6-mic HATs).

APA102 pixels are a clocked shift register: no timing to meet, so plain SPI
writes from the event loop drive them, and a frame is just bytes. Building the
frame is a pure function so it can be checked byte for byte without hardware.

The SPI bus is reached through ``spidev`` (the ``pi`` extra). It is imported
only when a ring is opened, so machines without it can still import this
module, build frames and run the tests with an injected transport.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from hw.ports import OFF, HardwareError, Rgb

MAX_BRIGHTNESS = 31
"""The global brightness field is 5 bits wide."""

SPI_CHUNK_BYTES = 4096
"""spidev's default buffer size: ``writebytes`` refuses longer lists."""

_START_FRAME = bytes(4)
_LED_MARKER = 0b1110_0000


def apa102_frame(pixels: Sequence[Rgb], brightness: int = MAX_BRIGHTNESS) -> bytes:
    """The SPI bytes that make an APA102 chain show ``pixels``.

    Start frame of four 0x00 bytes, then per pixel ``0b111bbbbb`` (global
    brightness ``bbbbb``), blue, green, red, then an end frame of 0xFF bytes.

    The end frame is there for the clock, not the data: every pixel passes the
    data on to the next one half a clock cycle late, so the last pixel of ``n``
    only latches its colour after ``n / 2`` more clock edges, i.e. ``n / 16``
    bytes. The end frame is ``max(4, ceil(n / 16))`` bytes, which is also the
    32-bit end frame of the datasheet for short chains.
    """
    if isinstance(brightness, bool) or not 0 <= brightness <= MAX_BRIGHTNESS:
        raise ValueError(f"brightness must be 0..{MAX_BRIGHTNESS}, got {brightness!r}")
    frame = bytearray(_START_FRAME)
    marker = _LED_MARKER | brightness
    for px in pixels:  # Rgb guarantees 0..255 per channel
        frame.append(marker)
        frame.extend((px.b, px.g, px.r))
    frame.extend(b"\xff" * max(4, math.ceil(len(pixels) / 16)))
    return bytes(frame)


class SpiTransport(Protocol):
    """The part of ``spidev.SpiDev`` the ring uses: an opened, configured bus."""

    def writebytes(self, data: list[int]) -> Any: ...

    def close(self) -> Any: ...


SpiFactory = Callable[[int, int, int], SpiTransport]
"""Opens ``(bus, device, max_speed_hz)``; raises HardwareError when it cannot."""


def _spi_path(bus: int, device: int) -> str:
    return f"/dev/spidev{bus}.{device}"


def open_spidev(bus: int, device: int, max_speed_hz: int) -> SpiTransport:
    """Open ``/dev/spidev<bus>.<device>`` with ``spidev`` in SPI mode 0."""
    path = _spi_path(bus, device)
    try:
        spidev = importlib.import_module("spidev")  # only on a Pi: the `pi` extra
    except ImportError as exc:
        raise HardwareError(
            f"LED ring on {path}: the spidev module is missing; install the pi extra "
            "(pip install 'edgevoice[pi]')"
        ) from exc
    spi = spidev.SpiDev()
    try:
        spi.open(bus, device)
    except PermissionError as exc:
        raise HardwareError(
            f"LED ring on {path}: permission denied ({exc}); run the service as a user "
            "in the 'spi' group"
        ) from exc
    except OSError as exc:
        raise HardwareError(
            f"LED ring on {path}: cannot open it ({exc}); enable SPI with "
            "`sudo raspi-config nonint do_spi 0` or `dtparam=spi=on` in "
            "/boot/firmware/config.txt, then reboot"
        ) from exc
    try:
        spi.max_speed_hz = max_speed_hz
        spi.mode = 0
    except (OSError, ValueError, TypeError) as exc:
        spi.close()
        raise HardwareError(f"LED ring on {path}: cannot configure the bus ({exc})") from exc
    transport: SpiTransport = spi
    return transport


class Apa102Ring:
    """A chain of ``count`` APA102 pixels on one SPI bus, with an optional power pin.

    Some HATs (the ReSpeaker 4-mic) gate the ring's supply with a GPIO. It is
    switched on just before the first frame, not when the ring is opened: a
    Pi Zero can brown out and reset when the ring powers up, and doing that at
    the first frame rather than during start-up keeps the reset, if it
    happens, next to the log line that announced the ring. Pixels hold random
    colours after power-up, which the first frame overwrites at once.

    Identical consecutive frames are written once: the daemon refreshes the
    LEDs on a timer and most refreshes change nothing.
    """

    def __init__(
        self,
        count: int,
        *,
        spi_bus: int,
        spi_device: int,
        power_pin: int | None,
        power_active_high: bool,
        brightness: int = MAX_BRIGHTNESS,
        spi_factory: SpiFactory | None = None,
        pin_factory: object | None = None,
        max_speed_hz: int = 8_000_000,
    ) -> None:
        if count < 1:
            raise ValueError(f"an LED ring needs at least one pixel, got {count}")
        apa102_frame([], brightness)  # validates brightness before anything is opened
        self._count = count
        self._brightness = brightness
        self._path = _spi_path(spi_bus, spi_device)
        self._power: Any = None
        self._powered = False
        self._last: bytes | None = None
        self._closed = False
        if power_pin is not None:
            self._power = _open_power_pin(power_pin, power_active_high, pin_factory)
        try:
            self._spi = (spi_factory or open_spidev)(spi_bus, spi_device, max_speed_hz)
        except BaseException:
            if self._power is not None:
                self._power.close()
            raise

    @property
    def count(self) -> int:
        return self._count

    @property
    def powered(self) -> bool:
        """True while the power pin (if any) supplies the ring."""
        return self._powered

    def show(self, pixels: Sequence[Rgb]) -> None:
        """Write one frame; ignored once closed (a refresh may race the shutdown)."""
        if len(pixels) != self._count:
            raise ValueError(f"expected {self._count} pixels, got {len(pixels)}")
        frame = apa102_frame(pixels, self._brightness)
        if self._closed or frame == self._last:
            return
        if self._power is not None and not self._powered:
            self._power.on()
            self._powered = True
        self._write(frame)
        self._last = frame

    def close(self) -> None:
        """All pixels off, then the ring's power off, then release the bus and pin."""
        if self._closed:
            return
        self._closed = True
        off = self._off_frame()
        try:
            # Unpowered pixels are dark already; any other ring may still show
            # what an earlier run left on it.
            if (self._power is None or self._powered) and self._last != off:
                self._write(off)
        finally:
            try:
                if self._power is not None:
                    self._power.off()
                    self._powered = False
                    self._power.close()
            finally:
                self._spi.close()

    def _off_frame(self) -> bytes:
        return apa102_frame([OFF] * self._count, self._brightness)

    def _write(self, frame: bytes) -> None:
        try:
            for start in range(0, len(frame), SPI_CHUNK_BYTES):
                self._spi.writebytes(list(frame[start : start + SPI_CHUNK_BYTES]))
        except OSError as exc:
            raise HardwareError(f"LED ring on {self._path}: SPI write failed ({exc})") from exc


def _open_power_pin(pin: int, active_high: bool, pin_factory: object | None) -> Any:
    """The ring's supply switch, off until the first frame."""
    from gpiozero import DigitalOutputDevice  # gpiozero is in the `hw` extra

    from hw.gpio import pin_open_error

    try:
        return DigitalOutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )
    except Exception as exc:  # every backend fails differently; all mean "cannot open"
        raise pin_open_error("LED ring power pin", pin, exc) from exc
