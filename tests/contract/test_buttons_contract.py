"""One contract for every Buttons adapter: the shipped fake and the GPIO driver.

The GPIO driver runs on gpiozero's MockFactory. Its pins are driven from a
thread of the test's own, as a backend's edge thread would, and the test waits
for the events on a ``threading.Event`` (bounded by a timeout, never a sleep).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from gpiozero import Button, Device
from gpiozero.pins.mock import MockFactory, MockPin

from hw.boards import ButtonProfile
from hw.gpio import GpioButtons
from hw.panel_fake import FakeButtons
from hw.ports import ButtonEvent, Buttons

WAIT_S = 5.0  # only bounds a hung test; nothing is asserted about time
PROFILES = (ButtonProfile("talk", 17, active_low=True), ButtonProfile("mute", 27, active_low=False))


class Ticks:
    """A clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        self.now_s += 1.0
        return self.now_s


@dataclass
class Rig:
    buttons: Buttons
    press: Callable[[str], None]
    """Press and release a button; returns once the release edge has happened."""


@dataclass
class Collector:
    want: int = 2
    events: list[ButtonEvent] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)

    def __call__(self, event: ButtonEvent) -> None:
        self.events.append(event)
        self.threads.add(threading.get_ident())
        if len(self.events) >= self.want:
            self.done.set()


def _fake(factory: MockFactory) -> Rig:
    buttons = FakeButtons([p.name for p in PROFILES], clock=Ticks())
    return Rig(buttons, buttons.press)


def _gpio(factory: MockFactory) -> Rig:
    buttons = GpioButtons(PROFILES, pin_factory=factory, clock=Ticks())
    by_name = {p.name: p for p in PROFILES}

    def press(name: str) -> None:
        profile = by_name[name]
        pin = factory.pin(profile.pin)
        edges = (pin.drive_low, pin.drive_high)
        if not profile.active_low:
            edges = edges[::-1]
        finger = threading.Thread(target=lambda: [edge() for edge in edges], name="finger")
        finger.start()
        finger.join(WAIT_S)
        assert not finger.is_alive()

    return Rig(buttons, press)


@pytest.fixture(params=[_fake, _gpio], ids=["fake", "gpio"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    previous = Device.pin_factory
    factory = MockFactory(pin_class=MockPin)
    Device.pin_factory = factory
    rig = request.param(factory)
    yield rig
    rig.buttons.close()
    factory.reset()
    Device.pin_factory = previous


def test_is_a_buttons_port_with_the_profile_names(rig: Rig) -> None:
    assert isinstance(rig.buttons, Buttons)
    assert rig.buttons.names == ("talk", "mute")


@pytest.mark.parametrize("name", ["talk", "mute"])  # active low, active high
def test_press_gives_pressed_then_released(rig: Rig, name: str) -> None:
    got = Collector()
    rig.buttons.set_handler(got)
    rig.press(name)
    assert got.done.wait(WAIT_S)
    assert [(e.name, e.pressed) for e in got.events] == [(name, True), (name, False)]
    assert got.events[0].at_s < got.events[1].at_s


def test_only_the_pressed_button_reports(rig: Rig) -> None:
    got = Collector(want=4)
    rig.buttons.set_handler(got)
    rig.press("mute")
    rig.press("talk")
    assert got.done.wait(WAIT_S)
    assert [e.name for e in got.events] == ["mute", "mute", "talk", "talk"]


def test_no_handler_means_no_delivery(rig: Rig) -> None:
    got = Collector()
    rig.buttons.set_handler(got)
    rig.buttons.set_handler(None)
    rig.press("talk")  # returns after the edges, so anything delivered is already in
    assert got.events == []


def test_handler_can_be_replaced(rig: Rig) -> None:
    first, second = Collector(), Collector()
    rig.buttons.set_handler(first)
    rig.buttons.set_handler(second)
    rig.press("talk")
    assert second.done.wait(WAIT_S)
    assert first.events == []


def test_close_stops_delivery_and_is_idempotent(rig: Rig) -> None:
    got = Collector()
    rig.buttons.set_handler(got)
    rig.buttons.close()
    rig.buttons.close()
    rig.press("talk")
    assert got.events == []


# ---------------------------------------------------------------- per implementation


def test_gpio_handler_runs_on_the_edge_thread() -> None:
    factory = MockFactory(pin_class=MockPin)
    rig = _gpio(factory)
    got = Collector()
    rig.buttons.set_handler(got)
    rig.press("talk")
    assert got.done.wait(WAIT_S)
    assert threading.get_ident() not in got.threads
    rig.buttons.close()


def test_gpio_pins_are_released_at_close(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []  # strong references, so only an explicit close releases a pin

    def recording_button(*args: Any, **kwargs: Any) -> Any:
        opened.append(Button(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr("hw.gpio.Button", recording_button)
    factory = MockFactory(pin_class=MockPin)
    _gpio(factory).buttons.close()
    assert len(opened) == 2 and all(b.closed for b in opened)
    _gpio(factory).buttons.close()  # would raise HardwareError if a pin were still claimed


def test_fake_release_is_stamped_after_the_hold() -> None:
    buttons = FakeButtons(["talk"], clock=lambda: 10.0)
    got = Collector()
    buttons.set_handler(got)
    buttons.press("talk", hold_s=1.5)
    assert [e.at_s for e in got.events] == [10.0, 11.5]
