"""The daemon's face toward systemd: READY, STATUS, WATCHDOG, STOPPING.

The watchdog is fed only while the audio loop is alive end to end: the audio
callback keeps running AND the event loop keeps consuming its blocks. A wedged
capture loop therefore gets the service restarted; a network outage does not
(the audio loop keeps running while offline).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping

from hw.notify import watchdog_interval_s
from hw.ports import Notifier

log = logging.getLogger(__name__)


class ServiceNotifier:
    """Sends each notification once, and STATUS only when it changes."""

    def __init__(
        self,
        notifier: Notifier,
        env: Mapping[str, str] | None = None,
        pid: int | None = None,
    ) -> None:
        self._notifier = notifier
        environ = os.environ if env is None else env
        self.watchdog_s = watchdog_interval_s(environ, os.getpid() if pid is None else pid)
        self._ready = False
        self._status = ""
        self.watchdog_pets = 0

    def ready(self) -> None:
        if not self._ready:
            self._ready = True
            self._notifier.notify("READY=1")

    def status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            self._notifier.notify(f"STATUS={text}")

    def stopping(self) -> None:
        self._notifier.notify("STOPPING=1")

    async def watchdog_loop(
        self,
        callbacks: Callable[[], int],
        consumed: Callable[[], int],
        excused: Callable[[], bool] = lambda: False,
    ) -> None:
        """Pet the watchdog at half its interval while audio flows end to end.

        ``callbacks`` counts audio callbacks (the audio thread is alive),
        ``consumed`` counts blocks the capture loop processed (the loop is alive).
        ``excused`` is true while the audio device is known to be gone and being
        reopened: the event loop is then evidently alive (this loop runs on it) and
        a restart would not help, so the watchdog is still fed.
        """
        if self.watchdog_s is None:
            return
        period_s = self.watchdog_s / 2
        last = (callbacks(), consumed())
        while True:
            await asyncio.sleep(period_s)
            now = (callbacks(), consumed())
            if (now[0] > last[0] and now[1] > last[1]) or excused():
                self._notifier.notify("WATCHDOG=1")
                self.watchdog_pets += 1
            else:
                log.error("audio loop stalled (callbacks %d, blocks consumed %d)", *now)
            last = now
