"""The link to the Realtime service: connect, serve one session, reconnect.

One ``ServiceLink`` per daemon. It owns the WebSocket client, the sans-I/O
session and the conversation of the current connection, and the retry policy
between connections (capped, jittered backoff; a slow retry for what needs a
person). The daemon hands it microphone chunks (``offer_audio``) and reads
``session``/``conversation`` for what the audio loop needs; everything the link
learns flows back through the daemon's ``dispatch`` and fault hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from device.conversation import Conversation
from device.errors import Decision, RemoteProtocolError, ServiceError, classify, classify_close
from device.realtime.client import Closed, RealtimeClient, realtime_url
from device.realtime.events import ResponseDone
from device.realtime.session import RealtimeSession, SessionSettings
from device.state import Event
from device.trace import Trace

if TYPE_CHECKING:
    from device.app import Daemon

log = logging.getLogger(__name__)

MAX_SEND_BACKLOG_CHUNKS = 50  # ~2 s of audio at 40 ms chunks; beyond that the link is down
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
SLOW_RETRY_S = 300.0


class _SessionRestart(Exception):
    """The session must be replaced (its settings changed)."""


def backoff_delay_s(attempt: int, decision: Decision, rand: Callable[[], float]) -> float:
    """Capped exponential backoff with jitter (0.5..1 of the step); pure."""
    if decision.delay_s > 0:
        return decision.delay_s
    if decision.slow:
        return SLOW_RETRY_S * (0.5 + 0.5 * rand())
    step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * float(2 ** min(attempt, 16)))
    return step * (0.5 + 0.5 * rand())


class ServiceLink:
    """The daemon's connection to the service, across reconnects."""

    def __init__(
        self,
        daemon: Daemon,
        api_key: str,
        *,
        trace: Trace | None,
        rand: Callable[[], float],
    ) -> None:
        self._daemon = daemon
        self._api_key = api_key
        self._trace = trace
        self._rand = rand
        self.session: RealtimeSession | None = None
        self.conversation: Conversation | None = None
        self._send_wanted = asyncio.Event()
        self._restart = asyncio.Event()
        self._backlog_chunks = 0

    def __repr__(self) -> str:  # never shows the key
        return f"ServiceLink(online={self.session is not None})"

    @property
    def ready(self) -> bool:
        """True while a session is open and has accepted its settings."""
        return self.session is not None and self.session.configured

    def wake_sender(self) -> None:
        """Queued client events are waiting on the session: send them."""
        self._send_wanted.set()

    def restart(self) -> None:
        """End the current session and open a new one at once (settings changed)."""
        self._restart.set()

    def clear_input(self) -> None:
        """Drop audio already sent but not yet committed, if a session is open."""
        if self.session is not None:
            self.session.clear_input()
            self._send_wanted.set()

    def offer_audio(self, chunk: bytes) -> bool:
        """Send a microphone chunk; False when it was dropped (link down or backlogged)."""
        session = self.session
        if session is None or not session.configured:
            self._daemon.stats.chunks_dropped_offline += 1
            return False
        if self._backlog_chunks >= MAX_SEND_BACKLOG_CHUNKS:
            self._daemon.stats.chunks_dropped_backlog += 1
            return False
        session.append_audio(chunk)
        self._backlog_chunks += 1
        self._send_wanted.set()
        return True

    def settings(self) -> SessionSettings:
        rt = self._daemon.config.realtime
        return SessionSettings(
            voice=rt.voice,
            instructions=rt.instructions,
            tools=tuple(self._daemon.tools.definitions()),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, and reconnect until ``stop`` is set."""
        daemon = self._daemon
        attempt = 0
        while not stop.is_set():
            rt = daemon.config.realtime  # re-read: a reload may have changed it
            url = realtime_url(rt.url, rt.model)
            restart = False
            client = RealtimeClient(
                url,
                self._api_key,
                max_message_bytes=rt.max_message_mib * 1024 * 1024,
                open_timeout_s=rt.connect_timeout_s,
                trace=self._trace,
            )
            try:
                await client.connect()
                attempt = 0
                daemon.stats.connections += 1
                log.info("connected to %s", rt.url)
                await self._serve(client)
                decision = Decision(True, "session ended")
            except _SessionRestart:
                restart = True
                decision = Decision(True, "settings changed")
            except Closed as exc:
                decision = classify_close(exc.code)
            except (ServiceError, OSError, TimeoutError, RemoteProtocolError) as exc:
                decision = classify(exc)
            finally:
                self.session = None
                self.conversation = None
                daemon.dispatch(Event.DISCONNECTED)
                with contextlib.suppress(Exception):
                    await client.close(1000)
            if decision.slow:
                daemon.set_fault("service", decision.reason)
            delay_s = 0.0 if restart else backoff_delay_s(attempt, decision, self._rand)
            log.log(
                logging.INFO if restart else logging.WARNING,
                "%s; reconnecting in %.1f s",
                decision.reason,
                delay_s,
            )
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay_s)
            # The retry may succeed; a new failure sets the fault again.
            daemon.clear_fault("service")

    async def _serve(self, client: RealtimeClient) -> None:
        """Serve one connection until it closes (raises Closed)."""
        daemon = self._daemon
        session = RealtimeSession(self.settings())
        conversation = Conversation(
            session,
            daemon.reply,
            daemon.timeline,
            tools=daemon.tools,
            on_send=self._send_wanted.set,
        )
        self.session, self.conversation = session, conversation
        self._backlog_chunks = 0
        session.configure()
        self._send_wanted.set()
        self._restart.clear()
        sender = asyncio.create_task(self._sender(client, session), name="sender")
        receiver = asyncio.create_task(
            self._receiver(client, session, conversation), name="receiver"
        )
        restart = asyncio.create_task(self._restart.wait())
        tasks = (sender, receiver, restart)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if restart in done:
                raise _SessionRestart()
            for task in done:
                exc = task.exception()
                if exc is not None:
                    raise exc
            raise Closed(None, "session tasks ended")
        finally:
            conversation.close()  # running tools are cancelled, late results dropped
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _receiver(
        self, client: RealtimeClient, session: RealtimeSession, conversation: Conversation
    ) -> None:
        daemon = self._daemon
        while True:
            frame = await client.recv()
            try:
                events = session.receive(frame)
            except RemoteProtocolError as exc:
                daemon.stats.bad_frames += 1
                log.warning("ignored a bad frame from the service: %s", exc)
                continue
            for server_event in events:
                if isinstance(server_event, ResponseDone) and server_event.usage is not None:
                    daemon.usage.account(server_event.usage)
                for event in conversation.handle(server_event):
                    daemon.dispatch(event)
            self._send_wanted.set()

    async def _sender(self, client: RealtimeClient, session: RealtimeSession) -> None:
        daemon = self._daemon
        while True:
            await self._send_wanted.wait()
            self._send_wanted.clear()
            for event in session.data_to_send():
                if event.get("type") == "input_audio_buffer.append":
                    self._backlog_chunks -= 1
                    daemon.stats.chunks_sent += 1
                await client.send(event)
