"""rate_limits.updated: parsed, judged, and response.create held while a limit is spent."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from device.errors import RemoteProtocolError
from device.ratelimits import HeldResponses, Level, RateGate, level_of
from device.realtime.events import RateLimit, RateLimitsUpdated
from device.realtime.parse import parse_server_event
from tests.contract.oracle import server_problems


def update(*limits: dict[str, Any]) -> RateLimitsUpdated:
    event = {"type": "rate_limits.updated", "event_id": "event_1", "rate_limits": list(limits)}
    assert server_problems(event) == [], event
    parsed = parse_server_event(json.dumps(event))
    assert isinstance(parsed, RateLimitsUpdated)
    return parsed


def requests(remaining: int, reset_s: float = 2.0, limit: int = 100) -> dict[str, Any]:
    return {"name": "requests", "limit": limit, "remaining": remaining, "reset_seconds": reset_s}


def test_the_parser_types_each_limit() -> None:
    parsed = update(
        requests(99, 0.06),
        {"name": "tokens", "limit": 50000, "remaining": 49421, "reset_seconds": 1},
        {},  # every field is optional in the SDK's type
    )
    assert parsed.limits == (
        RateLimit("requests", 100, 99, 0.06),
        RateLimit("tokens", 50000, 49421, 1.0),
        RateLimit(None, None, None, None),
    )


@pytest.mark.parametrize(
    ("field", "value"), [("remaining", "5"), ("reset_seconds", "soon"), ("limit", 1.5)]
)
def test_a_wrongly_typed_limit_is_a_remote_protocol_error_naming_it(field: str, value: Any) -> None:
    entry = {**requests(5), field: value}
    frame = json.dumps({"type": "rate_limits.updated", "event_id": "e", "rate_limits": [entry]})
    with pytest.raises(RemoteProtocolError, match=rf"rate_limits\[0\]\.{field}"):
        parse_server_event(frame)


@pytest.mark.parametrize(
    ("remaining", "level"), [(50, Level.OK), (10, Level.OK), (9, Level.LOW), (0, Level.SPENT)]
)
def test_levels(remaining: int, level: Level) -> None:
    assert level_of(RateLimit("requests", 100, remaining, 1.0)) is level


def test_a_spent_limit_blocks_until_its_reset_and_each_change_is_noticed_once() -> None:
    gate = RateGate()
    assert gate.update(update(requests(50)).limits, now_s=0.0) == []
    [low] = gate.update(update(requests(5)).limits, now_s=1.0)
    assert low.level is Level.LOW and "5 of 100 requests left" in low.message
    assert gate.update(update(requests(4)).limits, now_s=1.5) == []  # still low: no new line
    assert gate.wait_s(1.5) == 0
    [spent] = gate.update(update(requests(0, reset_s=2.5)).limits, now_s=2.0)
    assert spent.level is Level.SPENT and "2.5 s" in spent.message
    assert gate.wait_s(2.0) == 2.5
    assert gate.wait_s(3.0) == 1.5
    assert gate.wait_s(4.5) == 0
    [ok] = gate.update(update(requests(99)).limits, now_s=5.0)
    assert ok.level is Level.OK
    assert gate.wait_s(5.0) == 0


def test_the_longest_spent_limit_decides() -> None:
    gate = RateGate()
    gate.update(
        update(
            requests(0, reset_s=1.0),
            {"name": "tokens", "limit": 100, "remaining": 0, "reset_seconds": 7.0},
        ).limits,
        now_s=0.0,
    )
    assert gate.wait_s(0.0) == 7.0


def test_held_responses_go_out_in_order_once_the_limit_resets() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate = RateGate()
        woken = asyncio.Event()
        held = HeldResponses(gate, woken.set)
        first, second = {"type": "response.create", "n": 1}, {"type": "response.create", "n": 2}
        assert held.hold(first) is False  # nothing spent: send it now
        gate.update(update(requests(0, reset_s=0.05)).limits, loop.time())
        assert held.hold(first) is True
        assert held.hold(second) is True
        assert held.released() == []  # not yet
        await asyncio.wait_for(woken.wait(), 5)  # the timer wakes the sender at the reset
        assert held.released() == [first, second]
        assert held.released() == []

    asyncio.run(main())


def test_cleared_held_responses_are_dropped_and_wake_nobody() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate = RateGate()
        wakes: list[int] = []
        held = HeldResponses(gate, lambda: wakes.append(1))
        gate.update(update(requests(0, reset_s=0.01)).limits, loop.time())
        assert held.hold({"type": "response.create"})
        held.clear()
        await asyncio.sleep(0.05)
        assert wakes == [] and held.released() == []

    asyncio.run(main())
