"""Opening one connection to the Realtime service, with the API key or a client secret.

The link asks for connections (to start, to reconnect, to rotate); this module
decides what opens them. Without ``realtime.token_url`` it is the API key. With
it, a client secret from ``device.tokens``, reused while fresh. When the service
refuses a secret that opened sessions before (it expired early or was revoked),
``StaleSecret`` tells the link to try again at once with a new one; a freshly
minted secret that is refused is classified like a refused key.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from device.config import Config
from device.credentials import Secret
from device.errors import ServiceError
from device.realtime.client import RealtimeClient, realtime_url
from device.tokens import TokenSource
from device.trace import Trace


class StaleSecret(Exception):
    """A client secret that was in use was refused: fetch a new one now."""


class Connector:
    """Opens connections as the current config says (it is re-read on every call)."""

    def __init__(
        self,
        config: Callable[[], Config],
        credential: str,
        *,
        trace: Trace | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._credential = credential  # the API key, or the device's token-URL credential
        self._trace = trace
        self._clock = clock
        self._tokens: TokenSource | None = None

    def __repr__(self) -> str:  # never shows the credential
        return f"Connector(tokens={self._tokens!r})"

    @property
    def tokens(self) -> TokenSource | None:
        """The client secrets' source, or None when the API key opens sessions."""
        rt = self._config().realtime
        if not rt.token_url:
            self._tokens = None
            return None
        tokens = self._tokens
        if tokens is None or (tokens.url, tokens.model, tokens.lifetime_s) != (
            rt.token_url, rt.model, rt.token_lifetime_s
        ):  # fmt: skip
            tokens = self._tokens = TokenSource(
                rt.token_url,
                Secret(self._credential),
                rt.model,
                rt.token_lifetime_s,
                timeout_s=rt.connect_timeout_s,
                clock=self._clock,
            )
        return tokens

    async def open(self) -> RealtimeClient:
        """A new connection, not yet configured.

        Raises:
            StaleSecret: a client secret in use was refused (try again at once).
            TokenError, ServiceError, OSError, TimeoutError, RemoteProtocolError:
                as ``device.tokens`` and ``RealtimeClient.connect`` raise them.
        """
        config = self._config()
        rt = config.realtime
        tokens = self.tokens
        fresh = True
        bearer = self._credential
        if tokens is not None:
            secret, fresh = await tokens.bearer()
            bearer = secret.reveal()
        client = RealtimeClient(
            realtime_url(rt.url, rt.model),
            bearer,
            max_message_bytes=rt.max_message_mib * 1024 * 1024,
            open_timeout_s=rt.connect_timeout_s,
            ping_interval_s=config.link.ping_interval_s,
            ping_timeout_s=config.link.ping_timeout_s,
            trace=self._trace,
        )
        try:
            await client.connect()
        except ServiceError as exc:
            if tokens is not None and exc.status in (401, 403):
                tokens.invalidate()  # expired early, or revoked: the next one is fetched
                if not fresh:
                    raise StaleSecret("a client secret in use was refused") from None
            raise
        return client
