"""The soak rig: the real daemon on fake hardware, stepped by a virtual-time loop,
talking over 127.0.0.1 to the real simulator, with everything it emits watched.

Watched: every systemd notification with its (virtual) time, every log record
(counted, the serious ones kept, and each one formatted the ways the daemon can
format it, plain and for the journal, then searched for the API key), and every
exception the event loop would otherwise only print.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from device.app import Daemon
from device.config import load_config, with_overrides
from device.logs import JOURNAL_FORMAT, PLAIN_FORMAT, SyslogPrefixFormatter
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from device.state import State
from device.timeline import Timeline
from device.trace import Trace
from hw.factory import HardwareRequest, build_fake
from hw.fake import FakeDuplex
from hw.panel_fake import FakeLeds

WATCHDOG_S = 30.0  # WatchdogSec= of systemd/edgevoice.service
POLL_S = 0.1  # how often a wait looks at its condition (virtual time)


class RecordingNotifier:
    """Every sd_notify message with the loop time it was sent at."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, str]] = []

    def notify(self, message: str) -> bool:
        self.messages.append((asyncio.get_running_loop().time(), message))
        return True

    def times(self, message: str) -> list[float]:
        return [at for at, text in self.messages if text == message]

    def longest_watchdog_gap_s(self, start_s: float, end_s: float) -> float:
        """The longest time systemd would have waited for a WATCHDOG=1 in the run."""
        pets = [start_s, *self.times("WATCHDOG=1"), end_s]
        return max(later - earlier for earlier, later in itertools.pairwise(pets))


class LogWatch(logging.Handler):
    """Counts records by level, keeps the serious ones, and looks for ``secret``
    in every record as the plain, the journal-prefixed and the journald formatter
    render it (traceback included), and in its journal fields."""

    def __init__(self, secret: str, keep: int = 200) -> None:
        super().__init__(logging.DEBUG)
        self.secret = secret
        self.levels: Counter[str] = Counter()
        self.serious: deque[logging.LogRecord] = deque(maxlen=keep)
        self.leaks: list[str] = []
        self.formatters = [
            logging.Formatter(PLAIN_FORMAT),
            SyslogPrefixFormatter(PLAIN_FORMAT),
            logging.Formatter(JOURNAL_FORMAT),
        ]

    def emit(self, record: logging.LogRecord) -> None:
        self.levels[record.levelname] += 1
        if record.levelno >= logging.ERROR or record.exc_info:
            self.serious.append(record)
        texts = [formatter.format(record) for formatter in self.formatters]
        texts += [str(value) for key, value in vars(record).items() if key.isupper()]
        if any(self.secret in text for text in texts):
            self.leaks.append(f"{record.name}: {record.getMessage()[:200]}")


@contextlib.contextmanager
def watching_logs(secret: str, level: int = logging.INFO) -> Iterator[LogWatch]:
    """Route every record to a ``LogWatch`` alone, for the duration: pytest's own
    capture would keep every record of an hour-long run in memory."""
    watch = LogWatch(secret)
    root = logging.getLogger()
    old_level, old_handlers = root.level, root.handlers[:]
    root.handlers[:] = [watch]
    root.setLevel(level)
    try:
        yield watch
    finally:
        root.handlers[:] = old_handlers
        root.setLevel(old_level)


@dataclass
class Rig:
    sim: RealtimeSimulator
    daemon: Daemon
    duplex: FakeDuplex
    leds: FakeLeds
    notifier: RecordingNotifier
    task: asyncio.Task[None]
    loop_errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def now_s(self) -> float:
        return asyncio.get_running_loop().time()

    def settled(self) -> bool:
        """Idle, connected, nothing playing, nothing faulted: ready for the next turn."""
        daemon = self.daemon
        return (
            daemon.state is State.IDLE
            and daemon.link.ready
            and not daemon.faults
            and daemon.playback.queued_frames == 0
        )

    async def until(self, condition: Callable[[], bool], within_s: float, what: str) -> float:
        """Wait (virtual time) for ``condition``; returns when it held, fails past ``within_s``."""
        deadline = self.now_s + within_s
        while not condition():
            if self.task.done():
                self.task.result()  # the daemon's own exception, if it ended with one
                raise AssertionError(f"the daemon stopped while waiting for {what}")
            if self.now_s > deadline:
                raise AssertionError(
                    f"no {what} within {within_s:g} s (state {self.daemon.state.value}, "
                    f"faults {sorted(self.daemon.faults)}, online {self.daemon.online})"
                )
            await asyncio.sleep(POLL_S)
        return self.now_s


async def _run_blocks(duplex: FakeDuplex) -> None:
    """The sound card's clock: one block per block period of (virtual) time."""
    block_s = duplex.format.block_frames / duplex.format.rate_hz
    while True:
        duplex.step()
        await asyncio.sleep(block_s)


@contextlib.asynccontextmanager
async def daemon_rig(
    monkeypatch: pytest.MonkeyPatch,
    state_dir: Path,
    api_key: str,
    options: SimulatorOptions,
    *,
    trace: Trace | None = None,
    timeline: Timeline | None = None,
    **overrides: dict[str, Any],
) -> AsyncIterator[Rig]:
    """Start the simulator and the daemon (watchdog on, as under the unit); stop both.

    ``overrides`` are config sections, as ``with_overrides`` takes them."""
    monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG_S * 1_000_000)))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    # systemd's StateDirectory= makes it on a device
    await asyncio.to_thread(state_dir.mkdir, parents=True, exist_ok=True)
    async with RealtimeSimulator(options) as sim:
        sections = {"device": {"hardware": "fake", "state_dir": str(state_dir)}, **overrides}
        sections["realtime"] = {"url": sim.url, **sections.get("realtime", {})}
        config = with_overrides(load_config(None), **sections)
        hardware = build_fake(HardwareRequest("fake", block_ms=config.audio.block_ms))
        fmt = hardware.duplex.format
        duplex = FakeDuplex(
            fmt, mic_channels=hardware.board.mic_channels, paced=False, keep_output=False
        )
        hardware.duplex = duplex
        notifier = RecordingNotifier()
        hardware.notifier = notifier
        leds = FakeLeds(hardware.leds.count, clock=loop.time)  # stamped on the loop's clock
        hardware.leds = leds
        daemon = Daemon(config, hardware, api_key, trace=trace, timeline=timeline)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop), name="daemon")
        blocks = asyncio.create_task(_run_blocks(duplex), name="sound card")
        try:
            yield Rig(sim, daemon, duplex, leds, notifier, task, loop_errors)
            assert not task.done(), "the daemon stopped on its own"
        finally:
            stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), 30)
            finally:
                blocks.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await blocks
                hardware.close()
