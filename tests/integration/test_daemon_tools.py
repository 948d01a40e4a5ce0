"""The model's tools act on the running daemon: a spoken question, a function
call from the simulator, the tool changes the device, the answer is spoken."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from device.app import Daemon
from device.config import load_config, with_overrides
from device.controls import volume_gain
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from hw.factory import HardwareRequest, build_fake
from hw.ports import Rgb
from tests.contract.oracle import client_problems, server_problems
from tests.integration.daemon_run import answer_the_question

Check = Callable[[Daemon], bool]


def run_with_tool_call(
    tmp_path: Path, call: tuple[str, str], tools: list[str]
) -> tuple[Daemon, RealtimeSimulator]:
    async def body() -> tuple[Daemon, RealtimeSimulator]:
        options = SimulatorOptions(voice_engine="tone", tool_call=call)
        async with RealtimeSimulator(options) as sim:
            config = with_overrides(
                load_config(None),
                device={"hardware": "fake", "state_dir": str(tmp_path)},
                realtime={"url": sim.url},
                tools={"enabled": tools},
                # Every word is a turn and no AI disclosure is said: the one reply is the answer.
                listen={"mode": "always"},
                link={"disclosure": ""},
            )
            hardware = build_fake(HardwareRequest("fake"), speed=4.0)
            daemon = Daemon(config, hardware, "sk-test-tools", today=lambda: "2026-11-24")
            await answer_the_question(daemon, hardware)
            return daemon, sim

    return asyncio.run(body())


ALL = ["volume", "mute", "leds", "time", "status"]


@pytest.mark.parametrize(
    ("call", "check"),
    [
        (
            ("volume", '{"action": "set", "percent": 30}'),
            lambda d: d.controls.volume_percent == 30 and d.reply.gain == volume_gain(30),
        ),
        (
            ("mute", '{"muted": true}'),
            lambda d: d.controls.mic_muted and "microphone muted" in d._status_line(),
        ),
        (
            ("leds", '{"color": "blue", "brightness": 0.5}'),
            lambda d: d.controls.led_color == (Rgb(0, 80, 255), 0.5),
        ),
        (("status", "{}"), lambda d: True),
    ],
)
def test_tool_changes_the_device_and_the_answer_is_spoken(
    tmp_path: Path, call: tuple[str, str], check: Check
) -> None:
    daemon, sim = run_with_tool_call(tmp_path, call, ALL)
    assert check(daemon)
    outputs = [e["item"] for e in sim.received if e["type"] == "conversation.item.create"]
    assert [o["type"] for o in outputs] == ["function_call_output"]
    assert "error" not in json.loads(outputs[0]["output"])
    done = [e["response"]["status"] for e in sim.sent if e["type"] == "response.done"]
    assert done == ["completed", "completed"]  # the call, then the spoken answer
    assert not [e for e in sim.sent if e["type"] == "error"]
    assert [p for e in sim.sent for p in server_problems(e)] == []
    assert [p for e in sim.received for p in client_problems(e)] == []
    update = next(e for e in sim.received if e["type"] == "session.update")
    assert [t["name"] for t in update["session"]["tools"]] == ALL


def test_tools_not_enabled_are_not_offered_nor_run(tmp_path: Path) -> None:
    daemon, sim = run_with_tool_call(tmp_path, ("mute", '{"muted": true}'), ["time"])
    update = next(e for e in sim.received if e["type"] == "session.update")
    assert [t["name"] for t in update["session"]["tools"]] == ["time"]
    assert not daemon.controls.mic_muted


def test_volume_set_by_voice_is_remembered_across_restarts(tmp_path: Path) -> None:
    run_with_tool_call(tmp_path, ("volume", '{"action": "set", "percent": 30}'), ALL)
    assert json.loads((tmp_path / "settings.json").read_text()) == {"volume_percent": 30}

    async def restart() -> Daemon:
        config = with_overrides(
            load_config(None), device={"hardware": "fake", "state_dir": str(tmp_path)}
        )
        daemon = Daemon(config, build_fake(HardwareRequest("fake")), "sk-test")
        await daemon.controls.load()
        return daemon

    daemon = asyncio.run(restart())
    assert daemon.controls.volume_percent == 30
    assert daemon.reply.gain == volume_gain(30)


def test_a_broken_settings_file_falls_back_to_the_configured_volume(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text("{not json")

    async def start() -> Daemon:
        config = with_overrides(
            load_config(None),
            audio={"volume_percent": 55},
            device={"hardware": "fake", "state_dir": str(tmp_path)},
        )
        daemon = Daemon(config, build_fake(HardwareRequest("fake")), "sk-test")
        await daemon.controls.load()
        return daemon

    daemon = asyncio.run(start())
    assert daemon.controls.volume_percent == 55
    assert daemon.reply.gain == volume_gain(55)
