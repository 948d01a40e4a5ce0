"""The front panel on a daemon with fake hardware: button edges become actions,
state changes become earcons, and the LEDs show state, volume and mute.

No connection is opened here (the integration tests do that); edges are handed
to the panel on the event loop as the thread crossing would, stamped by a clock
the test moves.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device.app import Daemon
from device.config import load_config, with_overrides
from device.controls import volume_gain
from device.state import Event, State
from device.ui import earcons
from device.ui.buttons import Gesture
from device.ui.leds import GREEN, RED, volume_pixels
from device.ui.panel import VOLUME_SHOWN_S, FrontPanel, earcon_for
from hw.factory import HardwareRequest, build_fake
from hw.panel_fake import FakeButtons
from hw.ports import OFF, ButtonEvent, Rgb


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def make_daemon(tmp_path: Path, board: str = "respeaker-2mic", **sections: Any) -> Daemon:
    config = with_overrides(
        load_config(None), device={"hardware": "fake", "state_dir": str(tmp_path)}, **sections
    )
    daemon = Daemon(config, build_fake(HardwareRequest("fake", board=board)), "sk-test-panel")
    return daemon


def with_clock(daemon: Daemon) -> Clock:
    clock = Clock()
    daemon.ui = FrontPanel(daemon, clock=clock)
    return clock


def record_earcons(daemon: Daemon) -> list[str]:
    played: list[str] = []
    original = daemon.ui.play

    def play(name: str) -> None:
        played.append(name)
        original(name)

    daemon.ui.play = play  # type: ignore[method-assign]
    return played


def run(body: Callable[[], Any]) -> Any:
    async def main() -> Any:
        return body()

    return asyncio.run(main())


def press(daemon: Daemon, clock: Clock, name: str, hold_s: float = 0.1) -> None:
    daemon.ui.on_button(ButtonEvent(name, True, clock.now_s))
    clock.now_s += hold_s
    daemon.ui.on_button(ButtonEvent(name, False, clock.now_s))
    clock.now_s += 1.0


@pytest.mark.parametrize(
    ("old", "new", "event", "activated", "earcon"),
    [
        (State.IDLE, State.WAKE, Event.WAKE_DETECTED, False, "wake"),
        (State.SPEAKING, State.WAKE, Event.WAKE_DETECTED, False, "wake"),
        (State.WAKE, State.IDLE, Event.ACTIVATION_ENDED, True, "listening_end"),
        (State.LISTENING, State.THINKING, Event.USER_SPEECH_STOPPED, True, "listening_end"),
        (State.LISTENING, State.THINKING, Event.USER_SPEECH_STOPPED, False, None),
        (State.IDLE, State.MUTED, Event.MUTED, False, "mute"),
        (State.MUTED, State.OFFLINE, Event.UNMUTED, False, "unmute"),
        (State.SPEAKING, State.OFFLINE, Event.DISCONNECTED, False, "offline"),
        (State.FAULT, State.OFFLINE, Event.RECOVERED, False, None),
        (State.OFFLINE, State.FAULT, Event.FAULT, False, "error"),
        (State.OFFLINE, State.IDLE, Event.CONNECTED, False, None),
        (State.THINKING, State.SPEAKING, Event.REPLY_AUDIO_STARTED, False, None),
    ],
)
def test_earcon_for_each_state_change(
    old: State, new: State, event: Event, activated: bool, earcon: str | None
) -> None:
    assert earcon_for(old, new, event, activated) == earcon


def test_state_changes_mix_their_earcons_at_the_playback_volume(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path)
    played = record_earcons(daemon)
    daemon.dispatch(Event.CONNECTED)
    assert daemon.playback.overlay_frames == 0
    daemon.activate()
    assert daemon.state is State.WAKE
    rate_hz = daemon.playback.rate_hz
    expected = earcons.pcm("wake", rate_hz, volume_gain(daemon.controls.volume_percent))
    assert daemon.playback.overlay_frames == len(expected)
    assert daemon.playback.queued_frames == 0  # not reply audio
    heard = daemon.playback.read(len(expected))
    assert np.array_equal(heard, expected)
    daemon.dispatch(Event.ACTIVATION_ENDED)
    daemon.dispatch(Event.DISCONNECTED)  # not running: the offline sound waits for nothing
    daemon.dispatch(Event.FAULT)
    assert played == ["wake", "listening_end", "error"]


def test_the_offline_sound_plays_only_if_the_connection_stays_gone(tmp_path: Path) -> None:
    async def body() -> list[str]:
        daemon = make_daemon(tmp_path)
        played = record_earcons(daemon)
        daemon.ui.offline_sound_after_s = 0.05
        panel = asyncio.create_task(daemon.ui.run())
        await asyncio.sleep(0)
        daemon.dispatch(Event.CONNECTED)
        daemon.dispatch(Event.DISCONNECTED)
        daemon.dispatch(Event.CONNECTED)  # back at once (a session replaced on purpose)
        await asyncio.sleep(0.2)
        assert played == []
        daemon.dispatch(Event.DISCONNECTED)
        for _ in range(100):
            if played:
                break
            await asyncio.sleep(0.01)
        daemon.dispatch(Event.CONNECTED)
        daemon.dispatch(Event.DISCONNECTED)
        panel.cancel()  # stopping: no sound for a connection ended on purpose
        await asyncio.gather(panel, return_exceptions=True)
        await asyncio.sleep(0.2)
        return played

    assert asyncio.run(body()) == ["offline"]


def test_sounds_can_be_turned_off_all_or_one_by_one(tmp_path: Path) -> None:
    quiet = make_daemon(tmp_path, sounds={"enabled": False})
    quiet.dispatch(Event.CONNECTED)
    quiet.activate()
    assert quiet.playback.overlay_frames == 0
    some = make_daemon(tmp_path, sounds={"earcons": ["listening_end"]})
    some.dispatch(Event.CONNECTED)
    some.activate()
    assert some.playback.overlay_frames == 0
    some.dispatch(Event.ACTIVATION_ENDED)
    assert some.playback.overlay_frames > 0


def test_long_press_mutes_and_the_next_unmutes(tmp_path: Path) -> None:
    def body() -> None:
        daemon = make_daemon(tmp_path)
        clock = with_clock(daemon)
        played = record_earcons(daemon)
        daemon.dispatch(Event.CONNECTED)
        press(daemon, clock, "talk", hold_s=2.0)
        assert daemon.controls.mic_muted
        assert daemon.state is State.MUTED
        assert "microphone muted" in daemon._status_line()
        assert [g.gesture for g in daemon.ui.gestures] == [Gesture.LONG_PRESS]
        # muted: red at the 2-mic HAT's mic pixels, the middle one dark
        pixels = daemon.ui.pixels(clock.now_s, 3)
        assert [p.r > 128 and p.g == 0 for p in pixels] == [True, False, True]
        press(daemon, clock, "talk", hold_s=2.0)
        assert not daemon.controls.mic_muted
        assert daemon.state is State.OFFLINE  # no session here: nothing to re-announce
        assert played == ["mute", "unmute"]

    run(body)


def test_the_error_sound_is_not_queued_while_the_audio_device_is_gone(tmp_path: Path) -> None:
    # It could only come out once the device is back, late, over the user's next words.
    daemon = make_daemon(tmp_path)
    played = record_earcons(daemon)
    daemon.dispatch(Event.CONNECTED)
    daemon.set_fault("audio", "the stream stalled")
    assert daemon.state is State.FAULT
    assert played == [] and daemon.playback.overlay_frames == 0
    daemon.set_fault("service", "HTTP 401")  # a second fault, the speaker still gone
    daemon.clear_fault("audio")
    daemon.clear_fault("service")
    daemon.set_fault("service", "HTTP 401")  # the speaker works: this one is heard
    assert played == ["error"]


def test_a_fault_while_muted_does_not_unmute(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path)
    played = record_earcons(daemon)
    daemon.controls.set_mute(True, by="button")
    daemon.dispatch(Event.FAULT)
    assert daemon.state is State.FAULT
    daemon.dispatch(Event.RECOVERED)  # would lead to OFFLINE, then IDLE
    assert daemon.state is State.MUTED
    assert played == ["mute", "error"]  # restoring the mute is silent
    daemon.controls.set_mute(False, by="button")
    assert daemon.state is State.OFFLINE


def test_talk_press_starts_and_stops_listening(tmp_path: Path) -> None:
    def body() -> None:
        daemon = make_daemon(tmp_path)
        clock = with_clock(daemon)
        played = record_earcons(daemon)
        daemon.dispatch(Event.CONNECTED)
        press(daemon, clock, "talk")
        assert daemon.state is State.WAKE
        press(daemon, clock, "talk")
        assert daemon.state is State.IDLE
        daemon.controls.set_mute(True)
        press(daemon, clock, "talk")  # muted: a reminder, nothing else
        assert daemon.state is State.MUTED
        assert played == ["wake", "listening_end", "mute", "mute"]

    run(body)


def test_double_press_waits_out_its_window_on_the_loop(tmp_path: Path) -> None:
    async def body() -> None:
        daemon = make_daemon(tmp_path, buttons={"double_press": "volume_down",
                                                "double_press_ms": 100})  # fmt: skip
        daemon.dispatch(Event.CONNECTED)
        clock = time.monotonic  # the loop's timer runs on the same clock
        daemon.ui.on_button(ButtonEvent("talk", True, clock()))
        daemon.ui.on_button(ButtonEvent("talk", False, clock()))
        assert daemon.state is State.IDLE  # a single press waits for a possible second
        for _ in range(200):
            if daemon.state is State.WAKE:
                break
            await asyncio.sleep(0.01)
        assert daemon.state is State.WAKE
        daemon.ui.on_button(ButtonEvent("talk", True, clock()))
        daemon.ui.on_button(ButtonEvent("talk", False, clock()))
        daemon.ui.on_button(ButtonEvent("talk", True, clock()))
        assert daemon.controls.volume_percent == 60  # the double press, at once
        daemon.ui.on_button(ButtonEvent("talk", False, clock()))
        await daemon.controls.flush()

    asyncio.run(body())


def test_volume_buttons_step_show_and_tick(tmp_path: Path) -> None:
    def body() -> None:
        daemon = make_daemon(tmp_path, board="mycroft-sj201")
        clock = with_clock(daemon)
        played = record_earcons(daemon)
        daemon.dispatch(Event.CONNECTED)
        press(daemon, clock, "volume_up")
        press(daemon, clock, "volume_up")
        assert daemon.controls.volume_percent == 90
        press(daemon, clock, "volume_down")
        assert daemon.controls.volume_percent == 80
        assert daemon.reply.gain == volume_gain(80)
        assert played == ["volume"] * 3
        # the LEDs show the level for a moment, then the state again
        assert daemon.ui.pixels(clock.now_s - 0.5, 12) == volume_pixels(80, 12)
        assert volume_pixels(80, 12).count(GREEN) == 10
        later = daemon.ui.pixels(clock.now_s + VOLUME_SHOWN_S, 12)
        assert GREEN not in later
        for _ in range(5):
            press(daemon, clock, "volume_up")
        assert daemon.controls.volume_percent == 100

    run(body)
    assert json.loads((tmp_path / "settings.json").read_text()) == {"volume_percent": 100}


def test_the_mute_switch_follows_its_position(tmp_path: Path) -> None:
    def body() -> None:
        daemon = make_daemon(tmp_path, board="mycroft-sj201")
        clock = with_clock(daemon)
        daemon.dispatch(Event.CONNECTED)
        daemon.ui.on_button(ButtonEvent("mute_switch", True, clock.now_s))
        assert daemon.controls.mic_muted and daemon.state is State.MUTED
        daemon.ui.on_button(ButtonEvent("mute_switch", False, clock.now_s + 60))
        assert not daemon.controls.mic_muted

    run(body)


def test_leds_show_the_tool_colour_while_idle_and_respect_the_brightness(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, leds={"brightness": 0.5, "idle": "off"})
    clock = with_clock(daemon)
    assert max(p.r for p in daemon.ui.pixels(clock.now_s, 3)) > 0  # offline: the red twinkle
    daemon.dispatch(Event.CONNECTED)
    assert daemon.ui.pixels(clock.now_s, 3) == [OFF] * 3
    daemon.controls.set_leds("#ff0000", 1.0)
    assert daemon.ui.pixels(clock.now_s, 3) == [RED.scaled(0.5)] * 3
    daemon.activate()  # a turn shows the state, not the chosen colour
    assert daemon.ui.pixels(clock.now_s, 3) == [Rgb(255, 255, 255).scaled(0.5)] * 3


def test_in_push_to_talk_mode_the_talk_button_is_held_to_talk(tmp_path: Path) -> None:
    def body() -> None:
        daemon = make_daemon(
            tmp_path, turn={"mode": "push_to_talk"}, listen={"mode": "push_to_talk"}
        )
        clock = with_clock(daemon)
        calls: list[bool] = []
        daemon.push_to_talk = calls.append  # type: ignore[method-assign]
        daemon.dispatch(Event.CONNECTED)
        press(daemon, clock, "talk", hold_s=4.0)  # a long turn, not a long press
        assert calls == [True, False]
        assert not daemon.controls.mic_muted
        assert [g.gesture for g in daemon.ui.gestures] == [Gesture.HOLD_START, Gesture.HOLD_END]

    run(body)


def test_edges_from_another_thread_are_handled_on_the_loop(tmp_path: Path) -> None:
    """gpiozero calls the handler on its own thread; the panel acts on the loop's."""

    async def body() -> tuple[set[int], int, State]:
        daemon = make_daemon(tmp_path)
        daemon.dispatch(Event.CONNECTED)
        threads: set[int] = set()
        original = daemon.ui.on_button

        def on_button(event: ButtonEvent) -> None:
            threads.add(threading.get_ident())
            original(event)

        daemon.ui.on_button = on_button  # type: ignore[method-assign]
        panel = asyncio.create_task(daemon.ui.run())
        await asyncio.sleep(0)
        buttons = daemon.hw.buttons
        assert isinstance(buttons, FakeButtons)
        finger = threading.Thread(target=buttons.press, args=("talk",))
        finger.start()
        await asyncio.to_thread(finger.join, 5.0)
        for _ in range(100):
            if daemon.state is State.WAKE:
                break
            await asyncio.sleep(0.01)
        panel.cancel()
        await asyncio.gather(panel, return_exceptions=True)
        return threads, threading.get_ident(), daemon.state

    threads, loop_thread, state = asyncio.run(body())
    assert threads == {loop_thread}
    assert state is State.WAKE
