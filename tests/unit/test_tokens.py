"""Client secrets: minted at the token URL, reused while fresh, failures classified.

The HTTP tests talk to the simulator's real token endpoint on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from device.credentials import Secret
from device.errors import RemoteProtocolError, classify
from device.realtime.sim_faults import parse_fault
from device.realtime.sim_options import SimulatorOptions
from device.realtime.sim_tokens import TokenServer, TokenService
from device.tokens import (
    ClientSecret,
    TokenError,
    TokenSource,
    parse_answer,
    post_json,
    request_body,
)
from tests.contract.secrets_oracle import answer_problems, request_problems

CREDENTIAL = "device-token-" + "Z" * 24
MODEL = "gpt-realtime-1.5"


class Clock:
    def __init__(self, now_s: float = 1_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


class FakeUrl:
    """Answers like a token URL, counting calls; each secret expires ``lifetime_s`` later."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, str, dict[str, Any], float]] = []

    def __call__(self, url: str, credential: str, body: dict[str, Any], timeout_s: float) -> bytes:
        self.calls.append((url, credential, body, timeout_s))
        expires_at = int(self.clock()) + body["expires_after"]["seconds"]
        return json.dumps({"value": f"ek_{len(self.calls)}", "expires_at": expires_at}).encode()


def source(clock: Clock, fake: FakeUrl, lifetime_s: int = 600) -> TokenSource:
    return TokenSource(
        "https://backend.example/token", Secret(CREDENTIAL), MODEL, lifetime_s,
        timeout_s=7.0, clock=clock, post=fake,
    )  # fmt: skip


def test_the_request_body_is_what_the_sdk_takes() -> None:
    body = request_body(MODEL, 600)
    assert body == {
        "expires_after": {"anchor": "created_at", "seconds": 600},
        "session": {"type": "realtime", "model": MODEL},
    }
    assert request_problems(body) == []


def test_a_secret_is_reused_while_fresh_and_replaced_before_it_expires() -> None:
    async def main() -> None:
        clock = Clock()
        fake = FakeUrl(clock)
        tokens = source(clock, fake)
        first, fresh = await tokens.bearer()
        assert (first.reveal(), fresh) == ("ek_1", True)
        url, credential, body, timeout_s = fake.calls[0]
        assert url == "https://backend.example/token"
        assert (credential, body, timeout_s) == (CREDENTIAL, request_body(MODEL, 600), 7.0)
        clock.now_s += 500  # 100 s left: more than the refresh margin
        again, fresh = await tokens.bearer()
        assert (again.reveal(), fresh) == ("ek_1", False)
        assert len(fake.calls) == 1
        clock.now_s += 45  # 55 s left: inside the margin, so a new one
        newer, fresh = await tokens.bearer()
        assert (newer.reveal(), fresh) == ("ek_2", True)
        tokens.invalidate()  # the service refused it
        assert (await tokens.bearer())[0].reveal() == "ek_3"
        assert tokens.minted == 3

    asyncio.run(main())


def test_a_short_lived_secret_is_replaced_in_its_last_quarter() -> None:
    secret = ClientSecret(Secret("ek_x"), expires_at_s=140.0, minted_at_s=100.0)
    assert secret.usable(129.9)
    assert not secret.usable(130.0)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"expires_at": 2000000000}', "no client secret"),
        (b'{"value": "", "expires_at": 2000000000}', "no client secret"),
        (b'{"value": "ek_a b", "expires_at": 2000000000}', "no client secret"),
        (b'{"value": "ek_SECRETVALUE", "expires_at": "soon"}', "no integer 'expires_at'"),
        (b'{"value": "ek_SECRETVALUE", "expires_at": 999}', "already expired"),
    ],
)
def test_an_answer_without_a_usable_secret_is_a_protocol_error(body: bytes, problem: str) -> None:
    with pytest.raises(RemoteProtocolError, match=problem) as caught:
        parse_answer(body, now_s=1000.0)
    assert "SECRETVALUE" not in str(caught.value)


def test_repr_never_shows_the_credential_or_a_secret() -> None:
    async def main() -> None:
        clock = Clock()
        tokens = source(clock, FakeUrl(clock))
        secret, _ = await tokens.bearer()
        assert CREDENTIAL not in repr(tokens) and "ek_1" not in repr(tokens)
        assert "ek_1" not in repr(secret) and "ek_1" not in f"{secret}"

    asyncio.run(main())


# -- over HTTP, against the simulator's endpoint ----------------------------------------------


def with_server(
    body: Callable[[TokenServer], Awaitable[None]], options: SimulatorOptions | None = None
) -> TokenService:
    service = TokenService(options or SimulatorOptions(client_secrets=True))

    async def main() -> None:
        server = TokenServer(service)
        await server.start()
        try:
            await asyncio.wait_for(body(server), 30)
        finally:
            await server.stop()

    asyncio.run(main())
    return service


def test_post_json_gets_a_secret_the_simulator_accepts() -> None:
    async def body(server: TokenServer) -> None:
        raw = await asyncio.to_thread(
            post_json, server.url, CREDENTIAL, request_body(MODEL, 120), 5.0
        )
        answer = json.loads(raw)
        assert answer_problems(answer) == []
        secret = parse_answer(raw, server.service.clock())
        assert secret.value.reveal().startswith("ek_")
        assert secret.expires_at_s - secret.minted_at_s == pytest.approx(120, abs=1)
        assert server.service.refusal(secret.value.reveal()) is None
        assert server.service.refusal("ek_unknown") is not None

    service = with_server(body)
    assert service.requests == [request_body(MODEL, 120)]


@pytest.mark.parametrize(
    ("spec", "status", "retry_after_s", "slow"),
    [
        ("http:401", 401, None, True),
        ("http:403", 403, None, True),
        ("http:429:retry-after=7", 429, 7.0, False),
        ("http:503", 503, None, False),
    ],
)
def test_an_http_refusal_is_a_token_error_classified_like_the_websocket(
    spec: str, status: int, retry_after_s: float | None, slow: bool
) -> None:
    options = SimulatorOptions(client_secrets=True, token_faults=(parse_fault(spec),))

    async def body(server: TokenServer) -> None:
        with pytest.raises(TokenError) as caught:
            await asyncio.to_thread(post_json, server.url, CREDENTIAL, request_body(MODEL, 60), 5)
        error = caught.value
        assert (error.status, error.retry_after_s) == (status, retry_after_s)
        assert CREDENTIAL not in str(error)
        decision = classify(error)
        assert decision.retry and decision.slow is slow
        assert decision.delay_s == (retry_after_s or 0.0)

    with_server(body, options)


def test_a_request_the_api_would_refuse_is_answered_400() -> None:
    async def body(server: TokenServer) -> None:
        bad = {"expires_after": {"anchor": "created_at", "seconds": 5}, "session": {}}
        with pytest.raises(TokenError) as caught:
            await asyncio.to_thread(post_json, server.url, CREDENTIAL, bad, 5)
        assert caught.value.status == 400
        unknown = {**request_body(MODEL, 60), "voice": "marin"}
        with pytest.raises(TokenError):
            await asyncio.to_thread(post_json, server.url, CREDENTIAL, unknown, 5)
        assert server.service.minted == {}

    with_server(body)


def test_a_missing_credential_is_answered_401() -> None:
    async def body(server: TokenServer) -> None:
        with pytest.raises(TokenError) as caught:
            await asyncio.to_thread(post_json, server.url, "", request_body(MODEL, 60), 5)
        assert caught.value.status == 401

    with_server(body)


def test_an_unreachable_token_url_is_a_network_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once it is closed
    url = f"http://127.0.0.1:{port}/v1/realtime/client_secrets"
    with pytest.raises(OSError, match="cannot be reached") as caught:
        post_json(url, CREDENTIAL, request_body(MODEL, 60), 5)
    assert not classify(caught.value).slow
