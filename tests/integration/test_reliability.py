"""Faults the fault matrix and the soak do not cover, each on virtual time against the
real daemon on fake hardware: no network at start, a name that does not resolve, a
slow server, a full disk, and the rest of a reply playing on after its connection
broke. ``tests/soak/`` has the rig and the virtual-time loop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
from pathlib import Path

import pytest

from device import statefile
from device.demo import shipped_question
from device.realtime.sim_faults import parse_fault
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from device.state import State
from hw.fake import read_wav_mono
from tests.soak.rig import WATCHDOG_S, Rig, daemon_rig, watching_logs
from tests.soak.virtual_time import run_virtual

KEY = "sk-test-reliability"
OPTIONS = SimulatorOptions(voice_engine="tone", reply_text="Okay.")
QUIET = {"listen": {"mode": "always"}, "audio": {"aec": "none"}}  # as in the soak
RECONNECTING = re.compile(r"reconnecting in ([0-9.]+) s")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                   "all_proxy", "WSS_PROXY", "wss_proxy")  # fmt: skip


def virtual(body: object) -> None:
    run_virtual(body, real_limit_s=60)  # type: ignore[arg-type]


async def ask(rig: Rig, *specs: str) -> None:
    """A question with these faults armed, answered in full."""
    replies = rig.daemon.replies_finished
    for spec in specs:
        rig.sim.inject(parse_fault(spec))
    question = read_wav_mono(shipped_question(), rig.duplex.format.rate_hz)
    rig.duplex.feed(question, at_s=rig.duplex.time_s + 0.5)
    await rig.until(lambda: rig.daemon.replies_finished > replies, 60, "the reply")


def delays_s(messages: list[str]) -> list[float]:
    return [float(m.group(1)) for text in messages if (m := RECONNECTING.search(text))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_no_network_at_start_then_the_service_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused connections while the network is down: OFFLINE, backing off, audio alive;
    once the service answers, the next retry connects."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}/v1/realtime"

    async def body() -> None:
        async with daemon_rig(
            monkeypatch, tmp_path, KEY, OPTIONS, realtime={"url": url}, **QUIET
        ) as rig:
            messages: list[str] = []
            handler = logging.Handler()
            handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
            logging.getLogger("device.link").addHandler(handler)
            try:
                await rig.until(lambda: len(delays_s(messages)) >= 4, 120, "four refusals")
                assert rig.daemon.state is State.OFFLINE and rig.daemon.stats.connections == 0
                assert "ConnectionRefusedError" in "\n".join(messages)
                first = delays_s(messages)
                assert first[-1] > first[0]  # the backoff grows
                async with RealtimeSimulator(OPTIONS, port=port) as service:
                    await rig.until(rig.settled, 120, "the session once the service is up")
                    assert service.connections == 1
            finally:
                logging.getLogger("device.link").removeHandler(handler)
            assert rig.notifier.longest_watchdog_gap_s(0.0, rig.now_s) < WATCHDOG_S

    virtual(body)


def test_a_host_name_that_does_not_resolve_is_a_network_fault_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PROXY_VARIABLES:  # a proxy would resolve the name itself
        monkeypatch.delenv(name, raising=False)

    async def body() -> None:
        url = "wss://edgevoice.invalid/v1/realtime"  # RFC 2606: never resolves
        with watching_logs(KEY) as logs:
            async with daemon_rig(
                monkeypatch, tmp_path, KEY, OPTIONS, realtime={"url": url}, **QUIET
            ) as rig:
                await rig.until(lambda: logs.levels["WARNING"] >= 3, 120, "three failures")
                assert rig.daemon.state is State.OFFLINE
                assert not rig.daemon.faults  # the network's fault: no FAULT, no slow retry
                assert rig.sim.handshakes == 0
        assert logs.leaks == []

    virtual(body)


def test_a_slow_server_finishes_the_reply_on_the_same_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        async with daemon_rig(monkeypatch, tmp_path, KEY, OPTIONS, **QUIET) as rig:
            await rig.until(rig.settled, 30, "the session")
            await ask(rig, "stall:10@response.output_audio.delta#3")
            await rig.until(rig.settled, 30, "idle")
            assert rig.sim.faults_fired == ["stall:10@response.output_audio.delta#3"]
            assert rig.sim.connections == 1 and rig.daemon.stats.connections == 1

    virtual(body)


def test_the_rest_of_a_broken_reply_plays_without_leaving_the_device_speaking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection ends just after the reply arrived: its audio plays on while the
    link reconnects, and the new session must not take it for its own turn."""

    async def body() -> None:
        async with daemon_rig(monkeypatch, tmp_path, KEY, OPTIONS, **QUIET) as rig:
            await rig.until(rig.settled, 30, "the session")
            replies = rig.daemon.replies_finished
            rig.sim.inject(parse_fault("expire@response.done"))
            question = read_wav_mono(shipped_question(), rig.duplex.format.rate_hz)
            rig.duplex.feed(question, at_s=rig.duplex.time_s + 0.5)
            await rig.until(lambda: rig.sim.connections == 2, 60, "the new connection")
            await rig.until(lambda: rig.daemon.playback.queued_frames == 0, 30, "the rest")
            await asyncio.sleep(1.0)
            assert rig.daemon.state is State.IDLE
            assert rig.daemon.replies_finished == replies  # cut by its fault, not finished

    virtual(body)


def test_a_full_disk_keeps_usage_and_volume_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    saves: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: saves.append(record.getMessage())  # type: ignore[method-assign]

    async def body() -> None:
        async with daemon_rig(monkeypatch, tmp_path, KEY, OPTIONS, **QUIET) as rig:
            await rig.until(rig.settled, 30, "the session")
            with monkeypatch.context() as disk:
                disk.setattr(statefile, "_write_all", no_space)
                await ask(rig)  # its cost is saved
                rig.daemon.controls.set_volume(35)
                await rig.until(lambda: len(saves) >= 2, 10, "the failed saves")
                assert rig.daemon.controls.get_volume() == 35  # applied all the same
                assert rig.daemon.usage.save_failures >= 1
                await ask(rig)  # the device goes on answering
            await rig.until(rig.settled, 30, "idle")
            rig.daemon.controls.set_volume(36)  # space again: saved

    logging.getLogger("device.statefile").addHandler(handler)
    try:
        virtual(body)
    finally:
        logging.getLogger("device.statefile").removeHandler(handler)
    assert any("usage.json: No space left on device" in text for text in saves), saves
    assert any("settings.json: No space left on device" in text for text in saves), saves
    assert '"volume_percent": 36' in (tmp_path / "settings.json").read_text(encoding="utf-8")
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"
