"""A local Realtime service: a WebSocket server on 127.0.0.1 speaking the GA protocol.

``edgevoice demo`` and the end-to-end tests talk to this instead of OpenAI, so
the daemon's real client code, reconnect logic and audio path run unchanged
without a network or an API key. The protocol rules live in the sans-I/O
``SimulatorSession``; this module only does the handshake, moves frames, paces
responses and synthesises reply audio off the event loop.

Handshake as the service does it: path ``/v1/realtime`` with ``?model=``;
``Authorization: Bearer <token>`` (any token) or the browser form
``openai-insecure-api-key.<token>`` subprotocol, else HTTP 401; an
``OpenAI-Beta`` header or the ``openai-beta.realtime-v1`` subprotocol is
accepted at the HTTP level, answered with ``beta_api_shape_disabled`` and
closed with code 4000. A session past its lifetime gets ``session_expired`` and
close 1001. ``SimulatorOptions.faults`` make it misbehave on purpose (``sim_faults``),
``inject`` arms one on the open connection while it runs (a soak's random faults);
``faults_fired`` lists each fault as it fires. ``tokens``: client secrets (``sim_tokens``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from device.realtime.sim_faults import (
    BETA_MESSAGE,
    CLOSE_BETA,
    CLOSE_GOING_AWAY,
    Action,
    ConnectionFaults,
    Fault,
    Stall,
    action,
    handshake_fault,
    http_answer,
)
from device.realtime.sim_limits import RequestLimits
from device.realtime.sim_options import SimulatorOptions
from device.realtime.sim_response import Event
from device.realtime.sim_schema import SimError
from device.realtime.sim_session import SimulatorSession
from device.realtime.sim_tokens import TokenServer, TokenService
from device.realtime.sim_voice import synthesize

__all__ = ["BETA_MESSAGE", "RealtimeSimulator", "SimulatorOptions", "SimulatorSession"]

PATH = "/v1/realtime"
MAX_FRAME_BYTES = 16 * 1024 * 1024
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."

DEFAULT_OPTIONS = SimulatorOptions()

_log = logging.getLogger(__name__)


def _offered_subprotocols(headers: Headers) -> list[str]:
    return [
        token.strip()
        for value in headers.get_all("Sec-WebSocket-Protocol")
        for token in value.split(",")
        if token.strip()
    ]


def _bearer_token(headers: Headers) -> str | None:
    """The API key from ``Authorization: Bearer`` or the browser subprotocol form."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for offered in _offered_subprotocols(headers):
        key = offered.removeprefix(KEY_SUBPROTOCOL_PREFIX)
        if key and key != offered:
            return key
    return None


def _wants_beta(headers: Headers) -> bool:
    return "OpenAI-Beta" in headers or BETA_SUBPROTOCOL in _offered_subprotocols(headers)


def _model(request: Request) -> str | None:
    models = parse_qs(urlsplit(request.path).query).get("model", [])
    return models[0] if models and models[0] else None


def _json_error(
    connection: ServerConnection, status: HTTPStatus, message: str, code: str | None
) -> Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return _json_response(connection, status, body, {})


def _json_response(
    connection: ServerConnection, status: HTTPStatus, body: Any, headers: dict[str, str]
) -> Response:
    response = connection.respond(status, json.dumps(body) + "\n")
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    for name, value in headers.items():
        response.headers[name] = value
    return response


@dataclass
class _Close:
    code: int
    reason: str


class RealtimeSimulator:
    """The local service. ``received``/``sent`` record every event, all connections."""

    def __init__(
        self, options: SimulatorOptions = DEFAULT_OPTIONS, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.options = options
        self.host = host
        self.port = port
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.connections = 0  # upgraded to WebSocket
        self.handshakes = 0  # every attempt on the path, refused ones included
        self.close_codes: list[int | None] = []  # per ended connection, as the client closed it
        self.faults_fired: list[str] = []  # each fault's spec, every time it fires
        self._server: Server | None = None
        self._attempt_of: dict[ServerConnection, int] = {}
        self._links: set[_Link] = set()
        self.tokens = TokenServer(TokenService(options), host) if options.client_secrets else None
        self.limits = RequestLimits.monotonic(options.request_limit, options.request_window_s)

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/v1/realtime`` once started (add ``?model=``)."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://{self.host}:{port}{PATH}"

    async def start(self) -> None:
        self._server = await serve(
            self._serve_connection,
            self.host,
            self.port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            max_size=MAX_FRAME_BYTES,
        )
        if self.tokens is not None:
            await self.tokens.start()

    async def stop(self) -> None:
        for link in list(self._links):
            link.abort_stall()  # a stalled connection would hold the close handshake
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self.tokens is not None:
            await self.tokens.stop()

    async def __aenter__(self) -> RealtimeSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != PATH:
            return _json_error(connection, HTTPStatus.NOT_FOUND, f"Unknown path; use {PATH}.", None)
        self.handshakes += 1
        fault = handshake_fault(self.options.faults, self.handshakes)
        if fault is not None:
            self.fired(fault, self.handshakes)
            return _json_response(connection, *http_answer(fault))
        if self.options.require_auth and _bearer_token(request.headers) is None:
            return _json_error(
                connection,
                HTTPStatus.UNAUTHORIZED,
                "You didn't provide an API key. Send 'Authorization: Bearer <key>'.",
                "invalid_api_key",
            )
        if self.tokens and (refused := self.tokens.service.refusal(_bearer_token(request.headers))):
            return _json_error(connection, HTTPStatus.UNAUTHORIZED, refused, "invalid_api_key")
        if _model(request) is None and not _wants_beta(request.headers):
            return _json_error(
                connection, HTTPStatus.BAD_REQUEST, "Missing required parameter: 'model'.", None
            )
        self._attempt_of[connection] = self.handshakes
        return None

    @property
    def open_connections(self) -> int:
        """Connections being served now (a stalled one until its stall ends)."""
        return len(self._links)

    def inject(self, fault: Fault) -> int:
        """Arm ``fault`` on every open connection now (``#K`` counts from now on);
        returns how many connections it was armed on. HTTP faults go in ``options``."""
        for link in self._links:
            link.faults.arm(fault)
        return len(self._links)

    def fired(self, fault: Fault, connection: int) -> None:
        _log.info("fault %s on connection %d", fault, connection)
        self.faults_fired.append(str(fault))

    @staticmethod
    def _select_subprotocol(
        connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        return Subprotocol("realtime") if "realtime" in offered else None

    async def _serve_connection(self, websocket: ServerConnection) -> None:
        self.connections += 1
        request = websocket.request
        assert request is not None
        session = SimulatorSession(self.options, _model(request) or "gpt-realtime", time.time())
        attempt = self._attempt_of.pop(websocket, self.handshakes)
        faults = ConnectionFaults(self.options.faults, attempt)
        link = _Link(self, websocket, session, faults, attempt)
        self._links.add(link)
        try:
            if _wants_beta(request.headers):
                await link.reject_beta()
                return
            await link.run()
        finally:
            self._links.discard(link)
            self.close_codes.append(websocket.close_code)


class _Link:
    """One connection: a reader, a single ordered writer, and a streamer per response."""

    def __init__(
        self,
        simulator: RealtimeSimulator,
        websocket: ServerConnection,
        session: SimulatorSession,
        faults: ConnectionFaults,
        number: int,
    ) -> None:
        self._sim = simulator
        self._ws = websocket
        self._session = session
        self.faults = faults
        self._number = number
        self._outbox: asyncio.Queue[Event | _Close] = asyncio.Queue()
        self._streams: set[asyncio.Task[None]] = set()
        self.stall = Stall()

    def _enqueue(self, events: list[Event]) -> None:
        """Queue in generation order; one writer keeps that order on the wire."""
        for event in events:
            self._sim.sent.append(event)
            self._outbox.put_nowait(event)

    async def reject_beta(self) -> None:
        error = SimError("beta_api_shape_disabled", BETA_MESSAGE)
        self._enqueue([self._session.error(error, None)])
        self._outbox.put_nowait(_Close(CLOSE_BETA, "beta_api_shape_disabled"))
        await self._write()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._enqueue(self._session.created())
        expiry = loop.call_later(self._sim.options.session_lifetime_s, self._expire)
        writer = asyncio.create_task(self._write())
        try:
            await self._read()
        finally:
            expiry.cancel()
            for task in [*self._streams, writer]:
                task.cancel()
            for task in [*self._streams, writer]:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task

    def _expire(self) -> None:
        self._enqueue(self._session.expired())
        self._outbox.put_nowait(_Close(CLOSE_GOING_AWAY, "session_expired"))

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            if not await self._fire(self.faults.at_open(), None):
                return
        while True:
            item = await self._outbox.get()
            try:
                if isinstance(item, _Close):
                    await self._ws.close(item.code, item.reason)
                    return
                await self._ws.send(json.dumps(item))
                if not await self._fire(self.faults.after(str(item["type"])), item):
                    return
            except ConnectionClosed:
                return
            finally:
                self._outbox.task_done()

    async def _fire(self, faults: list[Fault], trigger: Event | None) -> bool:
        """Carry out the faults due now; False once the connection is over."""
        for fault in faults:
            self._sim.fired(fault, self._number)
            if not await self._act(action(fault, trigger, self._session)):
                return False
        return True

    async def _act(self, todo: Action) -> bool:
        for frame in todo.frames:
            if isinstance(frame, dict):
                self._sim.sent.append(frame)
                frame = json.dumps(frame)
            await self._ws.send(frame)
        if todo.close is not None:
            await self._ws.close(*todo.close)
            return False
        if todo.abort:
            self._ws.transport.abort()
            return False
        if todo.stall_s is not None:
            await self.stall.run(self._ws, todo.stall_s)
        return self._ws.state is State.OPEN

    def abort_stall(self) -> None:
        self.stall.abort(self._ws)

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.stall.reading.wait()
                frame = await self._ws.recv()
                if isinstance(frame, bytes):
                    self._enqueue(self._session.invalid_frame("Binary frames are not supported."))
                    continue
                try:
                    event = json.loads(frame)
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    self._enqueue(self._session.invalid_frame("Expected a JSON object."))
                    continue
                self._sim.received.append(event)
                try:
                    self._enqueue(self._sim.limits.handle(self._session, event))
                except Exception:  # a simulator fault must not look like a dropped network
                    _log.exception("simulator failed on %s", event.get("type"))
                    fault = SimError(
                        "server_error", "The server had an error.", None, "server_error"
                    )
                    self._enqueue([self._session.error(fault, None)])
                for response in self._session.take_started():
                    task = asyncio.create_task(self._stream(response.plan.response_id))
                    self._streams.add(task)
                    task.add_done_callback(self._streams.discard)

    async def _stream(self, response_id: str) -> None:
        """Synthesise off the loop, then stream step by step, yielding between steps."""
        session = self._session
        response = session.responses.get(response_id)
        if response is None:
            return
        if response.plan.modality == "audio":
            plan = response.plan
            try:
                pcm = await asyncio.get_running_loop().run_in_executor(
                    None, synthesize, plan.text, self._sim.options.voice_engine, plan.speed
                )
            except Exception as exc:  # any synthesis failure ends this response, not the session
                _log.error("reply audio failed: %s", exc)
                message = f"Reply audio could not be synthesised: {exc}"
                self._enqueue(session.fail_response(response_id, message))
                return
            session.attach_audio(response_id, pcm)
        while session.is_streaming(response_id):
            self._enqueue(session.step(response_id))
            await self._outbox.join()
            await asyncio.sleep(self._sim.options.delta_interval_s)
