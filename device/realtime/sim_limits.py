"""The simulator's account rate limit on responses (``SimulatorOptions.request_limit``).

The service reports the account's limits in ``rate_limits.updated`` as each
response starts; a client that asks for a response once none is left only earns
an error. With ``request_limit`` N, the simulator allows N responses per
``request_window_s`` (a fixed window that starts with the first response, shared
by every connection, as an account's limit is), says so in the ``requests``
entry of each ``rate_limits.updated`` (``remaining`` and ``reset_seconds``), and
refuses a ``response.create`` while none is left with a ``rate_limit_exceeded``
error. Without it nothing changes.

It wraps ``SimulatorSession.handle``; the clock is passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from device.realtime.sim_response import Event
from device.realtime.sim_schema import SimError
from device.realtime.sim_session import SimulatorSession


class RequestLimits:
    """Responses started in the current window, against ``request_limit``."""

    def __init__(self, limit: int | None, window_s: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._window_start_s: float | None = None
        self.used = 0
        self.refused = 0  # response.create events refused for the limit

    @classmethod
    def monotonic(cls, limit: int | None, window_s: float) -> RequestLimits:
        return cls(limit, window_s, time.monotonic)

    def _reset_s(self, now_s: float) -> float:
        if self._window_start_s is None:
            return self.window_s
        return max(0.0, self._window_start_s + self.window_s - now_s)

    def _roll(self, now_s: float) -> None:
        if self._window_start_s is not None and now_s >= self._window_start_s + self.window_s:
            self._window_start_s, self.used = None, 0

    def handle(self, session: SimulatorSession, event: dict[str, Any]) -> list[Event]:
        """``session.handle(event)``, within the limit."""
        if self.limit is None:
            return session.handle(event)
        now_s = self._clock()
        self._roll(now_s)
        if event.get("type") == "response.create" and self.used >= self.limit:
            self.refused += 1
            raw_id = event.get("event_id")
            message = (f"Rate limit reached for requests: limit {self.limit}; try again in "
                       f"{self._reset_s(now_s):.3f}s.")  # fmt: skip
            error = SimError("rate_limit_exceeded", message, None, "rate_limit_exceeded")
            return [session.error(error, raw_id if isinstance(raw_id, str) else None)]
        events = session.handle(event)
        for out in events:
            if out.get("type") == "rate_limits.updated":
                self._count(out, now_s)
        return events

    def _count(self, update: Event, now_s: float) -> None:
        """One more response started: rewrite its ``requests`` entry."""
        if self._window_start_s is None:
            self._window_start_s = now_s
        self.used += 1
        assert self.limit is not None
        requests = {
            "name": "requests",
            "limit": self.limit,
            "remaining": max(0, self.limit - self.used),
            "reset_seconds": round(self._reset_s(now_s), 3),
        }
        others = [entry for entry in update["rate_limits"] if entry.get("name") != "requests"]
        update["rate_limits"] = [requests, *others]
