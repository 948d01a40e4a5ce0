"""The device controls the model's tools act on, backed by the running daemon.

Volume and LED colour live here; the daemon reads them (playback gain, the LED
loop) and the tools change them. Mute drops microphone audio in the daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hw.ports import Rgb

if TYPE_CHECKING:
    from device.app import Daemon


def volume_gain(percent: int) -> float:
    """Playback gain for a volume in percent: squared, so steps sound even-ish."""
    return (max(0, min(100, percent)) / 100.0) ** 2


class DaemonControls:
    """``device.device_tools.DeviceControls`` on the live daemon; called on the event loop."""

    def __init__(self, daemon: Daemon, volume_percent: int) -> None:
        self._daemon = daemon
        self.volume_percent = volume_percent
        self.mic_muted = False
        self.led_color: tuple[Rgb, float] | None = None  # None: the state's own pattern

    def get_volume(self) -> int:
        return self.volume_percent

    def set_volume(self, percent: int) -> None:
        self.volume_percent = max(0, min(100, percent))
        self._daemon.reply.gain = volume_gain(self.volume_percent)

    def get_mute(self) -> bool:
        return self.mic_muted

    def set_mute(self, muted: bool) -> None:
        self.mic_muted = muted
        self._daemon.mic_mute_changed(muted)

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
