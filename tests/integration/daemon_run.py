"""Running the real daemon on fake hardware inside a test, and waiting on it.

Shared by the end-to-end tests: start ``Daemon.run``, stop it and close the
hardware whatever happens, and poll conditions the daemon has no event for.
Waits are bounded only to end a hung test: nothing is asserted about time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from device.app import Daemon
from device.demo import shipped_question
from hw.factory import Hardware
from hw.fake import FakeDuplex

WAIT_S = 15.0  # bounds each wait on a condition
REPLY_WITHIN_S = 20.0  # bounds the wait for a spoken answer


async def until(condition: Callable[[], bool], what: str, within_s: float = WAIT_S) -> None:
    """Wait, bounded, for ``condition``."""
    for _ in range(int(within_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def running(daemon: Daemon, hardware: Hardware) -> AsyncIterator[asyncio.Task[None]]:
    """The daemon's run task; on leaving, the daemon is stopped and the hardware closed."""
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await task
        hardware.close()


async def answer_the_question(daemon: Daemon, hardware: Hardware) -> None:
    """Speak the shipped question into the fake mic and wait until the answer has played."""
    duplex = hardware.duplex
    assert isinstance(duplex, FakeDuplex)
    duplex.feed_wav(shipped_question(), at_s=0.5)
    async with running(daemon, hardware):
        await asyncio.wait_for(daemon.wait_for_replies(1), REPLY_WITHIN_S)
