"""``POST /v1/realtime/client_secrets`` for the simulator: ephemeral client secrets.

The WebSocket server (websockets) parses GET requests only, so the endpoint runs
as a small HTTP/1.1 server of its own on the same host, on a second port. It
mints ``ek_`` secrets that expire as asked (``expires_after.seconds``, 10..7200,
default 600), answers with the API's shape (``value``, ``expires_at``, and the
effective ``session``), and checks the request as the API does: a bearer token,
a JSON object with only ``expires_after`` and ``session``, a realtime session of
the ``session.update`` shape. With ``SimulatorOptions.client_secrets`` the
WebSocket then takes only a secret minted here and not yet expired (else 401);
``token_faults`` (HTTP faults, ``http:503``...) answer the Nth request instead.

``TokenService`` is the sans-I/O part (request in, answer out, clock passed in);
``TokenServer`` only reads and writes HTTP on a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import secrets
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from device.realtime.sim_faults import handshake_fault, http_answer
from device.realtime.sim_options import SimulatorOptions, random_id
from device.realtime.sim_schema import SimError, enum, integer, obj
from device.realtime.sim_shapes import SESSION, default_session, merge_session

PATH = "/v1/realtime/client_secrets"
DEFAULT_LIFETIME_S = 600
LIFETIME_RANGE_S = (10, 7200)
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
READ_TIMEOUT_S = 10.0

_EXPIRES_AFTER = obj(
    {"anchor": enum("created_at"), "seconds": integer(*LIFETIME_RANGE_S)}, ["anchor"]
)
_REQUEST = obj({"expires_after": _EXPIRES_AFTER, "session": SESSION}, [])

Answer = tuple[HTTPStatus, dict[str, Any], dict[str, str]]


def _error(status: HTTPStatus, message: str, code: str | None, param: str | None = None) -> Answer:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    error = {"message": message, "type": kind, "code": code, "param": param}
    return status, {"error": error}, {}


class TokenService:
    """Mints client secrets and says which may open a session; no socket, no clock."""

    def __init__(
        self,
        options: SimulatorOptions,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[str], str] = random_id,
    ) -> None:
        self.options = options
        self.clock = clock
        self._new_id = new_id
        self.minted: dict[str, int] = {}  # secret -> expires_at (Unix seconds)
        self.requests: list[dict[str, Any]] = []  # every JSON body received
        self.answers: list[dict[str, Any]] = []  # every secret handed out
        self.count = 0  # requests on the path, refused ones included

    def refusal(self, token: str | None) -> str | None:
        """Why ``token`` may not open a session, or None when it may."""
        expires_at = self.minted.get(token or "")
        if expires_at is None:
            return "Invalid client secret: only ek_ secrets from /v1/realtime/client_secrets."
        if self.clock() >= expires_at:
            return "The client secret has expired; create a new one."
        return None

    def answer(self, method: str, path: str, authorization: str, body: bytes) -> Answer:
        """The status, JSON body and extra headers for one HTTP request."""
        if path.split("?")[0] != PATH:
            return _error(HTTPStatus.NOT_FOUND, f"Unknown path; use {PATH}.", None)
        if method != "POST":
            return _error(HTTPStatus.METHOD_NOT_ALLOWED, "Use POST.", None)
        self.count += 1
        fault = handshake_fault(self.options.token_faults, self.count)
        if fault is not None:
            return http_answer(fault)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            message = "You didn't provide an API key. Send 'Authorization: Bearer <key>'."
            return _error(HTTPStatus.UNAUTHORIZED, message, "invalid_api_key")
        try:
            request = json.loads(body)
        except ValueError:
            return _error(HTTPStatus.BAD_REQUEST, "The body is not valid JSON.", "invalid_json")
        if not isinstance(request, dict):
            return _error(HTTPStatus.BAD_REQUEST, "The body must be a JSON object.", None)
        self.requests.append(request)
        try:
            return self._mint(_REQUEST(request, ""))
        except SimError as exc:
            return _error(HTTPStatus.BAD_REQUEST, exc.message, exc.code, exc.param)

    def _mint(self, request: dict[str, Any]) -> Answer:
        session = request.get("session", {"type": "realtime"})
        if session.get("type") != "realtime":
            raise SimError("invalid_value", "Only realtime sessions are simulated.", "session.type")
        lifetime_s = request.get("expires_after", {}).get("seconds", DEFAULT_LIFETIME_S)
        expires_at = int(self.clock()) + lifetime_s
        value = f"ek_{secrets.token_hex(16)}"
        self.minted[value] = expires_at
        model = str(session.get("model") or "gpt-realtime")
        effective = merge_session(default_session(model, self._new_id("sess"), expires_at), session)
        answer = {"value": value, "expires_at": expires_at, "session": effective}
        self.answers.append(answer)
        return HTTPStatus.OK, answer, {}


class TokenServer:
    """``TokenService`` over HTTP/1.1 on its own port (one request per connection)."""

    def __init__(self, service: TokenService, host: str = "127.0.0.1") -> None:
        self.service = service
        self.host = host
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/v1/realtime/client_secrets`` once started."""
        if self._server is None:
            raise RuntimeError("the token server is not started")
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}{PATH}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, 0, limit=MAX_HEAD_BYTES)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                answer = await self._read(reader)
            status, body, headers = answer
            payload = json.dumps(body).encode()
            head = [f"HTTP/1.1 {status.value} {status.phrase}",
                    "Content-Type: application/json", f"Content-Length: {len(payload)}",
                    "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
            writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + payload)
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or sent garbage: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> Answer:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, _, header_block = head.partition(b"\r\n")
        method, path, *_ = [*request_line.decode("latin-1").split(" "), "", ""]
        headers = http.client.parse_headers(io.BytesIO(header_block))
        try:
            length = int(headers.get("Content-Length", "0"))
        except ValueError:
            return _error(HTTPStatus.BAD_REQUEST, "Bad Content-Length.", None)
        if not 0 <= length <= MAX_BODY_BYTES:
            return _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "The body is too large.", None)
        body = await reader.readexactly(length)
        return self.service.answer(method, path, headers.get("Authorization", ""), body)
