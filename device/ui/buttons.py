"""Button gestures, pure: press and release edges in, gestures and commands out.

``GestureReader`` turns the edges of ``hw.ports.Buttons`` into single presses,
double presses, long presses and holds. It reads no clock: every edge carries its
time, and ``tick(now_s)`` fires what a deadline decides (a long press once the
button has been held long enough, a single press once the double-press window
has passed). ``deadline_s`` says when ``tick`` is next needed, so the daemon sets
one timer instead of polling. Edges may arrive stamped later than the moment they
are handed over (a scripted press delivers its release at once): the reader goes
by the stamps.

How each button is read and what it does follows the conventions of current
smart speakers, by the button's name in the board profile:

    talk         single press: the context action (stop the reply, else stop
                 listening, else start listening); long press: mute on/off;
                 double press: as configured. In push-to-talk mode the press
                 starts the turn and the release ends it.
    mute         press: mute on/off
    mute_switch  a latching switch: on mutes, off unmutes
    volume_up    press: one volume step up
    volume_down  press: one volume step down

Buttons of other names are ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hw.ports import ButtonEvent


class Gesture(enum.Enum):
    PRESS = "press"
    DOUBLE_PRESS = "double_press"
    LONG_PRESS = "long_press"
    HOLD_START = "hold_start"  # a hold button went down (push-to-talk, a switch turned on)
    HOLD_END = "hold_end"


@dataclass(frozen=True)
class GestureEvent:
    button: str
    gesture: Gesture
    at_s: float


@dataclass(frozen=True)
class ButtonStyle:
    """How one button's edges are read."""

    double: bool = False  # wait for a second press (a single press fires after the window)
    long: bool = False  # a press held past the long-press time is a long press
    hold: bool = False  # report press and release as they come (nothing else)


@dataclass(frozen=True)
class GestureTiming:
    double_press_s: float = 0.3
    long_press_s: float = 1.5


@dataclass
class _Track:
    """One button's progress through a gesture."""

    down_at_s: float | None = None
    long_fired: bool = False
    swallow_release: bool = False  # the press already made its gesture
    clicks: int = 0
    window_end_s: float = 0.0
    released_at_s: float = 0.0


@dataclass
class GestureReader:
    """Edges in, gestures out, per button; see the module docstring."""

    styles: Mapping[str, ButtonStyle]
    timing: GestureTiming = field(default_factory=GestureTiming)
    _tracks: dict[str, _Track] = field(default_factory=dict)

    def edge(self, event: ButtonEvent) -> list[GestureEvent]:
        """One press or release; returns the gestures it completes (timers first)."""
        style = self.styles.get(event.name)
        if style is None:
            return []
        out = self.tick(event.at_s)
        track = self._tracks.setdefault(event.name, _Track())
        if style.hold:
            if event.pressed != (track.down_at_s is not None):
                track.down_at_s = event.at_s if event.pressed else None
                gesture = Gesture.HOLD_START if event.pressed else Gesture.HOLD_END
                out.append(GestureEvent(event.name, gesture, event.at_s))
            return out
        if event.pressed:
            out += self._pressed(event, style, track)
        else:
            out += self._released(event, style, track)
        return out

    def _pressed(self, event: ButtonEvent, style: ButtonStyle, track: _Track) -> list[GestureEvent]:
        if track.down_at_s is not None:
            return []  # a second press edge without a release: contact bounce
        track.down_at_s = event.at_s
        track.long_fired = False
        if track.clicks == 1 and style.double:
            # The second press within the window: act at once, not at its release.
            track.clicks = 0
            track.swallow_release = True
            return [GestureEvent(event.name, Gesture.DOUBLE_PRESS, event.at_s)]
        track.swallow_release = False
        return []

    def _released(
        self, event: ButtonEvent, style: ButtonStyle, track: _Track
    ) -> list[GestureEvent]:
        if track.down_at_s is None:
            return []  # a release we never saw go down (pressed before we started)
        track.down_at_s = None
        if track.long_fired or track.swallow_release:
            track.swallow_release = False
            return []
        if not style.double:
            return [GestureEvent(event.name, Gesture.PRESS, event.at_s)]
        track.clicks = 1
        track.released_at_s = event.at_s
        track.window_end_s = event.at_s + self.timing.double_press_s
        return []

    def tick(self, now_s: float) -> list[GestureEvent]:
        """Fire the gestures whose deadline is at or before ``now_s``."""
        out: list[GestureEvent] = []
        for name, track in self._tracks.items():
            style = self.styles.get(name, ButtonStyle())
            long_at = self._long_at(track, style)
            if long_at is not None and now_s >= long_at:
                track.long_fired = True
                track.clicks = 0
                out.append(GestureEvent(name, Gesture.LONG_PRESS, long_at))
            if track.clicks == 1 and track.down_at_s is None and now_s >= track.window_end_s:
                track.clicks = 0
                out.append(GestureEvent(name, Gesture.PRESS, track.released_at_s))
        return out

    def _long_at(self, track: _Track, style: ButtonStyle) -> float | None:
        if style.hold or not style.long or track.down_at_s is None or track.long_fired:
            return None
        if track.swallow_release:
            return None  # the second press of a double press
        return track.down_at_s + self.timing.long_press_s

    def deadline_s(self) -> float | None:
        """When ``tick`` must next be called, or None while nothing is pending."""
        times: list[float] = []
        for name, track in self._tracks.items():
            long_at = self._long_at(track, self.styles.get(name, ButtonStyle()))
            if long_at is not None:
                times.append(long_at)
            if track.clicks == 1 and track.down_at_s is None:
                times.append(track.window_end_s)
        return min(times, default=None)


class Command(enum.Enum):
    """What a gesture asks the device to do."""

    TALK = "talk"  # the context action
    MUTE_TOGGLE = "mute_toggle"
    MUTE_ON = "mute_on"
    MUTE_OFF = "mute_off"
    VOLUME_UP = "volume_up"
    VOLUME_DOWN = "volume_down"
    PUSH_TO_TALK_START = "push_to_talk_start"
    PUSH_TO_TALK_END = "push_to_talk_end"


DOUBLE_PRESS_ACTIONS: Mapping[str, Command | None] = {
    "none": None,
    "volume_up": Command.VOLUME_UP,
    "volume_down": Command.VOLUME_DOWN,
    "mute": Command.MUTE_TOGGLE,
}
"""What ``[buttons] double_press`` may name."""

KNOWN_BUTTONS = ("talk", "mute", "mute_switch", "volume_up", "volume_down")


@dataclass(frozen=True)
class ButtonMap:
    """Which command each gesture of each button gives, for one configuration."""

    double_press: str = "none"
    push_to_talk: bool = False

    def styles(self, names: Iterable[str]) -> dict[str, ButtonStyle]:
        """How to read each of the board's buttons (unknown names are left out)."""
        styles: dict[str, ButtonStyle] = {}
        for name in names:
            if name == "talk":
                if self.push_to_talk:
                    styles[name] = ButtonStyle(hold=True)
                else:
                    double = DOUBLE_PRESS_ACTIONS[self.double_press] is not None
                    styles[name] = ButtonStyle(double=double, long=True)
            elif name == "mute_switch":
                styles[name] = ButtonStyle(hold=True)
            elif name in KNOWN_BUTTONS:
                styles[name] = ButtonStyle()
        return styles

    def command(self, event: GestureEvent) -> Command | None:
        """The command for one gesture, or None when it means nothing."""
        name, gesture = event.button, event.gesture
        if name == "talk":
            return {
                Gesture.PRESS: Command.TALK,
                Gesture.LONG_PRESS: Command.MUTE_TOGGLE,
                Gesture.DOUBLE_PRESS: DOUBLE_PRESS_ACTIONS[self.double_press],
                Gesture.HOLD_START: Command.PUSH_TO_TALK_START,
                Gesture.HOLD_END: Command.PUSH_TO_TALK_END,
            }[gesture]
        if name == "mute_switch":
            return {Gesture.HOLD_START: Command.MUTE_ON, Gesture.HOLD_END: Command.MUTE_OFF}.get(
                gesture
            )
        if gesture is not Gesture.PRESS:
            return None
        return {
            "mute": Command.MUTE_TOGGLE,
            "volume_up": Command.VOLUME_UP,
            "volume_down": Command.VOLUME_DOWN,
        }.get(name)
