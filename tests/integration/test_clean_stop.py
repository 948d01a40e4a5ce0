"""Stopping the daemon is clean: the session ends with close code 1000 and the
LEDs go dark."""

from __future__ import annotations

import asyncio
from pathlib import Path

from device.app import Daemon
from device.config import load_config, with_overrides
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from hw.factory import HardwareRequest, build_fake
from hw.panel_fake import FakeLeds
from hw.ports import OFF


def test_stop_closes_the_websocket_with_1000_and_turns_leds_off(tmp_path: Path) -> None:
    async def body() -> None:
        async with RealtimeSimulator(SimulatorOptions(voice_engine="tone")) as sim:
            config = with_overrides(
                load_config(None),
                device={"hardware": "fake", "state_dir": str(tmp_path)},
                realtime={"url": sim.url},
            )
            hardware = build_fake(HardwareRequest("fake"), speed=4.0)
            daemon = Daemon(config, hardware, "sk-test-stop")
            stop = asyncio.Event()
            task = asyncio.create_task(daemon.run(stop))
            for _ in range(500):  # bounded wait for the session to be configured
                if daemon.state.value == "idle":
                    break
                await asyncio.sleep(0.02)
            assert daemon.state.value == "idle"
            stop.set()
            await asyncio.wait_for(task, 5)
            for _ in range(100):  # the server notices the close a moment later
                if sim.close_codes:
                    break
                await asyncio.sleep(0.02)
            assert sim.close_codes == [1000]
            leds = hardware.leds
            assert isinstance(leds, FakeLeds)
            assert leds.frames[-1].pixels == (OFF,) * leds.count
            hardware.close()

    asyncio.run(body())
