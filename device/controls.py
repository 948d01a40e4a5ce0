"""The device controls the model's tools and the buttons act on, backed by the daemon.

Volume and LED colour live here; the daemon reads them (playback gain, the LED
loop) and the tools and buttons change them. The volume is remembered across
restarts in ``<state_dir>/settings.json`` (written atomically). Mute drops
microphone audio: not a byte leaves the device until it is unmuted.

The talk button's single press does what the moment calls for, as on current
smart speakers: it stops a reply (cancelled and truncated to what was heard,
like a spoken interruption), else stops listening, else starts listening.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.state import Event, State
from device.statefile import JsonSaver, read_json
from hw.ports import Rgb

if TYPE_CHECKING:
    from device.app import Daemon


log = logging.getLogger(__name__)


def volume_gain(percent: int) -> float:
    """Playback gain for a volume in percent: squared, so steps sound even-ish."""
    return (max(0, min(100, percent)) / 100.0) ** 2


class DaemonControls:
    """``device.device_tools.DeviceControls`` on the live daemon; called on the event loop."""

    def __init__(self, daemon: Daemon, volume_percent: int, state_dir: Path) -> None:
        self._daemon = daemon
        self.volume_percent = 0
        self._apply_volume(volume_percent)
        self.mic_muted = False
        self.led_color: tuple[Rgb, float] | None = None  # None: the state's own pattern
        self.path = state_dir / "settings.json"
        self._saver = JsonSaver(self.path, "the volume is kept until the next restart")

    async def load(self) -> None:
        """The volume the user last chose, if one was saved (else the config's)."""
        data, problem = await asyncio.to_thread(read_json, self.path)
        if problem:
            log.warning("settings file %s %s; using the configured volume", self.path, problem)
        volume = data.get("volume_percent") if isinstance(data, dict) else None
        if isinstance(volume, int) and not isinstance(volume, bool) and 0 <= volume <= 100:
            self._apply_volume(volume)

    async def flush(self) -> None:
        await self._saver.flush()

    def get_volume(self) -> int:
        return self.volume_percent

    def _apply_volume(self, percent: int) -> None:
        """The one place a volume becomes the playback gain."""
        self.volume_percent = max(0, min(100, percent))
        self._daemon.reply.gain = volume_gain(self.volume_percent)

    def set_volume(self, percent: int, *, audible: bool = False) -> None:
        """Set and remember the volume; the LEDs show it, and ``audible`` plays a tick
        at the new volume (for a button: the person hears what they chose)."""
        self._apply_volume(percent)
        self._saver.save({"volume_percent": self.volume_percent})  # remembered across restarts
        self._daemon.ui.volume_changed(self.volume_percent, audible=audible)

    def step_volume(self, steps: int) -> int:
        """Move the volume by ``steps`` of ``[buttons] volume_step_percent``; the new volume."""
        step = self._daemon.config.buttons.volume_step_percent
        self.set_volume(self.volume_percent + steps * step, audible=True)
        log.info("volume %d%% (button)", self.volume_percent)
        return self.volume_percent

    def get_mute(self) -> bool:
        return self.mic_muted

    def set_mute(self, muted: bool, *, by: str = "voice") -> None:
        """Mute or unmute the microphone; ``by`` says who, for the log."""
        if muted == self.mic_muted:
            return
        self.mic_muted = muted
        log.info("microphone %s (%s)", "muted" if muted else "unmuted", by)
        self._daemon.mic_mute_changed(muted)

    def talk(self) -> str:
        """The talk button's single press: the action the moment calls for.

        Returns what was done, for the log.
        """
        daemon = self._daemon
        state = daemon.state
        if state in (State.SPEAKING, State.THINKING):
            self.stop_reply()
            return "stopped the reply"
        if state in (State.WAKE, State.LISTENING):
            daemon.link.clear_input()  # what was said so far must not become a turn
            daemon.dispatch(Event.ACTIVATION_ENDED)
            return "stopped listening"
        if state is State.IDLE:
            daemon.activate()
            return "listening"
        # Muted, offline, faulty or not set up: say that nothing can happen now.
        daemon.ui.play("mute" if state is State.MUTED else "error")
        return f"nothing to do while {state.value}"

    def stop_reply(self) -> None:
        """Stop the reply as a spoken interruption would: cancel it if it is still being
        generated, silence the speaker, and truncate it to what was heard."""
        daemon = self._daemon
        conversation = daemon.conversation
        if conversation is None:
            daemon.reply.interrupt()
            return
        conversation.session.cancel_response()
        conversation.barge_in()
        daemon.link.wake_sender()

    def set_leds(self, color: str, brightness: float) -> None:
        rgb = Rgb(int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))
        self.led_color = (rgb, brightness)

    def status(self) -> dict[str, Any]:
        daemon = self._daemon
        ledger = daemon.usage.ledger
        return {
            "state": daemon.state.value,
            "connection": "connected" if daemon.online else "not connected",
            "board": daemon.hw.board.name,
            "cost_today": f"{ledger.today.cost_usd:.4f} {ledger.settings.currency}",
        }
