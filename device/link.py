"""The link to the Realtime service: connect, serve sessions, rotate them, reconnect.

One ``ServiceLink`` per daemon. It owns the WebSocket client, the sans-I/O
session and the conversation of the current connection, and the retry policy
between connections (capped, jittered backoff; a slow retry for what needs a
person). The daemon hands it microphone chunks (``offer_audio``) and reads
``session``/``conversation`` for what the audio loop needs; everything the link
learns flows back through the daemon's ``dispatch`` and fault hooks.

Across sessions it keeps what one session cannot: the recent turns
(``device.history``), re-seeded as text into every new session; the rotation
before the service's 60-minute limit (``device.rotation``); client secrets when
``realtime.token_url`` is set (``device.tokens``); the account's rate limits,
holding ``response.create`` while one is spent (``device.ratelimits``); and the
AI disclosure said at the device's first session (``device.disclosure``). The
keepalive pings are the client's, with the intervals of ``[link]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from device.audio.playback import PlaybackEvent
from device.connector import Connector, StaleSecret
from device.conversation import Conversation
from device.disclosure import Disclosure
from device.errors import Decision, RemoteProtocolError, ServiceError, classify, classify_close
from device.history import History, seed_items
from device.ratelimits import HeldResponses, Level, RateGate
from device.realtime.client import Closed, RealtimeClient
from device.realtime.events import RateLimitsUpdated, ResponseDone, ServerError
from device.realtime.session import RealtimeSession, SessionSettings
from device.rotation import RETRY_S, RotationPlan, is_quiet, prepare
from device.session_settings import session_settings
from device.state import Event
from device.tokens import TokenError
from device.trace import Trace

if TYPE_CHECKING:
    from device.app import Daemon

log = logging.getLogger(__name__)

MAX_SEND_BACKLOG_CHUNKS = 50  # ~2 s of audio at 40 ms chunks; beyond that the link is down
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
SLOW_RETRY_S = 300.0
QUIET_POLL_S = 0.2  # how often a due rotation looks for a quiet moment
ROTATION_CHECK_S = 30.0  # how often a session without a due rotation looks again
_FAILURES = (ServiceError, OSError, TimeoutError, RemoteProtocolError, Closed)


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
    """The daemon's connection to the service, across reconnects and rotations."""

    def __init__(
        self,
        daemon: Daemon,
        api_key: str,
        *,
        trace: Trace | None,
        rand: Callable[[], float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._daemon = daemon
        # api_key: with realtime.token_url, the device's credential for that URL.
        self.connector = Connector(lambda: daemon.config, api_key, trace=trace, clock=clock)
        self._rand = rand
        self._clock = clock  # Unix seconds, the clock of expires_at
        self.session: RealtimeSession | None = None
        self.conversation: Conversation | None = None
        self.history = History()
        self.limits = RateGate()
        self.disclosure = Disclosure(daemon.config.device.state_dir)
        self.rotations = 0  # sessions replaced before the service ended them
        self._client: RealtimeClient | None = None
        self._send_wanted = asyncio.Event()
        self._restart = asyncio.Event()
        self._held = HeldResponses(self.limits, self._send_wanted.set)
        self._backlog_chunks = 0
        self._expired = False  # the service ended the session (session_expired)
        self._closing: set[asyncio.Task[None]] = set()

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

    def on_playback(self, event: PlaybackEvent) -> None:
        """What the speaker did with reply audio (the disclosure waits to be heard)."""
        self.disclosure.on_playback(event)

    async def flush(self) -> None:
        """Wait for state files being written (the daemon calls this as it stops)."""
        await self.disclosure.flush()

    def settings(self) -> SessionSettings:
        daemon = self._daemon
        return session_settings(daemon.config, (*daemon.tools.definitions(), *daemon.mcp.tools()))

    # -- connections -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, and reconnect until ``stop`` is set."""
        daemon = self._daemon
        await self.disclosure.load()
        attempt = 0
        while not stop.is_set():
            restart = False
            try:
                client = await self.connector.open()
                attempt = 0
                daemon.stats.connections += 1
                log.info("connected to %s", daemon.config.realtime.url)
                await self._serve(client)
                decision = Decision(True, "session ended")
            except _SessionRestart:
                restart, decision = True, Decision(True, "settings changed")
            except StaleSecret:
                restart, decision = True, Decision(True, "the client secret was refused")
            except Closed as exc:
                decision = classify_close(exc.code)
            except TokenError as exc:
                decision = replace(classify(exc), reason=str(exc))
            except (ServiceError, OSError, TimeoutError, RemoteProtocolError) as exc:
                decision = classify(exc)
            finally:
                self.session = None
                self.conversation = None
                daemon.dispatch(Event.DISCONNECTED)
                current, self._client = self._client, None
                if current is not None:
                    with contextlib.suppress(Exception):
                        await current.close(1000)
            expired, self._expired = self._expired, False
            if expired and not decision.slow:
                # The 60-minute limit came before a quiet moment did: carry on at once.
                restart, decision = True, Decision(True, "the service ended the session")
            if decision.slow:
                daemon.set_fault("service", decision.reason)
            delay_s = 0.0 if restart else backoff_delay_s(attempt, decision, self._rand)
            log.log(
                logging.INFO if restart else logging.WARNING,
                "%s; reconnecting in %.1f s",
                decision.reason,
                delay_s,
            )
            attempt += 0 if restart else 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay_s)
            # The retry may succeed; a new failure sets the fault again.
            daemon.clear_fault("service")

    def _seeds(self) -> list[dict[str, Any]]:
        link = self._daemon.config.link
        return seed_items(self.history.turns(), link.reseed_turns, link.reseed_chars)

    async def _serve(self, client: RealtimeClient) -> None:
        """Serve a connection, and each that replaces it by rotation, until one ends."""
        session: RealtimeSession | None = None
        while True:
            self._client = client
            next_client, session = await self._serve_one(client, session)
            self.rotations += 1
            log.info("session rotated before its end; the recent turns went along")
            closing = asyncio.create_task(self._close(client))  # nothing waits for it
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            client = next_client

    @staticmethod
    async def _close(client: RealtimeClient) -> None:
        with contextlib.suppress(Exception):
            await client.close(1000)

    async def _serve_one(
        self, client: RealtimeClient, ready: RealtimeSession | None
    ) -> tuple[RealtimeClient, RealtimeSession]:
        """Serve one connection: returns the one that replaces it (a rotation), raises
        ``Closed`` when it ends and ``_SessionRestart`` when the settings changed.
        ``ready`` is a session a rotation already configured and seeded."""
        daemon = self._daemon
        session = ready if ready is not None else RealtimeSession(self.settings())
        conversation = Conversation(
            session,
            daemon.reply,
            daemon.timeline,
            tools=daemon.tools,
            on_send=self._send_wanted.set,
            mcp=daemon.mcp,
        )
        self.session, self.conversation = session, conversation
        self._backlog_chunks = 0
        self._expired = False
        self.disclosure.new_session()
        if ready is None:
            session.configure()
            seeds = self._seeds()
            for item in seeds:
                session.create_item(item)
            if seeds:
                log.info("re-seeded the new session with %d recent turns", len(seeds))
        self._send_wanted.set()
        self._restart.clear()
        sender = asyncio.create_task(self._sender(client, session), name="sender")
        receiver = asyncio.create_task(
            self._receiver(client, session, conversation), name="receiver"
        )
        restart = asyncio.create_task(self._restart.wait())
        rotator = asyncio.create_task(self._rotator(session), name="rotator")
        tasks = (sender, receiver, restart, rotator)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if restart in done:
                raise _SessionRestart()
            if rotator in done:
                return rotator.result()
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
            daemon.stats.chunks_unsent += self._backlog_chunks  # they went with the socket
            self._backlog_chunks = 0
            self._held.clear()  # asked of this session; the next one asks anew

    # -- rotation ----------------------------------------------------------------------

    def _quiet(self, session: RealtimeSession) -> bool:
        daemon = self._daemon
        running = session.active_response_id is not None
        return is_quiet(
            daemon.state, running, daemon.playback.queued_frames, daemon.capture.is_open
        )

    async def _rotator(self, session: RealtimeSession) -> tuple[RealtimeClient, RealtimeSession]:
        """Wait until the session should be replaced, then open and ready its successor."""
        while True:
            expires_at = session.expires_at
            if expires_at is None:  # session.created is the first frame: soon known
                await asyncio.sleep(QUIET_POLL_S)
                continue
            plan = RotationPlan.for_session(expires_at, self._daemon.config.link.rotate_before_s)
            if plan is None:
                await asyncio.sleep(ROTATION_CHECK_S)  # off; a reload may turn it on
                continue
            now_s = self._clock()
            if not plan.due(now_s, self._quiet(session)):
                await asyncio.sleep(min(ROTATION_CHECK_S, max(QUIET_POLL_S, plan.wait_s(now_s))))
                continue
            try:
                return await self._open_next()
            except (*_FAILURES, StaleSecret) as exc:
                log.warning("could not open the next session (%s); keeping this one", exc)
                await asyncio.sleep(RETRY_S)

    async def _open_next(self) -> tuple[RealtimeClient, RealtimeSession]:
        """The next session, connected, configured and seeded, beside the current one."""
        client = await self.connector.open()
        session = RealtimeSession(self.settings())
        seeds = self._seeds()
        try:
            await prepare(client, session, seeds, self._daemon.config.realtime.connect_timeout_s)
        except BaseException:
            await self._close(client)
            raise
        self._daemon.stats.connections += 1
        log.info("opened the next session with %d recent turns", len(seeds))
        return client, session

    # -- the two directions of one connection --------------------------------------------

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
                elif isinstance(server_event, RateLimitsUpdated):
                    self._rate_limits(server_event)
                elif (
                    isinstance(server_event, ServerError) and server_event.code == "session_expired"
                ):
                    self._expired = True
                self.history.observe(server_event)
                self.disclosure.observe(server_event, session)
                for event in conversation.handle(server_event):
                    daemon.dispatch(event)
            text = daemon.config.link.disclosure
            if session.configured and self.disclosure.due(text) and self._quiet(session):
                self.disclosure.ask(session, text)
            self._send_wanted.set()

    def _rate_limits(self, event: RateLimitsUpdated) -> None:
        now_s = asyncio.get_running_loop().time()
        for notice in self.limits.update(event.limits, now_s):
            log.log(logging.INFO if notice.level is Level.OK else logging.WARNING, notice.message)

    async def _sender(self, client: RealtimeClient, session: RealtimeSession) -> None:
        daemon = self._daemon
        while True:
            await self._send_wanted.wait()
            self._send_wanted.clear()
            released = self._held.released()
            for event in [*released, *session.data_to_send()]:
                kind = event.get("type")
                if kind == "response.create" and event not in released and self._held.hold(event):
                    continue
                if kind == "input_audio_buffer.append":
                    self._backlog_chunks -= 1
                    daemon.stats.chunks_sent += 1
                await client.send(event)
