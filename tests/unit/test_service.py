"""What systemd hears from the daemon: READY once, STATUS on change, and a
watchdog fed only while audio flows end to end.

The watchdog loop runs on asyncio with its sleeps shortened to a loop turn and
counters the test scripts, so every check happens at a known point; a script
that runs out ends the loop. The daemon tests at the end use the fake duplex in
real time, with every wait bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pytest

from device.app import Daemon
from device.audio.supervisor import AudioSupervisor
from device.config import load_config, with_overrides
from device.service import ServiceNotifier
from hw.factory import Hardware, HardwareRequest, build_fake
from hw.fake import FakeDuplex
from hw.panel_fake import FakeNotifier

PID = 4242
WATCHDOG_USEC = 20_000
PERIOD_S = WATCHDOG_USEC / 1_000_000 / 2
TIMEOUT_S = 10.0  # fails a hung test; never a measurement


def watched(usec: int = WATCHDOG_USEC, pid: int = PID) -> dict[str, str]:
    return {"WATCHDOG_USEC": str(usec), "WATCHDOG_PID": str(pid)}


class ScriptDone(Exception):
    """A scripted counter ran out: ends the watchdog loop at a known check."""


class Script:
    """A counter reading ``values`` in turn, then raising ScriptDone."""

    def __init__(self, values: Iterable[int]) -> None:
        self._values = iter(values)
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        try:
            return next(self._values)
        except StopIteration:
            raise ScriptDone() from None


def advancing() -> Callable[[], int]:
    return itertools.count().__next__


def never_read() -> int:
    raise AssertionError("the watchdog loop read a counter without a watchdog")


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Each sleep the watchdog loop asks for, served as one loop turn."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay_s: float) -> None:
        asked.append(delay_s)
        await real_sleep(0)

    # The asyncio module seen by device.service (which is the process-wide one).
    monkeypatch.setattr("device.service.asyncio.sleep", sleep)
    return asked


def run_watchdog(
    service: ServiceNotifier, callbacks: Callable[[], int], consumed: Callable[[], int]
) -> None:
    async def body() -> None:
        with pytest.raises(ScriptDone):
            await asyncio.wait_for(service.watchdog_loop(callbacks, consumed), TIMEOUT_S)

    asyncio.run(body())


# -- READY, STATUS, STOPPING ------------------------------------------------------------
def test_ready_is_sent_once() -> None:
    notifier = FakeNotifier()
    service = ServiceNotifier(notifier, env={}, pid=PID)
    for _ in range(3):
        service.ready()
    assert notifier.messages == ["READY=1"]


def test_status_is_sent_only_when_it_changes() -> None:
    notifier = FakeNotifier()
    service = ServiceNotifier(notifier, env={}, pid=PID)
    for text in [
        "offline, not connected",
        "offline, not connected",
        "idle, connected",
        "idle, connected",
        "offline, not connected",
    ]:
        service.status(text)
    assert notifier.messages == [
        "STATUS=offline, not connected",
        "STATUS=idle, connected",
        "STATUS=offline, not connected",
    ]


def test_stopping() -> None:
    notifier = FakeNotifier()
    ServiceNotifier(notifier, env={}, pid=PID).stopping()
    assert notifier.messages == ["STOPPING=1"]


# -- the watchdog interval --------------------------------------------------------------
def test_watchdog_interval_from_the_environment() -> None:
    assert ServiceNotifier(FakeNotifier(), env=watched(), pid=PID).watchdog_s == 0.02
    without_pid = {"WATCHDOG_USEC": str(WATCHDOG_USEC)}
    assert ServiceNotifier(FakeNotifier(), env=without_pid, pid=PID).watchdog_s == 0.02


@pytest.mark.parametrize(
    "env",
    [{}, watched(pid=PID + 1), {"WATCHDOG_USEC": "0"}, {"WATCHDOG_USEC": "soon"}],
    ids=["unset", "another-process", "zero", "malformed"],
)
def test_no_watchdog_means_the_loop_returns_at_once(env: dict[str, str]) -> None:
    notifier = FakeNotifier()
    service = ServiceNotifier(notifier, env=env, pid=PID)
    assert service.watchdog_s is None

    async def body() -> None:
        await asyncio.wait_for(service.watchdog_loop(never_read, never_read), TIMEOUT_S)

    asyncio.run(body())
    assert notifier.messages == []


# -- the watchdog loop ------------------------------------------------------------------
def test_pets_at_half_the_interval_while_both_counters_advance(sleeps: list[float]) -> None:
    notifier = FakeNotifier()
    service = ServiceNotifier(notifier, env=watched(), pid=PID)
    run_watchdog(service, Script(range(6)), advancing())
    # One initial read, then five checks: five pets; the sixth read ends the script.
    assert notifier.messages == ["WATCHDOG=1"] * 5
    assert service.watchdog_pets == 5
    assert sleeps == [PERIOD_S] * 6


def test_stalled_audio_callback_stops_the_pets(
    sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    notifier = FakeNotifier()
    service = ServiceNotifier(notifier, env=watched(), pid=PID)
    with caplog.at_level(logging.ERROR, logger="device.service"):
        # Checks: 1>0 pet, 2>1 pet, 2=2 stall, 2=2 stall, 3>2 pet (recovered).
        run_watchdog(service, Script([0, 1, 2, 2, 2, 3]), advancing())
    assert service.watchdog_pets == 3
    stalls = [r for r in caplog.records if "audio loop stalled" in r.getMessage()]
    assert len(stalls) == 2
    assert "callbacks 2" in stalls[0].getMessage()


def test_stalled_capture_loop_stops_the_pets(
    sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """Callbacks running while nothing consumes their blocks is a wedged daemon too."""
    notifier = FakeNotifier()
    service = ServiceNotifier(notifier, env=watched(), pid=PID)
    with caplog.at_level(logging.ERROR, logger="device.service"):
        # Checks: 1>0 pet, then 1=1 three times: stalled for good.
        run_watchdog(service, advancing(), Script([0, 1, 1, 1, 1]))
    assert notifier.messages == ["WATCHDOG=1"]
    stalls = [r for r in caplog.records if "audio loop stalled" in r.getMessage()]
    assert len(stalls) == 3
    assert all(r.levelno == logging.ERROR for r in stalls)


def test_a_stall_the_supervisor_knows_about_is_excused(sleeps: list[float]) -> None:
    """A device known to be gone and being reopened: restarting would not help."""
    notifier = FakeNotifier()
    service = ServiceNotifier(notifier, env=watched(), pid=PID)
    excused = iter([False, False, True, True, False])

    async def body() -> None:
        with pytest.raises(ScriptDone):
            await asyncio.wait_for(
                service.watchdog_loop(
                    Script([0, 1, 1, 1, 1, 1]), advancing(), excused=lambda: next(excused)
                ),
                TIMEOUT_S,
            )

    asyncio.run(body())
    # Checks: 1>0 pet; stall; stall excused pet; stall excused pet; stall.
    assert service.watchdog_pets == 3


def test_nothing_flowing_from_the_start_never_pets(sleeps: list[float]) -> None:
    notifier = FakeNotifier()
    service = ServiceNotifier(notifier, env=watched(), pid=PID)
    run_watchdog(service, Script([0] * 5), Script([0] * 5))
    assert notifier.messages == []


# -- the daemon's wiring ----------------------------------------------------------------
@dataclass
class WatchedNotifier:
    """Records notifications and lets a test await the one it expects."""

    messages: list[str] = field(default_factory=list)
    _changed: asyncio.Event | None = None

    def notify(self, message: str) -> bool:
        self.messages.append(message)
        if self._changed is not None:
            self._changed.set()
        return True

    def count(self, message: str) -> int:
        return self.messages.count(message)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        async def wait() -> None:
            while not condition():
                self._changed = asyncio.Event()
                await self._changed.wait()

        await asyncio.wait_for(wait(), TIMEOUT_S)


class StallLog(logging.Handler):
    """Counts the watchdog's stall reports as they are logged."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self._changed: asyncio.Event | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if "audio loop stalled" in record.getMessage():
            self.count += 1
            if self._changed is not None:
                self._changed.set()

    async def wait_for_count(self, count: int) -> None:
        async def wait() -> None:
            while self.count < count:
                self._changed = asyncio.Event()
                await self._changed.wait()

        await asyncio.wait_for(wait(), TIMEOUT_S)


@pytest.fixture
def stall_log() -> Iterator[StallLog]:
    handler = StallLog()
    logger = logging.getLogger("device.service")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A local URL whose connections are refused: the port is bound, never listened on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}/v1/realtime"


def offline_daemon(
    monkeypatch: pytest.MonkeyPatch, url: str, watchdog_usec: int
) -> tuple[Daemon, Hardware]:
    """A daemon on fake hardware with nothing to connect to."""
    monkeypatch.setenv("WATCHDOG_USEC", str(watchdog_usec))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    state_dir = tempfile.mkdtemp(prefix="edgevoice-state-")  # never the device's own
    config = with_overrides(
        load_config(None),
        device={"hardware": "fake", "state_dir": state_dir},
        realtime={"url": url},
    )
    hardware = build_fake(HardwareRequest("fake"))
    hardware.notifier = WatchedNotifier()
    return Daemon(config, hardware, "sk-test-service"), hardware


def test_ready_only_after_audio_flows(
    monkeypatch: pytest.MonkeyPatch, stall_log: StallLog, refused_url: str
) -> None:
    daemon, hardware = offline_daemon(monkeypatch, refused_url, watchdog_usec=40_000)
    notifier = hardware.notifier
    assert isinstance(notifier, WatchedNotifier)
    duplex = hardware.duplex
    assert isinstance(duplex, FakeDuplex)
    # The stream is opened but its clock is the test's: no block until step().
    monkeypatch.setattr(duplex, "start", duplex.set_callback)

    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            # Two watchdog checks with no audio at all: running, but not ready.
            await stall_log.wait_for_count(2)
            assert "READY=1" not in notifier.messages
            assert "WATCHDOG=1" not in notifier.messages
            assert notifier.messages[0].startswith("STATUS=")
            duplex.step(2)
            await notifier.wait_until(lambda: "READY=1" in notifier.messages)
        finally:
            stop.set()
            await asyncio.wait_for(task, TIMEOUT_S)

    try:
        asyncio.run(body())
    finally:
        hardware.close()
    assert notifier.count("READY=1") == 1
    assert notifier.messages.index("STOPPING=1") > notifier.messages.index("READY=1")


def test_unplugged_audio_stops_the_watchdog(
    monkeypatch: pytest.MonkeyPatch, stall_log: StallLog, refused_url: str
) -> None:
    daemon, hardware = offline_daemon(monkeypatch, refused_url, watchdog_usec=200_000)
    notifier = hardware.notifier
    assert isinstance(notifier, WatchedNotifier)
    duplex = hardware.duplex
    assert isinstance(duplex, FakeDuplex)

    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await notifier.wait_until(lambda: notifier.count("WATCHDOG=1") >= 2)
            pets_at_unplug = notifier.count("WATCHDOG=1")
            stalls_at_unplug = stall_log.count
            duplex.unplug()
            await stall_log.wait_for_count(stalls_at_unplug + 1)
            # Blocks that arrived just before the unplug may earn one last pet.
            pets_at_first_stall = notifier.count("WATCHDOG=1")
            assert pets_at_first_stall <= pets_at_unplug + 1
            await stall_log.wait_for_count(stalls_at_unplug + 2)
            assert notifier.count("WATCHDOG=1") == pets_at_first_stall
        finally:
            stop.set()
            await asyncio.wait_for(task, TIMEOUT_S)

    try:
        asyncio.run(body())
    finally:
        hardware.close()
    assert notifier.count("READY=1") == 1


def test_a_device_gone_for_good_is_an_audio_fault_and_the_watchdog_resumes(
    monkeypatch: pytest.MonkeyPatch, refused_url: str
) -> None:
    """Unplugged: the pets stop until the supervisor declares the fault, then resume
    (the loop is alive and reopening; a restart would not bring the device back)."""
    daemon, hardware = offline_daemon(monkeypatch, refused_url, watchdog_usec=200_000)
    daemon.audio = AudioSupervisor(check_period_s=0.05, stall_periods=2)
    notifier = hardware.notifier
    assert isinstance(notifier, WatchedNotifier)
    duplex = hardware.duplex
    assert isinstance(duplex, FakeDuplex)

    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await notifier.wait_until(lambda: notifier.count("WATCHDOG=1") >= 2)
            duplex.unplug()
            await notifier.wait_until(lambda: "audio" in daemon.faults)
            pets_at_fault = notifier.count("WATCHDOG=1")
            await notifier.wait_until(lambda: notifier.count("WATCHDOG=1") >= pets_at_fault + 2)
            assert daemon.state.value == "fault"
            assert any("fault: audio" in m for m in notifier.messages if m.startswith("STATUS="))
        finally:
            stop.set()
            await asyncio.wait_for(task, TIMEOUT_S)

    try:
        asyncio.run(body())
    finally:
        hardware.close()
