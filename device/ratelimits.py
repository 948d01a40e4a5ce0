"""The account's rate limits as the service reports them, and what they allow now.

``rate_limits.updated`` comes as each response starts and says, per limit
("requests", "tokens"), how much is left and when it resets. A response asked
for while a limit is spent only earns an error, so the link holds its
``response.create`` events until the reset (``HeldResponses``), and says in the
journal when a limit runs low, so a speaker that goes quiet can be explained.

``RateGate`` is pure: the time comes in as an argument (seconds on any monotonic
clock). ``HeldResponses`` keeps the held events and wakes the sender at the reset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from device.realtime.events import RateLimit

LOW_FRACTION = 0.1  # "low" below a tenth of the limit left

log = logging.getLogger(__name__)


class Level(Enum):
    OK = "ok"
    LOW = "low"
    SPENT = "spent"


@dataclass(frozen=True)
class Notice:
    """A change worth a journal line: ``level`` is the limit's new level."""

    name: str
    level: Level
    message: str


def level_of(limit: RateLimit) -> Level:
    if limit.remaining is None:
        return Level.OK
    if limit.remaining <= 0:
        return Level.SPENT
    if limit.limit is not None and limit.remaining < limit.limit * LOW_FRACTION:
        return Level.LOW
    return Level.OK


class RateGate:
    """What the service last said about each limit, and until when one is spent."""

    def __init__(self) -> None:
        self._levels: dict[str, Level] = {}
        self._spent_until_s: dict[str, float] = {}

    def update(self, limits: Iterable[RateLimit], now_s: float) -> list[Notice]:
        """Take in a ``rate_limits.updated``; returns the limits whose level changed."""
        notices: list[Notice] = []
        for limit in limits:
            name = limit.name or "unnamed"
            level = level_of(limit)
            reset_s = max(0.0, limit.reset_seconds or 0.0)
            if level is Level.SPENT:
                self._spent_until_s[name] = now_s + reset_s
            else:
                self._spent_until_s.pop(name, None)
            if level is not self._levels.get(name, Level.OK):
                notices.append(Notice(name, level, _message(name, level, limit, reset_s)))
            self._levels[name] = level
        return notices

    def wait_s(self, now_s: float) -> float:
        """Seconds until a new response may be asked for; 0 when none is spent."""
        until_s = max(self._spent_until_s.values(), default=now_s)
        return max(0.0, until_s - now_s)


def _message(name: str, level: Level, limit: RateLimit, reset_s: float) -> str:
    if level is Level.SPENT:
        return (f"rate limit reached: no {name} left until it resets in {reset_s:.1f} s; "
                "new responses wait until then")  # fmt: skip
    if level is Level.LOW:
        return (f"rate limit low: {limit.remaining} of {limit.limit} {name} left "
                f"(resets in {reset_s:.1f} s)")  # fmt: skip
    return f"rate limit for {name} recovered: {limit.remaining} of {limit.limit} left"


class HeldResponses:
    """``response.create`` events kept back while a limit is spent, for one session.

    ``wake`` is called when the limit has reset, so the sender sends them, in order,
    before anything queued after them that asks for a response.
    """

    def __init__(self, gate: RateGate, wake: Callable[[], None]) -> None:
        self._gate = gate
        self._wake = wake
        self._held: list[dict[str, Any]] = []
        self._timer: asyncio.TimerHandle | None = None

    def hold(self, event: dict[str, Any]) -> bool:
        """True when ``event`` (a response.create) must wait; it is then kept here."""
        wait_s = self._gate.wait_s(asyncio.get_running_loop().time())
        if wait_s <= 0 and not self._held:
            return False
        self._held.append(event)
        log.info("a response waits %.1f s for the rate limit to reset", wait_s)
        self._arm(wait_s)
        return True

    def released(self) -> list[dict[str, Any]]:
        """The held events, once their limit has reset (else none)."""
        if not self._held:
            return []
        wait_s = self._gate.wait_s(asyncio.get_running_loop().time())
        if wait_s > 0:
            self._arm(wait_s)  # spent again meanwhile
            return []
        held, self._held = self._held, []
        return held

    def clear(self) -> None:
        """The session ended: what it held is dropped with it."""
        self._held.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, wait_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(wait_s, self._wake)
