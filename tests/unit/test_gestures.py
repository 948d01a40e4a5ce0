"""Button gestures from press/release edges, read at chosen instants (no clock)."""

from __future__ import annotations

import pytest

from device.ui.buttons import (
    ButtonMap,
    ButtonStyle,
    Command,
    Gesture,
    GestureEvent,
    GestureReader,
    GestureTiming,
)
from hw.ports import ButtonEvent

TIMING = GestureTiming(double_press_s=0.3, long_press_s=1.5)
TALK = ButtonStyle(double=True, long=True)


def down(at_s: float, name: str = "talk") -> ButtonEvent:
    return ButtonEvent(name, True, at_s)


def up(at_s: float, name: str = "talk") -> ButtonEvent:
    return ButtonEvent(name, False, at_s)


def reader(**styles: ButtonStyle) -> GestureReader:
    return GestureReader(styles or {"talk": TALK}, TIMING)


def gestures(events: list[GestureEvent]) -> list[tuple[str, Gesture, float]]:
    return [(e.button, e.gesture, round(e.at_s, 6)) for e in events]


def test_single_press_fires_once_the_double_press_window_has_passed() -> None:
    r = reader()
    assert r.edge(down(10.0)) == []
    assert r.edge(up(10.1)) == []
    assert r.deadline_s() == pytest.approx(10.4)
    assert r.tick(10.39) == []
    assert gestures(r.tick(10.4)) == [("talk", Gesture.PRESS, 10.1)]
    assert r.deadline_s() is None
    assert r.tick(20.0) == []  # fired once only


def test_without_a_double_press_action_a_single_press_fires_at_release() -> None:
    r = reader(talk=ButtonStyle(long=True))
    assert r.edge(down(5.0)) == []
    assert gestures(r.edge(up(5.2))) == [("talk", Gesture.PRESS, 5.2)]
    assert r.deadline_s() is None


def test_double_press_fires_at_the_second_press_and_swallows_its_release() -> None:
    r = reader()
    r.edge(down(1.0))
    r.edge(up(1.1))
    assert gestures(r.edge(down(1.3))) == [("talk", Gesture.DOUBLE_PRESS, 1.3)]
    assert r.deadline_s() is None  # the second press cannot turn into a long press
    assert r.edge(up(1.4)) == []
    assert r.tick(5.0) == []


def test_a_second_press_after_the_window_is_two_single_presses() -> None:
    r = reader()
    r.edge(down(1.0))
    r.edge(up(1.1))
    # the press at 1.5 comes after the window (1.4): the first press fires first
    assert gestures(r.edge(down(1.5))) == [("talk", Gesture.PRESS, 1.1)]
    assert r.edge(up(1.6)) == []
    assert gestures(r.tick(1.95)) == [("talk", Gesture.PRESS, 1.6)]


def test_long_press_fires_while_held_at_the_threshold() -> None:
    r = reader()
    r.edge(down(2.0))
    assert r.deadline_s() == pytest.approx(3.5)
    assert r.tick(3.49) == []
    assert gestures(r.tick(3.5)) == [("talk", Gesture.LONG_PRESS, 3.5)]
    assert r.edge(up(4.0)) == []  # the release after a long press means nothing
    assert r.deadline_s() is None


def test_long_press_is_found_from_a_release_stamped_later() -> None:
    """A scripted press hands over press and release at once; the stamps decide."""
    r = reader()
    assert r.edge(down(2.0)) == []
    assert gestures(r.edge(up(4.0))) == [("talk", Gesture.LONG_PRESS, 3.5)]
    assert r.tick(10.0) == []


def test_a_press_just_short_of_long_is_a_single_press() -> None:
    r = reader(talk=ButtonStyle(long=True))
    r.edge(down(0.0))
    assert gestures(r.edge(up(1.49))) == [("talk", Gesture.PRESS, 1.49)]


def test_hold_reports_press_and_release_and_nothing_else() -> None:
    r = reader(talk=ButtonStyle(hold=True))
    assert gestures(r.edge(down(1.0))) == [("talk", Gesture.HOLD_START, 1.0)]
    assert r.deadline_s() is None
    assert r.tick(100.0) == []  # held for minutes: still no long press
    assert gestures(r.edge(up(101.0))) == [("talk", Gesture.HOLD_END, 101.0)]


def test_bounce_and_stray_releases_are_ignored() -> None:
    r = reader(talk=ButtonStyle())
    assert r.edge(up(0.5)) == []  # released, never seen pressed (held at start)
    r.edge(down(1.0))
    assert r.edge(down(1.01)) == []  # a second press edge without a release
    assert gestures(r.edge(up(1.1))) == [("talk", Gesture.PRESS, 1.1)]
    hold = reader(sw=ButtonStyle(hold=True))
    assert len(hold.edge(down(1.0, "sw"))) == 1
    assert hold.edge(down(1.1, "sw")) == []


def test_buttons_are_read_apart_and_unknown_ones_ignored() -> None:
    r = reader(talk=TALK, volume_up=ButtonStyle())
    assert r.edge(down(0.0, "other")) == []
    r.edge(down(0.0))
    assert gestures(r.edge(up(0.05, "volume_up"))) == []  # never went down
    r.edge(down(0.1, "volume_up"))
    assert gestures(r.edge(up(0.2, "volume_up"))) == [("volume_up", Gesture.PRESS, 0.2)]
    assert gestures(r.tick(1.5)) == [("talk", Gesture.LONG_PRESS, 1.5)]


@pytest.mark.parametrize(
    ("button", "gesture", "double", "command"),
    [
        ("talk", Gesture.PRESS, "none", Command.TALK),
        ("talk", Gesture.LONG_PRESS, "none", Command.MUTE_TOGGLE),
        ("talk", Gesture.DOUBLE_PRESS, "volume_up", Command.VOLUME_UP),
        ("talk", Gesture.DOUBLE_PRESS, "volume_down", Command.VOLUME_DOWN),
        ("talk", Gesture.DOUBLE_PRESS, "mute", Command.MUTE_TOGGLE),
        ("talk", Gesture.DOUBLE_PRESS, "none", None),
        ("mute", Gesture.PRESS, "none", Command.MUTE_TOGGLE),
        ("mute_switch", Gesture.HOLD_START, "none", Command.MUTE_ON),
        ("mute_switch", Gesture.HOLD_END, "none", Command.MUTE_OFF),
        ("volume_up", Gesture.PRESS, "none", Command.VOLUME_UP),
        ("volume_down", Gesture.PRESS, "none", Command.VOLUME_DOWN),
        ("volume_down", Gesture.LONG_PRESS, "none", None),
        ("reset", Gesture.PRESS, "none", None),
    ],
)
def test_each_named_button_does_its_action(
    button: str, gesture: Gesture, double: str, command: Command | None
) -> None:
    assert ButtonMap(double).command(GestureEvent(button, gesture, 0.0)) == command


def test_push_to_talk_holds_the_talk_button() -> None:
    names = ("talk", "mute_switch", "volume_up", "reset")
    ptt = ButtonMap(push_to_talk=True)
    styles = ptt.styles(names)
    assert styles["talk"] == ButtonStyle(hold=True)
    assert styles["mute_switch"] == ButtonStyle(hold=True)
    assert "reset" not in styles
    assert ptt.command(GestureEvent("talk", Gesture.HOLD_START, 0)) is Command.PUSH_TO_TALK_START
    assert ptt.command(GestureEvent("talk", Gesture.HOLD_END, 0)) is Command.PUSH_TO_TALK_END


def test_only_a_double_press_action_makes_the_talk_button_wait() -> None:
    assert ButtonMap("none").styles(["talk"])["talk"] == ButtonStyle(long=True)
    assert ButtonMap("mute").styles(["talk"])["talk"] == ButtonStyle(double=True, long=True)
    assert ButtonMap("none").styles(["volume_up"])["volume_up"] == ButtonStyle()
