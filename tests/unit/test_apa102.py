"""APA102 frames byte for byte, and the ring's SPI and power-pin behaviour.

The SPI bus is replaced by ``RecordingSpi`` (what ``spidev.SpiDev`` would be
handed); the power pin is a gpiozero mock pin.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from hw.apa102 import SPI_CHUNK_BYTES, Apa102Ring, apa102_frame, open_spidev
from hw.ports import OFF, HardwareError, Rgb

RED, GREEN, BLUE = Rgb(255, 0, 0), Rgb(0, 255, 0), Rgb(0, 0, 255)


class RecordingSpi:
    """Stands in for an opened ``spidev.SpiDev``: keeps every write."""

    def __init__(self) -> None:
        self.writes: list[list[int]] = []
        self.closed = False
        self.opened_with: tuple[int, int, int] | None = None

    def writebytes(self, data: list[int]) -> None:
        assert not self.closed, "write after close"
        assert all(isinstance(b, int) and 0 <= b <= 255 for b in data)
        self.writes.append(list(data))

    def close(self) -> None:
        self.closed = True

    def factory(self, bus: int, device: int, max_speed_hz: int) -> RecordingSpi:
        self.opened_with = (bus, device, max_speed_hz)
        return self

    @property
    def frames(self) -> list[bytes]:
        return [bytes(w) for w in self.writes]


def decode_apa102(frame: bytes, count: int) -> list[Rgb]:
    """The pixels an APA102 chain of ``count`` shows after ``frame`` (checks framing)."""
    assert frame[:4] == bytes(4)
    body, end = frame[4 : 4 + 4 * count], frame[4 + 4 * count :]
    assert len(end) >= max(1, -(-count // 16)) and set(end) == {0xFF}
    pixels = []
    for i in range(count):
        marker, b, g, r = body[4 * i : 4 * i + 4]
        assert marker & 0xE0 == 0xE0
        pixels.append(Rgb(r, g, b))
    return pixels


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    previous = Device.pin_factory
    factory = MockFactory(pin_class=MockPin)
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = previous


# ---------------------------------------------------------------- frames


def test_frame_is_start_pixels_bgr_and_end() -> None:
    frame = apa102_frame([Rgb(1, 2, 3), Rgb(0x10, 0x20, 0x30)], brightness=7)
    assert frame == bytes(
        [0, 0, 0, 0, 0xE7, 3, 2, 1, 0xE7, 0x30, 0x20, 0x10, 0xFF, 0xFF, 0xFF, 0xFF]
    )


def test_twelve_pixel_frame_is_56_bytes_at_full_brightness() -> None:
    frame = apa102_frame([RED] * 12)
    assert len(frame) == 4 + 12 * 4 + 4
    assert frame[4:8] == bytes([0xFF, 0, 0, 0xFF])  # 0b11111111 brightness, B, G, R


@pytest.mark.parametrize(("count", "end_bytes"), [(0, 4), (3, 4), (64, 4), (65, 5), (200, 13)])
def test_end_frame_clocks_the_data_through_the_whole_chain(count: int, end_bytes: int) -> None:
    frame = apa102_frame([OFF] * count)
    assert len(frame) == 4 + 4 * count + end_bytes
    assert frame[4 + 4 * count :] == b"\xff" * end_bytes


@pytest.mark.parametrize("brightness", [-1, 32, True])
def test_brightness_outside_five_bits_is_refused(brightness: int) -> None:
    with pytest.raises(ValueError, match="brightness"):
        apa102_frame([RED], brightness)


def test_channel_outside_a_byte_is_refused() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.255"):
        apa102_frame([RED, Rgb(0, 256, 0)])


def test_zero_brightness_keeps_the_marker_bits() -> None:
    assert apa102_frame([GREEN], 0)[4:8] == bytes([0xE0, 0, 0xFF, 0])


# ---------------------------------------------------------------- ring


def test_ring_writes_exact_frames_and_skips_repeats() -> None:
    spi = RecordingSpi()
    ring = Apa102Ring(
        3,
        spi_bus=0,
        spi_device=1,
        power_pin=None,
        power_active_high=True,
        brightness=10,
        spi_factory=spi.factory,
        max_speed_hz=4_000_000,
    )
    assert spi.opened_with == (0, 1, 4_000_000)
    assert spi.writes == []  # nothing is written before there is something to show
    ring.show([RED, GREEN, BLUE])
    ring.show([RED, GREEN, BLUE])
    ring.show([OFF, OFF, BLUE])
    assert spi.frames == [apa102_frame([RED, GREEN, BLUE], 10), apa102_frame([OFF, OFF, BLUE], 10)]
    assert decode_apa102(spi.frames[0], 3) == [RED, GREEN, BLUE]


def test_long_chains_are_written_in_chunks_spidev_accepts() -> None:
    spi = RecordingSpi()
    ring = Apa102Ring(
        1024,
        spi_bus=0,
        spi_device=0,
        power_pin=None,
        power_active_high=True,
        spi_factory=spi.factory,
    )
    ring.show([BLUE] * 1024)
    assert all(len(w) <= SPI_CHUNK_BYTES for w in spi.writes)
    assert len(spi.writes) == 2
    assert b"".join(spi.frames) == apa102_frame([BLUE] * 1024)


def test_power_pin_goes_on_before_the_first_frame_and_off_after_the_last(
    factory: MockFactory,
) -> None:
    seen: list[tuple[bool, bytes]] = []
    pin = factory.pin(5)

    class PowerWatchingSpi(RecordingSpi):
        def writebytes(self, data: list[int]) -> None:
            seen.append((bool(pin.state), bytes(data)))
            super().writebytes(data)

    spi = PowerWatchingSpi()
    ring = Apa102Ring(
        12,
        spi_bus=0,
        spi_device=1,
        power_pin=5,
        power_active_high=True,
        spi_factory=spi.factory,
        pin_factory=factory,
    )
    assert pin.state is False and not ring.powered  # off until there is something to show
    ring.show([RED] * 12)
    assert pin.state is True and ring.powered
    ring.close()
    assert pin.state is False and not ring.powered
    assert seen == [(True, apa102_frame([RED] * 12)), (True, apa102_frame([OFF] * 12))]
    assert spi.closed


def test_active_low_power_pin_drives_low_to_power(factory: MockFactory) -> None:
    spi = RecordingSpi()
    ring = Apa102Ring(
        3, spi_bus=0, spi_device=0, power_pin=6, power_active_high=False, spi_factory=spi.factory
    )  # Device.pin_factory from the fixture
    assert factory.pin(6).state is True
    ring.show([RED] * 3)
    assert factory.pin(6).state is False
    ring.close()
    assert factory.pin(6).state is True


def test_unpowered_ring_is_not_written_at_close(factory: MockFactory) -> None:
    spi = RecordingSpi()
    ring = Apa102Ring(
        3,
        spi_bus=0,
        spi_device=0,
        power_pin=5,
        power_active_high=True,
        spi_factory=spi.factory,
        pin_factory=factory,
    )
    ring.close()
    assert spi.writes == [] and spi.closed
    ring = Apa102Ring(
        3,
        spi_bus=0,
        spi_device=0,
        power_pin=5,
        power_active_high=True,
        spi_factory=spi.factory,
        pin_factory=factory,
    )  # the pin was released


def test_ring_without_power_pin_is_blanked_at_close_even_if_never_shown() -> None:
    spi = RecordingSpi()
    ring = Apa102Ring(
        3, spi_bus=0, spi_device=0, power_pin=None, power_active_high=True, spi_factory=spi.factory
    )
    ring.close()
    ring.close()
    assert spi.frames == [apa102_frame([OFF] * 3)]
    ring.show([RED] * 3)  # a refresh racing the shutdown is ignored
    assert len(spi.writes) == 1


def test_busy_power_pin_is_a_hardware_error_and_opens_no_bus(factory: MockFactory) -> None:
    from gpiozero import LED

    holder = LED(5, pin_factory=factory)
    spi = RecordingSpi()
    with pytest.raises(HardwareError, match=r"GPIO5.*another process.*lgpio"):
        Apa102Ring(
            3,
            spi_bus=0,
            spi_device=0,
            power_pin=5,
            power_active_high=True,
            spi_factory=spi.factory,
            pin_factory=factory,
        )
    assert spi.opened_with is None
    holder.close()


def test_bus_failure_releases_the_power_pin(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gpiozero

    opened: list[Any] = []  # strong references, so only an explicit close releases the pin
    real = gpiozero.DigitalOutputDevice

    def recording(*args: Any, **kwargs: Any) -> Any:
        opened.append(real(*args, **kwargs))
        return opened[-1]

    def no_bus(bus: int, device: int, max_speed_hz: int) -> RecordingSpi:
        raise HardwareError("no bus")

    monkeypatch.setattr(gpiozero, "DigitalOutputDevice", recording)
    with pytest.raises(HardwareError, match="no bus"):
        Apa102Ring(
            3,
            spi_bus=0,
            spi_device=0,
            power_pin=5,
            power_active_high=True,
            spi_factory=no_bus,
            pin_factory=factory,
        )
    assert [d.closed for d in opened] == [True]


def test_write_failure_is_a_hardware_error_naming_the_bus() -> None:
    class BrokenSpi(RecordingSpi):
        def writebytes(self, data: list[int]) -> None:
            raise OSError(121, "Remote I/O error")

    spi = BrokenSpi()
    ring = Apa102Ring(
        3, spi_bus=0, spi_device=1, power_pin=None, power_active_high=True, spi_factory=spi.factory
    )
    with pytest.raises(HardwareError, match=r"/dev/spidev0\.1"):
        ring.show([RED] * 3)


@pytest.mark.parametrize(
    ("count", "brightness", "match"), [(3, 40, "brightness"), (0, 31, "at least one pixel")]
)
def test_bad_ring_settings_are_refused_before_opening(
    count: int, brightness: int, match: str
) -> None:
    spi = RecordingSpi()
    with pytest.raises(ValueError, match=match):
        Apa102Ring(
            count,
            spi_bus=0,
            spi_device=0,
            power_pin=None,
            power_active_high=True,
            brightness=brightness,
            spi_factory=spi.factory,
        )
    assert spi.opened_with is None


# ---------------------------------------------------------------- spidev


def test_missing_spidev_says_to_install_the_pi_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spidev", None)  # import spidev -> ImportError
    with pytest.raises(HardwareError, match=r"spidev0\.1.*edgevoice\[pi\]"):
        open_spidev(0, 1, 8_000_000)


class _FakeSpiDev:
    error: ClassVar[OSError | None] = None
    instances: ClassVar[list[_FakeSpiDev]] = []

    def __init__(self) -> None:
        self.max_speed_hz = 0
        self.mode = 3
        self.opened: tuple[int, int] | None = None
        self.closed = False
        _FakeSpiDev.instances.append(self)

    def open(self, bus: int, device: int) -> None:
        if self.error is not None:
            raise self.error
        self.opened = (bus, device)

    def writebytes(self, data: list[int]) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_spidev(monkeypatch: pytest.MonkeyPatch) -> type[_FakeSpiDev]:
    module = types.ModuleType("spidev")
    module.SpiDev = _FakeSpiDev  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spidev", module)
    monkeypatch.setattr(_FakeSpiDev, "error", None)
    monkeypatch.setattr(_FakeSpiDev, "instances", [])
    return _FakeSpiDev


def test_spidev_is_opened_in_mode_0_at_the_asked_speed(fake_spidev: type[_FakeSpiDev]) -> None:
    open_spidev(0, 1, 2_000_000)
    (dev,) = fake_spidev.instances
    assert (dev.opened, dev.max_speed_hz, dev.mode) == ((0, 1), 2_000_000, 0)


def test_missing_spi_device_says_to_enable_spi(fake_spidev: type[_FakeSpiDev]) -> None:
    fake_spidev.error = FileNotFoundError(2, "No such file or directory")
    with pytest.raises(HardwareError, match=r"/dev/spidev0\.0.*raspi-config.*dtparam=spi=on"):
        open_spidev(0, 0, 8_000_000)


def test_spi_permission_problem_names_the_group(fake_spidev: type[_FakeSpiDev]) -> None:
    fake_spidev.error = PermissionError(13, "Permission denied")
    with pytest.raises(HardwareError, match="'spi' group"):
        open_spidev(0, 0, 8_000_000)
