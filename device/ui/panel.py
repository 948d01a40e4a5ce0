"""The speaker's front panel: what a person presses, sees and hears.

``FrontPanel`` runs on the event loop beside the daemon. It

* reads the buttons: gpiozero (or the fake) calls the handler on its own thread,
  which only hands the edge to the loop with ``call_soon_threadsafe``; there the
  pure ``GestureReader`` turns edges into gestures, one loop timer serves its
  deadlines, and ``ButtonMap`` turns gestures into commands on the controls;
* plays the earcons that go with state changes (wake, end of listening, mute,
  unmute, offline once the connection has stayed gone a moment, error) and with
  volume steps, mixed over the reply at the playback volume;
* drives the LEDs: the state's pattern (``device.ui.leds``), the volume for a
  moment after it changed, or the colour a tool chose while idle;
* keeps a muted microphone muted: when a fault or setup ends while muted, the
  state machine is brought back to MUTED;
* points the listening LEDs at the talker: every captured block's mic channels go
  to the board's direction finder (``device.audio.doa``), whose estimate is shown
  while waking and listening, and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from device.audio.doa import RingDirection
from device.state import Event, State
from device.ui import earcons
from device.ui.buttons import ButtonMap, Command, GestureEvent, GestureReader, GestureTiming
from device.ui.leds import pattern, scaled, volume_pixels
from hw.ports import ButtonEvent, Rgb

if TYPE_CHECKING:
    from device.app import Daemon
    from device.audio.bridge import CapturedBlock
    from device.audio.capture import CaptureResult
    from device.config import Config

log = logging.getLogger(__name__)

LED_REFRESH_S = 0.05
VOLUME_SHOWN_S = 1.5
"""How long the LEDs show a new volume before the state's pattern returns."""
OFFLINE_SOUND_AFTER_S = 3.0
"""The offline sound waits this long and plays only if the connection is still gone:
a session replaced on purpose, or a quick reconnect, is not worth a sound."""

_ONLINE = (State.IDLE, State.WAKE, State.LISTENING, State.THINKING, State.SPEAKING)
_POINTING = (State.WAKE, State.LISTENING)
"""States whose LEDs point at the talker when the direction is known."""


def button_map(config: Config) -> ButtonMap:
    """The button meanings for ``config``: the talk button is held to talk in
    push-to-talk mode."""
    push_to_talk = config.turn.mode == "push_to_talk"
    return ButtonMap(config.buttons.double_press, push_to_talk)


def gesture_timing(config: Config) -> GestureTiming:
    buttons = config.buttons
    return GestureTiming(buttons.double_press_ms / 1000.0, buttons.long_press_ms / 1000.0)


def earcon_for(old: State, new: State, event: Event, activated: bool) -> str | None:
    """The earcon a state change calls for, if any (pure)."""
    if new is State.WAKE:
        return "wake"
    if event is Event.ACTIVATION_ENDED:
        return "listening_end"
    if old is State.LISTENING and new is State.THINKING and activated:
        return "listening_end"  # a turn opened by the button or wake word has been heard
    if new is State.MUTED:
        return "mute"
    if old is State.MUTED and event is Event.UNMUTED:
        return "unmute"
    if new is State.OFFLINE and old in _ONLINE:
        return "offline"
    if new is State.FAULT:
        return "error"
    return None


class FrontPanel:
    """Buttons, LEDs and earcons of one daemon; every method runs on the event loop."""

    def __init__(self, daemon: Daemon, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._daemon = daemon
        self._clock = clock
        self.entered_s = clock()  # when the current state began
        self.doa_deg: float | None = None
        """The talker's direction on the LED ring's frame, set from the board's mic
        array while waking or listening; None: unknown, the listening LEDs light all round."""
        hw = daemon.hw
        self.direction = RingDirection.for_board(hw.board, hw.duplex.format.rate_hz)
        """The board's direction finder; None where its mics or LEDs cannot point."""
        self._activated = False  # the turn was opened by the button or the wake word
        self._restoring_mute = False
        self._volume_until_s = -math.inf
        self._volume_shown = 0
        self._reader_for: tuple[Any, ...] = ()
        self._reader = GestureReader({})
        self._map = ButtonMap()
        self._timer: asyncio.TimerHandle | None = None
        self._offline_timer: asyncio.TimerHandle | None = None
        self.offline_sound_after_s = OFFLINE_SOUND_AFTER_S
        self._running = False
        self.gestures: list[GestureEvent] = []  # the last few, for the status and tests

    # -- sounds ----------------------------------------------------------------------
    def play(self, name: str) -> None:
        """Mix earcon ``name`` over the speaker's output, if sounds and it are enabled."""
        sounds = self._daemon.config.sounds
        if not sounds.enabled or name not in sounds.earcons:
            return
        daemon = self._daemon
        playback = daemon.playback
        if not playback.play_over(earcons.pcm(name, playback.rate_hz, daemon.reply.gain)):
            log.debug("earcon %s dropped: too many queued", name)

    def volume_changed(self, percent: int, *, audible: bool) -> None:
        """Show the new volume on the LEDs for a moment; ``audible``: tick at it too."""
        self._volume_shown = percent
        self._volume_until_s = self._clock() + VOLUME_SHOWN_S
        if audible:
            self.play("volume")

    # -- state -----------------------------------------------------------------------
    def state_changed(self, old: State, new: State, event: Event) -> None:
        """Called by the daemon after every change of state."""
        self.entered_s = self._clock()
        if new not in _POINTING:
            self.doa_deg = None
        daemon = self._daemon
        if daemon.controls.mic_muted and new in (*_ONLINE, State.OFFLINE):
            # A fault or setup ended while muted: the microphone is still off.
            self._restoring_mute = True
            try:
                daemon.dispatch(Event.MUTED)
            finally:
                self._restoring_mute = False
            return
        sound = earcon_for(old, new, event, self._activated)
        if new is State.WAKE:
            self._activated = True
        elif new is not State.LISTENING:
            self._activated = False
        if sound == "offline":
            self._play_if_still_offline()
        elif sound == "error" and daemon.faults == {"audio"}:
            # The speaker is what broke: queued now, the sound would come out once
            # the device is back, late, over whatever the user says then.
            log.debug("error earcon skipped: the audio device itself is gone")
        elif sound is not None and not (self._restoring_mute and new is State.MUTED):
            self.play(sound)

    def _play_if_still_offline(self) -> None:
        if self._offline_timer is not None:
            self._offline_timer.cancel()
            self._offline_timer = None
        if not self._running:
            return  # stopping (or not started): the connection ends on purpose
        self._offline_timer = asyncio.get_running_loop().call_later(
            self.offline_sound_after_s, self._offline_sound
        )

    def _offline_sound(self) -> None:
        self._offline_timer = None
        if self._daemon.state is State.OFFLINE:
            self.play("offline")

    # -- LEDs ------------------------------------------------------------------------
    @property
    def doa_channels(self) -> tuple[int, ...]:
        """The capture channels the direction finder needs, in its order; () for none."""
        return () if self.direction is None else self.direction.channels

    def heard(self, block: CapturedBlock, result: CaptureResult) -> None:
        """One captured block and what the capture pipeline made of it: the direction
        finder hears it (speech only, never while muted) and ``doa_deg`` follows."""
        daemon = self._daemon
        finder = self.direction
        if finder is None or block.mics is None or not daemon.config.leds.doa:
            self.doa_deg = None
            return
        if daemon.controls.mic_muted:
            finder.reset()
        else:
            speech = any(tap.is_speech for tap in result.taps)
            finder.push(block.mics, block.reference, speech=speech)
        self.doa_deg = finder.ring_deg if daemon.state in _POINTING else None

    def pixels(self, now_s: float, count: int) -> list[Rgb]:
        """What the LEDs show at ``now_s``: a fresh volume, else the colour a tool chose
        while idle, else the state's pattern; dimmed to ``[leds] brightness``."""
        daemon = self._daemon
        settings = daemon.config.leds
        chosen = daemon.controls.led_color
        if now_s < self._volume_until_s:
            shown = volume_pixels(self._volume_shown, count)
        elif chosen is not None and daemon.state is State.IDLE:
            rgb, brightness = chosen
            shown = [rgb.scaled(brightness)] * count
        else:
            shown = pattern(
                daemon.state, now_s, count,
                entered_s=self.entered_s,
                level=daemon.playback.level,
                doa_deg=self.doa_deg,
                mic_pixels=daemon.hw.board.leds.mic_pixels,
                idle_glow=settings.idle == "glow",
            )  # fmt: skip
        return scaled(shown, settings.brightness)

    async def run(self) -> None:
        """Read the buttons and drive the LEDs until cancelled."""
        loop = asyncio.get_running_loop()
        buttons = self._daemon.hw.buttons

        def handler(event: ButtonEvent) -> None:  # on gpiozero's thread: hand over, return
            with contextlib.suppress(RuntimeError):  # the loop is closed: we are stopping
                loop.call_soon_threadsafe(self.on_button, event)

        buttons.set_handler(handler)
        self._running = True
        try:
            await self._led_loop()
            await asyncio.Event().wait()  # the LEDs failed: the buttons still work
        finally:
            self._running = False
            buttons.set_handler(None)
            for timer in (self._timer, self._offline_timer):
                if timer is not None:
                    timer.cancel()

    async def _led_loop(self) -> None:
        leds = self._daemon.hw.leds
        while True:
            try:
                leds.show(self.pixels(self._clock(), leds.count))
            except Exception:
                log.exception("LED update failed; LEDs stay as they are")
                return
            await asyncio.sleep(LED_REFRESH_S)

    # -- buttons ---------------------------------------------------------------------
    def _refresh_reader(self) -> None:
        """Build the gesture reader for the current config (a reload may change it)."""
        config = self._daemon.config
        key = (config.buttons, button_map(config))
        if key != self._reader_for:
            self._reader_for = key
            self._map = button_map(config)
            names = self._daemon.hw.buttons.names
            self._reader = GestureReader(self._map.styles(names), gesture_timing(config))

    def on_button(self, event: ButtonEvent) -> None:
        """One button edge, on the loop."""
        self._refresh_reader()
        self._perform(self._reader.edge(event))

    def _on_timer(self) -> None:
        self._timer = None
        self._perform(self._reader.tick(self._clock()))

    def _perform(self, gestures: list[GestureEvent]) -> None:
        for gesture in gestures:
            self.gestures = [*self.gestures[-9:], gesture]
            command = self._map.command(gesture)
            log.info(
                "button %s: %s%s",
                gesture.button,
                gesture.gesture.value,
                f" -> {command.value}" if command is not None else "",
            )
            if command is not None:
                self._command(command)
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline_s = self._reader.deadline_s()
        if deadline_s is not None:
            # The loop's clock is the monotonic clock the button edges are stamped with.
            delay_s = max(0.0, deadline_s - self._clock())
            self._timer = asyncio.get_running_loop().call_later(delay_s, self._on_timer)

    def _command(self, command: Command) -> None:
        daemon = self._daemon
        controls = daemon.controls
        if command is Command.TALK:
            log.info("talk button: %s", controls.talk())
        elif command is Command.MUTE_TOGGLE:
            controls.set_mute(not controls.mic_muted, by="button")
        elif command in (Command.MUTE_ON, Command.MUTE_OFF):
            controls.set_mute(command is Command.MUTE_ON, by="mute switch")
        elif command in (Command.VOLUME_UP, Command.VOLUME_DOWN):
            controls.step_volume(1 if command is Command.VOLUME_UP else -1)
        else:
            daemon.push_to_talk(command is Command.PUSH_TO_TALK_START)
