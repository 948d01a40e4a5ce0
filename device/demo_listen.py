"""The listening scenarios of ``edgevoice demo``: what a person says, and when.

* ``question``: the wake word (in wake_word mode), then the question.
* ``wake-word``: the question first without the wake word (the device must not
  stream a byte of it), then the wake word and the question.
* ``follow-up``: the wake word and the question; once the reply has played, the
  question again, without the wake word, inside the follow-up window.
* ``barge-in``: the loudspeaker next to the mics at full volume (it hears its own
  voice); once the reply has played ``BARGE_IN_AFTER_S``, the user asks again over
  it: playback stops, the reply is cut, and the new question is answered.
* ``buttons``: a long press of the talk button mutes the microphone; the wake word
  and the question then leave nothing on the wire; a second long press unmutes,
  and a single press opens a turn without the wake word for the question.

Each scenario feeds the fake microphone through its physical verb (``feed_wav``)
at a point on the stream's own clock, so runs at any ``--speed`` are the same.
"""

from __future__ import annotations

import asyncio
import importlib.resources
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.config import Config
from device.errors import ConfigError
from device.state import State

if TYPE_CHECKING:
    from device.app import Daemon
    from hw.fake import FakeDuplex

SCENARIOS = ("question", "wake-word", "follow-up", "barge-in", "buttons")
WAKE_PAUSE_S = 0.4  # between the wake word and the question, as people pause
BARGE_IN_AFTER_S = 1.6  # of reply played before the user talks over it
FOLLOW_UP_AFTER_S = 1.0  # after the reply, well inside the follow-up window
ECHO_GAIN = 0.5  # loudspeaker to microphone coupling in the barge-in scenario
POLL_S = 0.01
PRESS_PAUSE_S = 0.5  # between a press and the next thing the user does

Script = Callable[["Daemon", "FakeDuplex"], Coroutine[Any, Any, None]]


def shipped_wake_word(name: str) -> Path:
    """The shipped recording (espeak-ng) of a shipped wake word."""
    ref = importlib.resources.files("device") / "data" / f"wake-{name}.wav"
    return Path(str(ref))


@dataclass(frozen=True)
class Scenario:
    """How a scenario changes the demo: replies to wait for, overrides, a script."""

    turns: int = 1
    echo_gain: float = 0.0
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    script: Script | None = None
    question_first: bool = False  # the question once without the wake word
    opening: bool = True  # the wake word and the question at the start


def speak(config: Config, duplex: FakeDuplex, question: Path, at_s: float) -> float:
    """The wake word (in wake_word mode) and then the question, from ``at_s``; returns
    when the question ends on the stream clock."""
    listen = config.listen
    if listen.mode == "wake_word":
        if listen.wake_word_model is not None:
            raise ConfigError(
                str(config.source or "defaults"),
                "listen.wake_word_model",
                "the demo speaks only the shipped wake words; unset it for the demo, "
                'or run the demo with listen.mode = "always"',
            )
        at_s += duplex.feed_wav(shipped_wake_word(listen.wake_word), at_s=at_s) + WAKE_PAUSE_S
    return at_s + duplex.feed_wav(question, at_s=at_s)


async def _until(check: Callable[[], bool]) -> None:
    """Wait until ``check()`` holds; the daemon's state has no event to wait on."""
    while True:
        if check():
            return
        await asyncio.sleep(POLL_S)


def _follow_up(question: Path) -> Script:
    async def script(daemon: Daemon, duplex: FakeDuplex) -> None:
        await daemon.wait_for_replies(1)
        duplex.feed_wav(question, at_s=duplex.time_s + FOLLOW_UP_AFTER_S)

    return script


def _barge_in(question: Path) -> Script:
    async def script(daemon: Daemon, duplex: FakeDuplex) -> None:
        await _until(lambda: daemon.state is State.SPEAKING)
        start_s = duplex.time_s
        await _until(lambda: duplex.time_s >= start_s + BARGE_IN_AFTER_S)
        duplex.feed_wav(question, at_s=duplex.time_s)

    return script


def _buttons(question: Path) -> Script:
    async def script(daemon: Daemon, duplex: FakeDuplex) -> None:
        from hw.panel_fake import FakeButtons  # the demo runs on the fake hardware

        buttons = daemon.hw.buttons
        assert isinstance(buttons, FakeButtons)
        hold_s = daemon.config.buttons.long_press_ms / 1000.0 + 0.2
        await _until(lambda: daemon.state is State.IDLE)
        buttons.press("talk", hold_s=hold_s)  # long press: mute
        await _until(lambda: daemon.state is State.MUTED)
        ends_s = speak(daemon.config, duplex, question, duplex.time_s + PRESS_PAUSE_S)
        await _until(lambda: duplex.time_s >= ends_s + PRESS_PAUSE_S)
        buttons.press("talk", hold_s=hold_s)  # long press again: unmute
        await _until(lambda: daemon.state is State.IDLE)
        buttons.press("talk")  # single press while idle: listen, no wake word needed
        await _until(lambda: daemon.state is State.WAKE)
        duplex.feed_wav(question, at_s=duplex.time_s + PRESS_PAUSE_S)

    return script


def scenario(name: str, question: Path) -> Scenario:
    """The named scenario (one of ``SCENARIOS``)."""
    if name == "wake-word":
        return Scenario(question_first=True, overrides={"listen": {"mode": "wake_word"}})
    if name == "follow-up":
        return Scenario(
            turns=2, overrides={"listen": {"mode": "wake_word"}}, script=_follow_up(question)
        )
    if name == "barge-in":
        return Scenario(
            turns=2,
            echo_gain=ECHO_GAIN,
            overrides={"audio": {"volume_percent": 100}},
            script=_barge_in(question),
        )
    if name == "buttons":
        return Scenario(opening=False, script=_buttons(question))
    if name == "question":
        return Scenario()
    raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
