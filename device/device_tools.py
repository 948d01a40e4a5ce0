"""The speaker's own tools: volume, microphone mute, LEDs, the time, its status, and
a look through its camera (``device.look``, offered only where a camera is set up).

Each tool works through a ``DeviceControls`` object, so the same tools drive the
daemon, the demo and the tests; ``MemoryControls`` is one that only remembers.
The clock is injected, so "what time is it" is answered from a clock the caller
chooses (and a test fixes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, Protocol

from device.tools import Tool, ToolArgumentError

if TYPE_CHECKING:
    from device.look import CameraSetup

DEVICE_TOOL_NAMES = ("volume", "mute", "leds", "time", "status", "look")
VOLUME_STEP_PERCENT = 10
LED_COLORS: Mapping[str, str] = {
    "off": "#000000",
    "white": "#ffffff",
    "warm white": "#ffb46b",
    "red": "#ff0000",
    "orange": "#ff8000",
    "yellow": "#ffd000",
    "green": "#00ff00",
    "cyan": "#00ffff",
    "blue": "#0050ff",
    "purple": "#8000ff",
    "pink": "#ff40a0",
}
_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_NO_PARAMETERS: Mapping[str, Any] = {
    "type": "object", "properties": {}, "additionalProperties": False,
}  # fmt: skip


class DeviceControls(Protocol):
    """What the tools may read and change on the device; called on the event loop."""

    def get_volume(self) -> int:
        """Playback volume, 0..100."""
        ...

    def set_volume(self, percent: int) -> None: ...

    def get_mute(self) -> bool:
        """True while the microphone is muted (nothing heard is sent)."""
        ...

    def set_mute(self, muted: bool) -> None: ...

    def set_leds(self, color: str, brightness: float) -> None:
        """Show ``color`` ("#rrggbb", lower case) at ``brightness`` 0..1."""
        ...

    def status(self) -> dict[str, Any]:
        """What the device can say about itself: state, connection, board, today's cost…"""
        ...


@dataclass
class MemoryControls:
    """A ``DeviceControls`` that only remembers what it was told (tests and the demo)."""

    volume: int = 70
    muted: bool = False
    color: str = "#000000"
    brightness: float = 0.0
    state: str = "idle"
    connection: str = "connected"
    board: str = "fake"
    cost_today: str | None = None

    def get_volume(self) -> int:
        return self.volume

    def set_volume(self, percent: int) -> None:
        self.volume = percent

    def get_mute(self) -> bool:
        return self.muted

    def set_mute(self, muted: bool) -> None:
        self.muted = muted

    def set_leds(self, color: str, brightness: float) -> None:
        self.color, self.brightness = color, brightness

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "state": self.state, "connection": self.connection, "board": self.board,
        }  # fmt: skip
        if self.cost_today is not None:
            status["cost_today"] = self.cost_today
        return status


def local_now() -> datetime:
    """The wall clock in the device's own time zone: the default clock of the ``time`` tool."""
    return datetime.now().astimezone()


def _volume_tool(controls: DeviceControls) -> Tool:
    def handle(arguments: dict[str, Any]) -> dict[str, Any]:
        action = arguments["action"]
        percent = arguments.get("percent")
        if action == "set":
            if percent is None:
                raise ToolArgumentError("arguments.percent: is required when action is set")
            controls.set_volume(percent)
        elif action in ("up", "down"):
            step = VOLUME_STEP_PERCENT if percent is None else percent
            sign = 1 if action == "up" else -1
            controls.set_volume(min(100, max(0, controls.get_volume() + sign * step)))
        return {"volume": controls.get_volume()}

    return Tool(
        "volume",
        "Read or change the speaker's playback volume (percent, 0 to 100). "
        "Use action get to read it, set with percent to choose it, or up/down to step it "
        f"(by percent, default {VOLUME_STEP_PERCENT}).",
        {
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["get", "set", "up", "down"]},
                "percent": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 100,
                    "description": "set: the new volume; up/down: the step",
                },
            },
            "required": ["action"],
            "additionalProperties": False,
        },
        handle,
    )


def _mute_tool(controls: DeviceControls) -> Tool:
    def handle(arguments: dict[str, Any]) -> dict[str, Any]:
        if "muted" in arguments:
            controls.set_mute(arguments["muted"])
        return {"microphone_muted": controls.get_mute()}

    return Tool(
        "mute",
        "Mute or unmute the speaker's microphone, or read whether it is muted (leave out "
        "muted). While muted the speaker hears nothing, so it cannot be unmuted by voice: "
        "tell the user to hold the talk button on the speaker until it chimes, or to use "
        "its mute button or switch.",
        {
            "type": "object",
            "properties": {"muted": {"type": "boolean", "description": "true mutes"}},
            "additionalProperties": False,
        },
        handle,
    )


def led_color(name: str) -> str:
    """``#rrggbb`` for a colour name from ``LED_COLORS`` or a ``#rrggbb`` value."""
    key = " ".join(name.lower().replace("_", " ").split())
    if key in LED_COLORS:
        return LED_COLORS[key]
    if _HEX_COLOR.fullmatch(name.strip()):
        return name.strip().lower()
    names = ", ".join(LED_COLORS)
    raise ToolArgumentError(
        f"arguments.color: {name!r} is not a known colour; use one of {names}, or #rrggbb"
    )


def _leds_tool(controls: DeviceControls) -> Tool:
    def handle(arguments: dict[str, Any]) -> dict[str, Any]:
        hex_color = led_color(arguments["color"])
        brightness = float(arguments.get("brightness", 1.0))
        controls.set_leds(hex_color, brightness)
        return {"color": hex_color, "brightness": brightness}

    return Tool(
        "leds",
        "Light the speaker's LEDs in one colour. color is one of "
        f"{', '.join(LED_COLORS)}, or #rrggbb; brightness is 0 to 1 (default 1).",
        {
            "type": "object",
            "properties": {
                "color": {"type": "string", "description": "a colour name or #rrggbb"},
                "brightness": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["color"],
            "additionalProperties": False,
        },
        handle,
    )


def _zone_name(zone: tzinfo | None, moment: datetime) -> str:
    key = getattr(zone, "key", None)  # zoneinfo names its zone, e.g. Europe/Berlin
    return key if isinstance(key, str) else moment.tzname() or "local"


def _time_tool(now: Callable[[], datetime]) -> Tool:
    def handle(arguments: dict[str, Any]) -> dict[str, Any]:
        moment = now()
        if moment.tzinfo is None:
            moment = moment.astimezone()
        offset = moment.strftime("%z")
        return {
            "date": moment.strftime("%Y-%m-%d"),
            "time": moment.strftime("%H:%M"),
            "weekday": moment.strftime("%A"),
            "timezone": _zone_name(moment.tzinfo, moment),
            "utc_offset": f"{offset[:3]}:{offset[3:]}",
        }

    return Tool(
        "time",
        "The local date, time, weekday and time zone where the speaker is.",
        _NO_PARAMETERS,
        handle,
    )


def _status_tool(controls: DeviceControls) -> Tool:
    def handle(arguments: dict[str, Any]) -> dict[str, Any]:
        status = controls.status()
        status.setdefault("volume", controls.get_volume())
        status.setdefault("microphone_muted", controls.get_mute())
        return status

    return Tool(
        "status",
        "The speaker's own status: its state, its connection, its board, its volume, "
        "whether the microphone is muted, and what today's answers have cost.",
        _NO_PARAMETERS,
        handle,
    )


def device_tools(
    controls: DeviceControls,
    enabled: Sequence[str] = DEVICE_TOOL_NAMES,
    now: Callable[[], datetime] = local_now,
    camera: CameraSetup | None = None,
) -> list[Tool]:
    """The enabled device tools, in ``DEVICE_TOOL_NAMES`` order.

    ``look`` needs ``camera``: without one it is left out even when enabled, since
    a speaker without a camera has nothing to look with.

    Raises:
        ValueError: ``enabled`` names a tool the device does not have.
    """
    unknown = [name for name in enabled if name not in DEVICE_TOOL_NAMES]
    if unknown:
        raise ValueError(
            f"unknown device tools: {', '.join(unknown)}; known: {', '.join(DEVICE_TOOL_NAMES)}"
        )
    makers: dict[str, Callable[[], Tool]] = {
        "volume": lambda: _volume_tool(controls),
        "mute": lambda: _mute_tool(controls),
        "leds": lambda: _leds_tool(controls),
        "time": lambda: _time_tool(now),
        "status": lambda: _status_tool(controls),
    }
    tools = [makers[name]() for name in DEVICE_TOOL_NAMES if name in enabled and name != "look"]
    if camera is not None and "look" in enabled:
        from device.look import look_tool  # Pillow loads only on a speaker that can look

        tools.append(look_tool(camera))
    return tools
