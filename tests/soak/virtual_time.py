"""An asyncio event loop on virtual time, for soaking the daemon for hours in seconds.

The loop's clock (``loop.time()``, which every ``sleep``, ``wait_for``, timer and
websockets' keepalive reads) starts at 0 and only moves when the loop has nothing
to do: when no callback is ready, no socket is ready and no worker thread is busy,
it jumps straight to the next timer instead of sleeping. Real sockets keep working
(the simulator and the daemon talk over 127.0.0.1): every wait first polls the
selector, so I/O that is ready is handled before time moves. Work handed to a
thread (``run_in_executor``, hence ``asyncio.to_thread``: state files, reply
synthesis, DNS) freezes the clock until it finishes, so a slow disk never looks
like a slow service.

Why not the ``looptime`` package, which does the same: its pytest plugin loads
into every test session and fails the setup of any test that uses ``tmp_path``
when pytest-asyncio is not installed (we do not use pytest-asyncio).
"""

from __future__ import annotations

import asyncio
import math
import selectors
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

REAL_WAIT_S = 0.05  # how long one real wait for a worker thread or outside I/O lasts


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock jumps ahead whenever it would wait.

    ``real_limit_s`` bounds the real time the loop may run: past it, the next wait
    raises, so a test that would hang fails instead.
    """

    def __init__(self, real_limit_s: float = math.inf) -> None:
        super().__init__(selector=_VirtualSelector(self))
        self._now_s = 0.0
        self._jobs: set[asyncio.Future[Any]] = set()
        self._real_deadline = time.monotonic() + real_limit_s
        self.jumps = 0

    def time(self) -> float:
        return self._now_s

    def run_in_executor(self, executor: Any, func: Callable[..., T], *args: Any) -> Any:
        future = super().run_in_executor(executor, func, *args)
        self._jobs.add(future)
        future.add_done_callback(self._jobs.discard)
        return future

    def _wait(self, real: selectors.BaseSelector, timeout: float | None) -> Any:
        """The selector's wait: poll, then wait for threads, else jump to the next timer."""
        ready = real.select(0)
        if ready or timeout == 0:
            return ready
        if time.monotonic() > self._real_deadline:
            raise TimeoutError("the virtual-time loop ran past its real-time limit")
        if self._jobs or timeout is None:
            # A thread is working (or only the outside world can wake us): its
            # completion writes to the loop's self-pipe and ends the real wait.
            return real.select(REAL_WAIT_S)
        self._now_s += timeout
        self.jumps += 1
        return []


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> Any:
        return self._loop._wait(super(), timeout)


def run_virtual(main: Callable[[], Any], *, real_limit_s: float) -> Any:
    """Run the coroutine ``main()`` on a fresh virtual-time loop; returns its result."""
    loop = VirtualTimeLoop(real_limit_s)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main())
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
