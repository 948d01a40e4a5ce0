"""Fakes of the front panel and of systemd: LEDs, buttons and the notifier.

Like the sound card's fake (``hw.fake``), they record what the device did (every LED
change with its time, every notification) and take physical verbs from a script
(a button is *pressed*).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hw.ports import OFF, ButtonEvent, ButtonHandler, Rgb


@dataclass(frozen=True)
class LedFrame:
    """One change of the LEDs: when, and what they showed."""

    at_s: float
    pixels: tuple[Rgb, ...]


class FakeLeds:
    """LEDs that record every change of what they show, with its time."""

    def __init__(self, count: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._count = count
        self._clock = clock
        self.frames: list[LedFrame] = []
        self.closed = False

    @property
    def count(self) -> int:
        return self._count

    def show(self, pixels: Sequence[Rgb]) -> None:
        if len(pixels) != self._count:
            raise ValueError(f"expected {self._count} pixels, got {len(pixels)}")
        frame = tuple(pixels)
        if not self.frames or self.frames[-1].pixels != frame:
            self.frames.append(LedFrame(self._clock(), frame))

    def close(self) -> None:
        if not self.closed:
            self.show([OFF] * self._count)
            self.closed = True


class FakeButtons:
    """Buttons pressed by a script: ``press("talk", hold_s=1.2)``."""

    def __init__(self, names: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._names = tuple(names)
        self._clock = clock
        self._handler: ButtonHandler | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def set_handler(self, handler: ButtonHandler | None) -> None:
        self._handler = handler

    def press(self, name: str, hold_s: float = 0.1) -> None:
        """Press and release ``name``; the release is stamped ``hold_s`` later."""
        if name not in self._names:
            raise ValueError(f"no button {name!r}; buttons: {', '.join(self._names) or 'none'}")
        at_s = self._clock()
        handler = self._handler  # read once: set_handler may race from another thread
        if handler is not None:
            handler(ButtonEvent(name, True, at_s))
            handler(ButtonEvent(name, False, at_s + hold_s))

    def close(self) -> None:
        self._handler = None


@dataclass
class FakeNotifier:
    """Records every sd_notify message instead of sending it."""

    messages: list[str] = field(default_factory=list)

    def notify(self, message: str) -> bool:
        self.messages.append(message)
        return True
