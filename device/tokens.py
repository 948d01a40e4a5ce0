"""Ephemeral client secrets: short-lived tokens that open Realtime sessions.

With ``realtime.token_url`` set, the WebSocket is never opened with the API key.
The device POSTs to the token URL (a backend that holds the key, or the API's own
``POST /v1/realtime/client_secrets``) with its own credential, gets a client
secret (``ek_...``) and its ``expires_at``, and opens sessions with that secret.
A secret may open several sessions until it expires (an open session outlives
it), so one is kept and reused, and replaced shortly before it expires. A stolen
speaker then holds a credential that only the backend honours, never the key.

The request body is the API's: ``expires_after`` (``anchor: created_at``,
``seconds``) and ``session: {type: "realtime", model}``; the session settings
themselves still come with the ``session.update`` of each session. The HTTP runs
in a worker thread (urllib, with a timeout), never on the event loop.

Failures are ``TokenError`` (an HTTP status, classified like the WebSocket's:
401/403 slow retry and a fault, 429 after Retry-After, 5xx retried), ``OSError``
or ``TimeoutError`` (network), or ``RemoteProtocolError`` (an answer without a
secret). No message ever holds the secret or the credential.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from device.config_rules import is_loopback
from device.credentials import Secret
from device.errors import RemoteProtocolError, ServiceError
from device.realtime.client import retry_after

REFRESH_MARGIN_S = 60.0  # replace a secret this long before it expires (or at 3/4 of its life)
MAX_ANSWER_BYTES = 1024 * 1024  # an answer is a few kB (the effective session)
USER_AGENT = "edgevoice"

Post = Callable[[str, str, dict[str, Any], float], bytes]
"""(url, credential, JSON body, timeout in s) -> the answer's body; blocking."""


class TokenError(ServiceError):
    """The token URL answered with an HTTP error status (``status``)."""


@dataclass(frozen=True)
class ClientSecret:
    """One minted secret; ``expires_at_s`` is Unix seconds, as the service says."""

    value: Secret
    expires_at_s: float
    minted_at_s: float

    def usable(self, now_s: float) -> bool:
        """True while it is not about to expire (see ``REFRESH_MARGIN_S``)."""
        margin_s = min(REFRESH_MARGIN_S, (self.expires_at_s - self.minted_at_s) / 4)
        return now_s < self.expires_at_s - margin_s


def request_body(model: str, lifetime_s: int) -> dict[str, Any]:
    """The ``POST /v1/realtime/client_secrets`` body for a realtime session of ``model``."""
    return {
        "expires_after": {"anchor": "created_at", "seconds": lifetime_s},
        "session": {"type": "realtime", "model": model},
    }


def parse_answer(body: bytes, now_s: float) -> ClientSecret:
    """The secret in a token URL's answer: ``{"value": ..., "expires_at": ...}``.

    Raises:
        RemoteProtocolError: not JSON, or no string ``value`` and integer ``expires_at``
            (named, never shown).
    """
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        raise RemoteProtocolError("the token URL's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise RemoteProtocolError("the token URL's answer is not a JSON object")
    value, expires_at = answer.get("value"), answer.get("expires_at")
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise RemoteProtocolError("the token URL's answer has no client secret in 'value'")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise RemoteProtocolError("the token URL's answer has no integer 'expires_at'")
    if expires_at <= now_s:
        raise RemoteProtocolError(
            "the token URL gave a secret that has already expired (is this device's clock "
            "right? check timedatectl)"
        )
    return ClientSecret(Secret(value), float(expires_at), now_s)


def _opener(url: str) -> urllib.request.OpenerDirector:
    if is_loopback(urlsplit(url).hostname or ""):
        # A proxy from the environment must not capture a local token service.
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _refusal(status: int) -> str:
    if status in (401, 403):
        return "it refused the device's credential (realtime.token_auth_file, or the API key)"
    if status == 429:
        return "rate limited"
    if status >= 500:
        return "server error"
    return "unexpected answer"


def post_json(url: str, credential: str, body: dict[str, Any], timeout_s: float) -> bytes:
    """POST ``body`` as JSON with ``Authorization: Bearer <credential>``; blocking.

    Raises:
        TokenError: an HTTP error status (with Retry-After, when given).
        OSError, TimeoutError: the network failed or the answer took too long.
    """
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {credential}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
    )
    host = urlsplit(url).hostname
    try:
        with _opener(url).open(request, timeout=timeout_s) as answer:
            data: bytes = answer.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()  # the body is not read: it might echo what was sent
        raise TokenError(
            f"the token URL {host} answered HTTP {status}: {_refusal(status)}",
            status,
            retry_after(exc.headers.get("Retry-After") if exc.headers else None),
        ) from None
    except urllib.error.URLError as exc:
        raise OSError(f"the token URL {host} cannot be reached: {exc.reason}") from None
    if len(data) > MAX_ANSWER_BYTES:
        raise RemoteProtocolError(f"the token URL's answer is over {MAX_ANSWER_BYTES} bytes")
    return data


class TokenSource:
    """Client secrets from one token URL: minted when needed, reused while fresh."""

    def __init__(
        self,
        url: str,
        credential: Secret,
        model: str,
        lifetime_s: int,
        *,
        timeout_s: float,
        clock: Callable[[], float] = time.time,
        post: Post = post_json,
    ) -> None:
        self.url = url
        self.model = model
        self.lifetime_s = lifetime_s
        self._credential = credential
        self._timeout_s = timeout_s
        self._clock = clock
        self._post = post
        self._current: ClientSecret | None = None
        self.minted = 0  # secrets fetched so far

    def __repr__(self) -> str:  # never shows the credential or a secret
        return f"TokenSource({self.url!r}, minted={self.minted})"

    async def bearer(self) -> tuple[Secret, bool]:
        """A secret to open a session with, and whether it was fetched just now.

        Raises what ``post_json`` and ``parse_answer`` raise.
        """
        current = self._current
        if current is not None and current.usable(self._clock()):
            return current.value, False
        body = request_body(self.model, self.lifetime_s)
        data = await asyncio.to_thread(
            self._post, self.url, self._credential.reveal(), body, self._timeout_s
        )
        self._current = parse_answer(data, self._clock())
        self.minted += 1
        return self._current.value, True

    def invalidate(self) -> None:
        """Forget the current secret (the service refused it); the next call mints one."""
        self._current = None
