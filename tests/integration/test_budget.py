"""Cost accounting end to end: each reply's usage is counted and saved, and a
spent daily budget stops the microphone from being streamed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from device.app import Daemon
from device.config import load_config, with_overrides
from device.demo import shipped_question
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from hw.factory import HardwareRequest, build_fake
from hw.fake import FakeDuplex
from tests.integration.daemon_run import REPLY_WITHIN_S, running, until


def appends(sim: RealtimeSimulator) -> int:
    return sum(1 for e in sim.received if e.get("type") == "input_audio_buffer.append")


def test_spent_budget_saves_totals_and_stops_streaming(tmp_path: Path) -> None:
    async def body() -> None:
        async with RealtimeSimulator(SimulatorOptions(voice_engine="tone")) as sim:
            config = with_overrides(
                load_config(None),
                device={"hardware": "fake", "state_dir": str(tmp_path)},
                realtime={"url": sim.url},
                cost={"daily_budget_usd": 0.000001},  # the first reply spends it
                # Every word is a turn and no AI disclosure is said: the one reply is the answer.
                listen={"mode": "always"},
                link={"disclosure": ""},
            )
            hardware = build_fake(HardwareRequest("fake"), speed=4.0)
            duplex = hardware.duplex
            assert isinstance(duplex, FakeDuplex)
            duplex.feed_wav(shipped_question(), at_s=0.5)
            duplex.feed_wav(shipped_question(), at_s=9.0)  # asked again after the reply
            daemon = Daemon(config, hardware, "sk-test-budget", today=lambda: "2026-11-24")
            async with running(daemon, hardware):
                await asyncio.wait_for(daemon.wait_for_replies(1), REPLY_WITHIN_S)
                assert daemon.usage.paused
                sent_before = appends(sim)
                await until(lambda: duplex.time_s > 13.0, "the second question", within_s=20.0)
                assert appends(sim) == sent_before  # not one byte of the second question
                assert daemon.stats.chunks_dropped_budget > 0
                assert "budget spent" in daemon._status_line()
        saved = json.loads((tmp_path / "usage.json").read_text())
        assert saved["day"] == "2026-11-24"
        assert saved["responses"] == 1
        assert saved["cost_usd"] > 0.000001

    asyncio.run(body())
