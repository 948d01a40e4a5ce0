"""The simulator's client secrets and account rate limit, checked against the SDK's types.

``POST /v1/realtime/client_secrets`` answers with the SDK's ``ClientSecretCreateResponse``
and refuses what the API refuses; with ``client_secrets`` the WebSocket takes only a
minted, unexpired secret. ``request_limit`` makes ``rate_limits.updated`` report the
account's requests and refuses ``response.create`` once none is left.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from device.realtime.sim_limits import RequestLimits
from device.realtime.sim_options import SimulatorOptions
from device.realtime.sim_session import SimulatorSession
from device.realtime.simulator import RealtimeSimulator
from device.tokens import parse_answer, post_json, request_body
from tests.contract.oracle import SENT_BY_SIMULATOR, client_problems
from tests.contract.secrets_oracle import answer_problems, request_problems

MODEL = "gpt-realtime-1.5"
SAFETY_TIMEOUT_S = 30.0


def on_simulator(
    options: SimulatorOptions, body: Callable[[RealtimeSimulator], Awaitable[None]]
) -> RealtimeSimulator:
    async def main() -> RealtimeSimulator:
        async with RealtimeSimulator(options) as sim:
            try:
                await asyncio.wait_for(body(sim), SAFETY_TIMEOUT_S)
            finally:
                SENT_BY_SIMULATOR.extend(sim.sent)
        return sim

    return asyncio.run(main())


async def open_ws(sim: RealtimeSimulator, token: str) -> ClientConnection:
    return await connect(
        f"{sim.url}?model={MODEL}", additional_headers={"Authorization": f"Bearer {token}"}
    )


async def mint(sim: RealtimeSimulator, lifetime_s: int = 60) -> str:
    assert sim.tokens is not None
    raw = await asyncio.to_thread(
        post_json, sim.tokens.url, "sk-test-backend", request_body(MODEL, lifetime_s), 5.0
    )
    return parse_answer(raw, sim.tokens.service.clock()).value.reveal()


def test_only_a_minted_unexpired_secret_opens_the_websocket() -> None:
    clock = [1_000_000.0]

    async def body(sim: RealtimeSimulator) -> None:
        assert sim.tokens is not None
        sim.tokens.service.clock = lambda: clock[0]
        for refused in ("sk-test-a-real-looking-key", "ek_made_up_by_the_client"):
            with pytest.raises(InvalidStatus) as caught:
                await open_ws(sim, refused)
            assert caught.value.response.status_code == 401
        secret = await mint(sim, lifetime_s=60)
        for _ in range(2):  # a secret opens several sessions until it expires
            ws = await open_ws(sim, secret)
            created = json.loads(await ws.recv())
            assert created["type"] == "session.created"
            await ws.close()
        clock[0] += 61
        with pytest.raises(InvalidStatus) as caught:
            await open_ws(sim, secret)
        assert caught.value.response.status_code == 401
        assert b"expired" in caught.value.response.body

    sim = on_simulator(SimulatorOptions(client_secrets=True), body)
    assert sim.connections == 2


def test_the_answer_and_the_request_match_the_sdk_types() -> None:
    async def body(sim: RealtimeSimulator) -> None:
        assert sim.tokens is not None
        await mint(sim, lifetime_s=300)
        [request] = sim.tokens.service.requests
        [answer] = sim.tokens.service.answers
        assert request_problems(request) == []
        assert answer_problems(answer) == []
        assert answer["session"]["model"] == MODEL
        assert answer["expires_at"] == answer["session"]["expires_at"]

    on_simulator(SimulatorOptions(client_secrets=True), body)


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        ({"session": {"type": "realtime", "voice": "marin"}}, "session.voice"),
        ({"expires_after": {"anchor": "created_at", "seconds": 7201}}, "expires_after.seconds"),
        ({"expires_after": {"seconds": 60}}, "expires_after.anchor"),
        ({"session": {"type": "transcription"}}, "session.type"),
        ({"ttl": 60}, "ttl"),
    ],
)
def test_requests_the_api_refuses_are_refused_with_the_param(
    request_: dict[str, Any], param: str
) -> None:
    async def body(sim: RealtimeSimulator) -> None:
        assert sim.tokens is not None
        status, answer, _ = sim.tokens.service.answer(
            "POST", "/v1/realtime/client_secrets", "Bearer sk-x", json.dumps(request_).encode()
        )
        assert status == 400 and answer["error"]["param"] == param
        assert sim.tokens.service.minted == {}

    on_simulator(SimulatorOptions(client_secrets=True), body)


async def events_until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        event = json.loads(await ws.recv())
        seen.append(event)
        if event["type"] == kind:
            return seen


def test_the_request_limit_is_reported_and_enforced() -> None:
    async def body(sim: RealtimeSimulator) -> None:
        ws = await open_ws(sim, "sk-test")
        await events_until(ws, "session.created")
        create = {"type": "response.create", "event_id": "ev_1",
                  "response": {"output_modalities": ["text"]}}  # fmt: skip
        assert client_problems(create) == []
        await ws.send(json.dumps(create))
        seen = await events_until(ws, "response.done")
        [limits] = [e["rate_limits"] for e in seen if e["type"] == "rate_limits.updated"]
        requests = next(entry for entry in limits if entry["name"] == "requests")
        assert (requests["limit"], requests["remaining"]) == (1, 0)
        assert 0 < requests["reset_seconds"] <= 60
        await ws.send(json.dumps({**create, "event_id": "ev_2"}))
        [error] = await events_until(ws, "error")
        assert error["error"]["code"] == "rate_limit_exceeded"
        assert error["error"]["event_id"] == "ev_2"
        await ws.close()

    sim = on_simulator(SimulatorOptions(request_limit=1, request_window_s=60.0), body)
    assert (sim.limits.used, sim.limits.refused) == (1, 1)


def test_the_window_resets() -> None:
    now = [0.0]
    limits = RequestLimits(1, 10.0, lambda: now[0])
    session = SimulatorSession(SimulatorOptions(), MODEL, 0.0)
    create = {"type": "response.create", "response": {"output_modalities": ["text"]}}
    [update] = [e for e in limits.handle(session, create) if e["type"] == "rate_limits.updated"]
    assert update["rate_limits"][0] == {
        "name": "requests", "limit": 1, "remaining": 0, "reset_seconds": 10.0,
    }  # fmt: skip
    for response_id in list(session.responses):  # finish it, so a new one may start
        while session.is_streaming(response_id):
            session.step(response_id)
    now[0] = 9.9
    assert [e["error"]["code"] for e in limits.handle(session, create)] == ["rate_limit_exceeded"]
    now[0] = 10.0
    assert any(e["type"] == "response.created" for e in limits.handle(session, create))
    SENT_BY_SIMULATOR.append(update)
