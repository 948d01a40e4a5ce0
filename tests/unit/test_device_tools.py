"""The speaker's own tools, called the way the model calls them: by name with JSON."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from device.device_tools import (
    DEVICE_TOOL_NAMES,
    LED_COLORS,
    DeviceControls,
    MemoryControls,
    device_tools,
    led_color,
    local_now,
)
from device.tools import ToolArgumentError, ToolRegistry

FRIDAY = datetime(2025, 3, 14, 9, 5, tzinfo=ZoneInfo("Europe/Berlin"))


def registry(controls: MemoryControls, now: datetime = FRIDAY) -> ToolRegistry:
    return ToolRegistry(device_tools(controls, DEVICE_TOOL_NAMES, lambda: now), timeout_s=1)


def call(controls: MemoryControls, name: str, arguments: dict[str, Any] | str) -> Any:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return json.loads(asyncio.run(registry(controls).call(name, text)))


def test_memory_controls_are_device_controls() -> None:
    controls: DeviceControls = MemoryControls()
    assert controls.get_volume() == 70


def test_every_tool_by_default_in_a_fixed_order() -> None:
    # "look" needs a camera: without one it is left out even when enabled
    without_camera = [name for name in DEVICE_TOOL_NAMES if name != "look"]
    assert [t.name for t in device_tools(MemoryControls())] == without_camera
    picked = device_tools(MemoryControls(), ["status", "volume"], local_now)
    assert [t.name for t in picked] == ["volume", "status"]
    assert device_tools(MemoryControls(), []) == []


def test_an_unknown_tool_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown device tools: radio; known: volume"):
        device_tools(MemoryControls(), ["volume", "radio"])


def test_definitions_are_ga_function_tools_with_descriptions() -> None:
    for definition in registry(MemoryControls()).definitions():
        assert definition["type"] == "function"
        assert len(definition["description"]) > 20
        assert definition["parameters"]["type"] == "object"
        assert definition["parameters"]["additionalProperties"] is False


# -- volume -------------------------------------------------------------------------------


def test_volume_set_and_get() -> None:
    controls = MemoryControls(volume=70)
    assert call(controls, "volume", {"action": "set", "percent": 30}) == {"volume": 30}
    assert controls.volume == 30
    assert call(controls, "volume", {"action": "get"}) == {"volume": 30}


def test_volume_steps_up_and_down_within_bounds() -> None:
    controls = MemoryControls(volume=95)
    assert call(controls, "volume", {"action": "up"}) == {"volume": 100}
    assert call(controls, "volume", {"action": "down", "percent": 25}) == {"volume": 75}
    controls.volume = 5
    assert call(controls, "volume", {"action": "down"}) == {"volume": 0}


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"action": "set"}, "arguments.percent: is required when action is set"),
        ({"action": "set", "percent": 120}, "arguments.percent: 120 is above the maximum 100"),
        ({"action": "louder"}, 'arguments.action: "louder" is not one of "get", "set"'),
        ({"percent": 30}, "arguments.action: is required"),
    ],
)
def test_volume_refuses_bad_arguments(arguments: dict[str, Any], error: str) -> None:
    controls = MemoryControls(volume=70)
    assert call(controls, "volume", arguments)["error"].startswith(error)
    assert controls.volume == 70


# -- mute ---------------------------------------------------------------------------------


def test_mute_on_off_and_read() -> None:
    controls = MemoryControls()
    assert call(controls, "mute", {"muted": True}) == {"microphone_muted": True}
    assert controls.muted is True
    assert call(controls, "mute", {}) == {"microphone_muted": True}
    assert call(controls, "mute", {"muted": False}) == {"microphone_muted": False}
    assert "boolean" in call(controls, "mute", {"muted": "yes"})["error"]


# -- leds ---------------------------------------------------------------------------------


def test_leds_take_a_named_colour_and_a_brightness() -> None:
    controls = MemoryControls()
    assert call(controls, "leds", {"color": "Blue", "brightness": 0.5}) == {
        "color": LED_COLORS["blue"],
        "brightness": 0.5,
    }
    assert (controls.color, controls.brightness) == (LED_COLORS["blue"], 0.5)


def test_leds_take_hex_and_default_to_full_brightness() -> None:
    controls = MemoryControls()
    assert call(controls, "leds", {"color": "#FF8800"}) == {"color": "#ff8800", "brightness": 1.0}
    assert call(controls, "leds", {"color": "warm_white", "brightness": 0}) == {
        "color": LED_COLORS["warm white"],
        "brightness": 0.0,
    }


@pytest.mark.parametrize("color", ["chartreuse", "#12345", "#gggggg", "ff0000", ""])
def test_leds_refuse_unknown_colours(color: str) -> None:
    controls = MemoryControls()
    error = call(controls, "leds", {"color": color})["error"]
    assert "is not a known colour" in error and "#rrggbb" in error
    assert controls.color == "#000000"
    with pytest.raises(ToolArgumentError):
        led_color(color)


def test_leds_brightness_is_bounded() -> None:
    assert (
        "above the maximum 1"
        in call(MemoryControls(), "leds", {"color": "red", "brightness": 2})["error"]
    )


# -- time ---------------------------------------------------------------------------------


def test_time_comes_from_the_injected_clock() -> None:
    assert call(MemoryControls(), "time", {}) == {
        "date": "2025-03-14",
        "time": "09:05",
        "weekday": "Friday",
        "timezone": "Europe/Berlin",
        "utc_offset": "+01:00",
    }


def test_time_with_a_fixed_offset_zone_names_its_abbreviation() -> None:
    moment = datetime(2025, 7, 1, 23, 59, tzinfo=timezone(timedelta(hours=-4), "EDT"))
    answer = json.loads(asyncio.run(registry(MemoryControls(), moment).call("time", "")))
    assert answer["timezone"] == "EDT" and answer["utc_offset"] == "-04:00"
    assert answer["weekday"] == "Tuesday"


def test_time_from_a_naive_clock_is_taken_as_local() -> None:
    naive = datetime(2025, 1, 2, 3, 4)
    answer = json.loads(asyncio.run(registry(MemoryControls(), naive).call("time", "{}")))
    assert answer["date"] == "2025-01-02" and answer["time"] == "03:04"


def test_time_takes_no_arguments() -> None:
    assert "is not allowed" in call(MemoryControls(), "time", {"zone": "UTC"})["error"]


def test_local_now_is_aware() -> None:
    assert local_now().tzinfo is not None


# -- status -------------------------------------------------------------------------------


def test_status_reports_state_connection_board_volume_mute_and_cost() -> None:
    controls = MemoryControls(
        volume=40, muted=True, state="speaking", board="respeaker-2mic", cost_today="0.12 USD"
    )
    assert call(controls, "status", {}) == {
        "state": "speaking",
        "connection": "connected",
        "board": "respeaker-2mic",
        "cost_today": "0.12 USD",
        "volume": 40,
        "microphone_muted": True,
    }
    assert "cost_today" not in call(MemoryControls(), "status", {})
