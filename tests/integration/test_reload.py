"""SIGHUP re-reads the config: new realtime settings start a new session,
settings bound to the open hardware wait for a restart, a bad file changes nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from device.app import Daemon
from device.cli import _reload
from device.config import load_config, with_overrides
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from hw.factory import HardwareRequest, build_fake


def voices_configured(sim: RealtimeSimulator) -> list[str]:
    return [
        e["session"]["audio"]["output"]["voice"]
        for e in sim.received
        if e.get("type") == "session.update"
    ]


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll state that other tasks change (bounded: fails after ``timeout_s``)."""
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def test_new_voice_starts_a_new_session_with_it(tmp_path: Path) -> None:
    async def body() -> None:
        async with RealtimeSimulator(SimulatorOptions(voice_engine="tone")) as sim:
            config = with_overrides(
                load_config(None),
                device={"hardware": "fake", "state_dir": str(tmp_path)},
                realtime={"url": sim.url, "voice": "marin"},
            )
            hardware = build_fake(HardwareRequest("fake"), speed=4.0)
            daemon = Daemon(config, hardware, "sk-test-reload")
            stop = asyncio.Event()
            task = asyncio.create_task(daemon.run(stop))
            try:
                await wait_until(lambda: daemon.state.value == "idle")
                pending = daemon.reload(with_overrides(config, realtime={"voice": "cedar"}))
                assert pending == []
                await wait_until(lambda: voices_configured(sim) == ["marin", "cedar"])
                assert sim.connections == 2
                await wait_until(lambda: daemon.state.value == "idle")
            finally:
                stop.set()
                await task
                hardware.close()

    asyncio.run(body())


def test_hardware_settings_wait_for_a_restart(tmp_path: Path) -> None:
    config = with_overrides(
        load_config(None), device={"hardware": "fake", "state_dir": str(tmp_path)}
    )
    daemon = Daemon(config, build_fake(HardwareRequest("fake")), "sk-test")
    changed = with_overrides(config, audio={"block_ms": 10}, vad={"hangover_ms": 500})
    assert daemon.reload(changed) == ["audio.block_ms"]
    assert daemon.config.vad.hangover_ms == 500


def test_bad_file_keeps_the_running_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "edgevoice.toml"
    path.write_text(
        f'[device]\nhardware = "fake"\nstate_dir = "{tmp_path}"\n[realtime]\nvoice = "marin"\n'
    )
    daemon = Daemon(load_config(path), build_fake(HardwareRequest("fake")), "sk-test")
    path.write_text('[realtime]\nvoice = "nobody"\n')
    with caplog.at_level(logging.INFO):
        _reload(daemon, path)
    assert daemon.config.realtime.voice == "marin"
    assert "config reload failed" in caplog.text and "realtime.voice" in caplog.text
    path.write_text(
        f'[device]\nhardware = "fake"\nstate_dir = "{tmp_path}"\n[realtime]\nvoice = "cedar"\n'
    )
    with caplog.at_level(logging.INFO):
        _reload(daemon, path)
    assert daemon.config.realtime.voice == "cedar"
    assert "config reloaded" in caplog.text


def test_reload_to_a_missing_echo_canceller_keeps_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import device.audio.aec as aec

    def missing(name: str, rate_hz: int, **options: object) -> object:
        if name == "webrtc":
            raise aec.AecUnavailable("install edgevoice[webrtc]")
        return real(name, rate_hz, **options)

    real = aec.make_canceller
    monkeypatch.setattr("device.audio.capture.make_canceller", missing)
    path = tmp_path / "edgevoice.toml"
    path.write_text(f'[device]\nhardware = "fake"\nstate_dir = "{tmp_path}"\n')
    daemon = Daemon(load_config(path), build_fake(HardwareRequest("fake")), "sk-test")
    capture = daemon.capture
    path.write_text(
        f'[device]\nhardware = "fake"\nstate_dir = "{tmp_path}"\n'
        '[audio]\naec = "webrtc"\n[realtime]\nvoice = "cedar"\n'
    )
    _reload(daemon, path)
    assert "config reload failed" in caplog.text and "edgevoice[webrtc]" in caplog.text
    assert daemon.capture is capture
    assert daemon.config.audio.aec == "ours" and daemon.config.realtime.voice == "marin"
