"""Which LED and button adapters each board gets, and how GPIO failures read.

gpiozero runs on its MockFactory (set here, not taken from the environment);
LED rings get a recording SPI transport instead of ``spidev``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from gpiozero import LED, Button, Device
from gpiozero.pins.mock import MockFactory, MockPin

from hw.apa102 import Apa102Ring, apa102_frame
from hw.boards import ButtonProfile, load_board
from hw.factory import HardwareRequest, NullButtons, NullLeds, build_real
from hw.gpio import GpioButtons, GpioLeds, build_buttons, build_leds
from hw.panel_fake import FakeLeds
from hw.ports import OFF, ButtonEvent, HardwareError, Rgb
from tests.unit.test_apa102 import RecordingSpi

RED = Rgb(255, 0, 0)
WAIT_S = 5.0  # only bounds a hung test


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    previous = Device.pin_factory
    factory = MockFactory(pin_class=MockPin)
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = previous


# ---------------------------------------------------------------- LEDs per board


def test_respeaker_2mic_gets_a_three_pixel_ring_on_spi0(factory: MockFactory) -> None:
    spi = RecordingSpi()
    leds, notes = build_leds(load_board("respeaker-2mic").leds, factory, spi_factory=spi.factory)
    assert isinstance(leds, Apa102Ring) and leds.count == 3
    assert spi.opened_with is not None and spi.opened_with[:2] == (0, 0)
    leds.show([RED] * 3)
    assert spi.frames == [apa102_frame([RED] * 3)]
    assert notes == ["LEDs: 3 APA102 pixels on /dev/spidev0.0"]
    leds.close()


def test_respeaker_4mic_ring_is_powered_by_gpio5_active_high(factory: MockFactory) -> None:
    spi = RecordingSpi()
    leds, notes = build_leds(load_board("respeaker-4mic").leds, factory, spi_factory=spi.factory)
    assert isinstance(leds, Apa102Ring) and leds.count == 12
    assert spi.opened_with is not None and spi.opened_with[:2] == (0, 1)
    assert factory.pin(5).state is False
    leds.show([RED] * 12)
    assert factory.pin(5).state is True
    leds.close()
    assert factory.pin(5).state is False
    assert spi.frames[-1] == apa102_frame([OFF] * 12)
    assert "GPIO5 (active high)" in notes[0] and "Pi Zero" in notes[0]


def test_aiy_voice_hat_gets_the_led_on_gpio25_and_talk_on_gpio23(factory: MockFactory) -> None:
    board = load_board("aiy-voice-hat")
    leds, led_notes = build_leds(board.leds, factory)
    assert isinstance(leds, GpioLeds) and leds.count == 1
    leds.show([RED])
    assert factory.pin(25).state is True  # plain mock pins: on/off
    assert "on/off only" in led_notes[0]
    buttons, button_notes = build_buttons(board.buttons, factory)
    assert isinstance(buttons, GpioButtons) and buttons.names == ("talk",)
    got: list[ButtonEvent] = []
    buttons.set_handler(got.append)
    factory.pin(23).drive_low()
    assert [(e.name, e.pressed) for e in got] == [("talk", True)]
    assert button_notes == ["buttons: talk on GPIO23 (active low)"]
    leds.close()
    buttons.close()


def test_respeaker_2mic_talk_button_is_gpio17_active_low(factory: MockFactory) -> None:
    buttons, _ = build_buttons(load_board("respeaker-2mic").buttons, factory)
    got: list[ButtonEvent] = []
    buttons.set_handler(got.append)
    factory.pin(17).drive_low()
    factory.pin(17).drive_high()
    assert [(e.name, e.pressed) for e in got] == [("talk", True), ("talk", False)]
    buttons.close()


def test_generic_usb_has_no_leds_and_no_buttons(factory: MockFactory) -> None:
    board = load_board("generic-usb")
    leds, led_notes = build_leds(board.leds, factory)
    buttons, button_notes = build_buttons(board.buttons, factory)
    assert isinstance(leds, NullLeds) and isinstance(buttons, NullButtons)
    assert (led_notes, button_notes) == ([], [])


@pytest.mark.parametrize(
    ("board", "count", "missing"),
    [
        ("respeaker-usb-v2", 12, "USB HID"),
        ("mycroft-sj201", 12, "I2C"),
        ("aiy-voice-bonnet", 1, "I2C"),
    ],
)
def test_undriven_led_chips_stay_dark_and_say_what_is_missing(
    factory: MockFactory, board: str, count: int, missing: str
) -> None:
    leds, notes = build_leds(load_board(board).leds, factory)
    assert isinstance(leds, NullLeds) and leds.count == count
    assert len(notes) == 1 and missing in notes[0] and "no driver" in notes[0]


def test_sj201_buttons_are_all_driven(factory: MockFactory) -> None:
    buttons, _ = build_buttons(load_board("mycroft-sj201").buttons, factory)
    assert buttons.names == ("talk", "volume_up", "volume_down", "mute_switch")
    buttons.close()


# ---------------------------------------------------------------- buttons


def test_button_open_failure_names_button_pin_and_remedy(factory: MockFactory) -> None:
    holder = Button(17, pin_factory=factory)
    with pytest.raises(HardwareError, match=r"button 'talk' on GPIO17.*another process.*lgpio"):
        GpioButtons([ButtonProfile("talk", 17, True)], pin_factory=factory)
    holder.close()


def test_edge_detection_refusal_is_a_hardware_error_and_releases_pins() -> None:
    class NoEdgePin(MockPin):  # type: ignore[misc]  # gpiozero has no type hints
        def _enable_event_detect(self) -> None:
            if self.info.name == "GPIO27":
                raise RuntimeError("Failed to add edge detection")

    factory = MockFactory(pin_class=NoEdgePin)
    profiles = [ButtonProfile("talk", 17, True), ButtonProfile("mute", 27, True)]
    with pytest.raises(HardwareError, match=r"'mute' on GPIO27.*Failed to add edge detection"):
        GpioButtons(profiles, pin_factory=factory)
    Button(17, pin_factory=factory).close()  # the button opened first was released


def test_missing_gpio_backend_says_to_install_lgpio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-backend")
    monkeypatch.setattr(Device, "pin_factory", None)
    with pytest.raises(HardwareError, match=r"BadPinFactory.*Pi 5 install lgpio"):
        GpioButtons([ButtonProfile("talk", 17, True)])


def test_failing_handler_is_logged_and_later_edges_still_arrive(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    buttons = GpioButtons([ButtonProfile("talk", 17, True)], pin_factory=factory)
    got: list[ButtonEvent] = []

    def handler(event: ButtonEvent) -> None:
        got.append(event)
        if event.pressed:
            raise RuntimeError("loop is gone")

    buttons.set_handler(handler)
    factory.pin(17).drive_low()
    factory.pin(17).drive_high()
    assert [e.pressed for e in got] == [True, False]
    assert "button handler failed on talk press" in caplog.text
    buttons.close()


def test_events_carry_the_injected_clock(factory: MockFactory) -> None:
    times = iter([1.5, 2.25])
    buttons = GpioButtons(
        [ButtonProfile("talk", 17, True)], pin_factory=factory, clock=lambda: next(times)
    )
    got: list[ButtonEvent] = []
    buttons.set_handler(got.append)
    factory.pin(17).drive_low()
    factory.pin(17).drive_high()
    assert got == [ButtonEvent("talk", True, 1.5), ButtonEvent("talk", False, 2.25)]
    buttons.close()


def test_handler_is_called_off_the_setting_thread(factory: MockFactory) -> None:
    buttons = GpioButtons([ButtonProfile("talk", 17, True)], pin_factory=factory)
    seen: list[int] = []
    done = threading.Event()

    def handler(event: ButtonEvent) -> None:
        seen.append(threading.get_ident())
        done.set()

    buttons.set_handler(handler)
    edge = threading.Thread(target=factory.pin(17).drive_low)
    edge.start()
    assert done.wait(WAIT_S)
    edge.join(WAIT_S)
    assert seen == [edge.ident]
    buttons.close()


# ---------------------------------------------------------------- LEDs


def test_led_open_failure_releases_the_pins_opened_before(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Any] = []  # strong references, so only an explicit close releases a pin

    def recording_led(*args: Any, **kwargs: Any) -> Any:
        opened.append(LED(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr("hw.gpio.LED", recording_led)
    holder = LED(21, pin_factory=factory)
    with pytest.raises(HardwareError, match=r"LED on GPIO21.*another process"):
        GpioLeds([16, 20, 21], rgb=True, pin_factory=factory)
    assert [led.closed for led in opened] == [True, True]
    holder.close()


@pytest.mark.parametrize(("pins", "rgb"), [([], False), ([16, 20], True)])
def test_pins_that_make_no_whole_led_are_refused(pins: list[int], rgb: bool) -> None:
    with pytest.raises(ValueError, match="whole"):
        GpioLeds(pins, rgb=rgb, pin_factory=MockFactory(pin_class=MockPin))


def test_leds_ignore_refreshes_after_close(factory: MockFactory) -> None:
    leds = GpioLeds([25], rgb=False, pin_factory=factory)
    leds.close()
    leds.show([RED])
    assert factory.pin(25).state is False


# ---------------------------------------------------------------- factory wiring


class _StubDuplex:
    made: ClassVar[list[_StubDuplex]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.closed = False
        _StubDuplex.made.append(self)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def stub_duplex(monkeypatch: pytest.MonkeyPatch) -> type[_StubDuplex]:
    monkeypatch.setattr("hw.pyaudio_duplex.PyAudioDuplex", _StubDuplex)
    monkeypatch.setattr(_StubDuplex, "made", [])
    return _StubDuplex


def test_real_hardware_gets_gpio_leds_and_buttons(
    factory: MockFactory, stub_duplex: type[_StubDuplex]
) -> None:
    hw = build_real(HardwareRequest("real", board="aiy-voice-hat"))
    assert isinstance(hw.leds, GpioLeds) and isinstance(hw.buttons, GpioButtons)
    assert any("GPIO25" in n for n in hw.notes) and any("talk on GPIO23" in n for n in hw.notes)
    hw.leds.show([RED])
    hw.close()
    assert factory.pin(25).state is False


def test_real_hardware_runs_on_without_buttons_that_cannot_open(
    factory: MockFactory, stub_duplex: type[_StubDuplex]
) -> None:
    holder = Button(23, pin_factory=factory)
    hw = build_real(HardwareRequest("real", board="aiy-voice-hat"))
    assert isinstance(hw.buttons, NullButtons) and isinstance(hw.leds, GpioLeds)
    assert any(n.startswith("buttons are ignored: button 'talk' on GPIO23") for n in hw.notes)
    hw.close()
    holder.close()


def test_real_hardware_runs_on_with_dark_leds_when_spi_is_missing(
    factory: MockFactory, stub_duplex: type[_StubDuplex], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "spidev", None)
    hw = build_real(HardwareRequest("real", board="respeaker-2mic"))
    assert isinstance(hw.leds, NullLeds) and hw.leds.count == 3
    assert isinstance(hw.buttons, GpioButtons)
    assert any(n.startswith("LEDs stay dark: LED ring on /dev/spidev0.0") for n in hw.notes)
    hw.close()


def test_real_hardware_releases_leds_when_buttons_fail_unexpectedly(
    factory: MockFactory, stub_duplex: type[_StubDuplex], monkeypatch: pytest.MonkeyPatch
) -> None:
    leds = FakeLeds(1)

    def broken(profiles: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("hw.gpio.build_leds", lambda profile: (leds, []))
    monkeypatch.setattr("hw.gpio.build_buttons", broken)
    with pytest.raises(RuntimeError, match="bug"):
        build_real(HardwareRequest("real", board="aiy-voice-hat"))
    assert leds.closed
