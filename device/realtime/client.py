"""The WebSocket transport for the Realtime session; the only module importing websockets.

It moves text frames and nothing else: the protocol lives in the sans-I/O
``session`` module. Failures come out as the daemon's own errors so that
``device.errors.classify`` can decide what to do.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from device.credentials import Secret
from device.errors import ServiceError
from device.trace import Trace

# The Realtime service sends whole items (with base64 audio) and long session
# objects in single frames; websockets' 1 MiB default closes such sessions with
# 1009. The limit stays finite so a broken server cannot exhaust a Pi's memory.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0
CLOSE_TIMEOUT_S = 2.0
MAX_RETRY_AFTER_S = 3600.0


class _HideAuthorization(logging.Filter):
    """websockets logs every handshake header at debug level, the bearer token
    included; a key or client secret must not reach a journal, even when debugging."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() == "authorization":
            record.args = (args[0], "Bearer ***")
        return True


# The local simulator's server logs the headers it receives the same way.
for _name in ("websockets.client", "websockets.server"):
    logging.getLogger(_name).addFilter(_HideAuthorization())


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given as a number (an HTTP date is not
    expected from this service and is ignored); capped, never negative."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


class Closed(Exception):
    """The connection closed; ``code`` is the close code (None if it just dropped)."""

    def __init__(self, code: int | None, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"connection closed ({code}): {reason}" if code else "connection lost")


def _reveal(value: Any) -> Any:
    if isinstance(value, Secret):
        return value.reveal()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(event: dict[str, Any]) -> str:
    """The text frame for a client event. A ``Secret`` in it (an MCP server's token in
    its tool) is revealed here, as it leaves, and nowhere else."""
    return json.dumps(event, default=_reveal)


def realtime_url(base_url: str, model: str) -> str:
    """``wss://api.openai.com/v1/realtime`` + ``?model=...``."""
    return f"{base_url}?{urlencode({'model': model})}"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


class RealtimeClient:
    """One WebSocket connection to the Realtime service (or the local simulator)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        open_timeout_s: float = 10.0,
        ping_interval_s: float | None = None,
        ping_timeout_s: float | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.url = url
        self._api_key = api_key
        # The keepalive: a server that stops answering pings is left (close 1011) after
        # ping_interval_s + ping_timeout_s at most. None: PING_INTERVAL_S/PING_TIMEOUT_S.
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = ping_timeout_s
        self._max_message_bytes = max_message_bytes
        self._open_timeout_s = open_timeout_s
        self._trace = trace
        self._ws: ClientConnection | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"RealtimeClient({self.url!r})"

    async def connect(self) -> None:
        """Open the connection. Raises ServiceError (HTTP status), OSError or TimeoutError."""
        headers = {"Authorization": f"Bearer {self._api_key}"}
        try:
            self._ws = await connect(
                self.url,
                additional_headers=headers,
                max_size=self._max_message_bytes,
                open_timeout=self._open_timeout_s,
                ping_interval=self._ping_interval_s or PING_INTERVAL_S,
                ping_timeout=self._ping_timeout_s or PING_TIMEOUT_S,
                # A stalled server never answers our close frame: don't wait 10 s for it.
                close_timeout=CLOSE_TIMEOUT_S,
                compression=None,
                # A proxy from the environment must not capture the local simulator.
                proxy=None if _is_loopback(self.url) else True,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            retry_after_s = retry_after(exc.response.headers.get("Retry-After"))
            raise ServiceError(
                f"the service answered HTTP {status}", status, retry_after_s
            ) from None
        except websockets.InvalidHandshake as exc:
            raise ServiceError(f"WebSocket handshake failed: {exc}") from None

    async def send(self, event: dict[str, Any]) -> None:
        ws = self._require()
        if self._trace is not None:
            self._trace.record("sent", event)
        try:
            await ws.send(encode(event))
        except ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def recv(self) -> str | bytes:
        """The next frame, as sent. Raises Closed when the connection ends."""
        ws = self._require()
        try:
            frame = await ws.recv()
        except ConnectionClosed as exc:
            raise self._closed(exc) from None
        if self._trace is not None:
            self._trace.record_frame("recv", frame)
        return frame

    async def close(self, code: int = 1000, reason: str = "") -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close(code, reason)

    @property
    def close_code(self) -> int | None:
        return None if self._ws is None else self._ws.close_code

    def _require(self) -> ClientConnection:
        if self._ws is None:
            raise Closed(None, "not connected")
        return self._ws

    @staticmethod
    def _closed(exc: ConnectionClosed) -> Closed:
        frame = exc.rcvd or exc.sent
        return Closed(frame.code if frame else None, frame.reason if frame else "")
