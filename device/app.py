"""The composition root: the daemon's supervised tasks on one event loop.

    audio callback ──► AudioBridge ──► capture task: VAD gate ─► 24 kHz ─► session.append
                                                                           │
    speaker ◄── PlaybackBuffer ◄── Conversation ◄── connection task ◄──────┘ (WebSocket)

Tasks: capture (the audio loop; it feeds the watchdog), connection (connect,
receive, reconnect with backoff), sender (drains the sans-I/O session to the
socket), LEDs, and the service notifier. No task ever waits on the network
while holding audio: while offline, mic audio is dropped, never queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device.audio.bridge import AudioBridge
from device.audio.capture import CapturePipeline, GateSettings
from device.audio.playback import PlaybackBuffer
from device.audio.supervisor import AudioSupervisor
from device.config import Config
from device.controls import DaemonControls
from device.conversation import Conversation, ReplyPlayer
from device.device_tools import device_tools
from device.errors import Decision, RemoteProtocolError, ServiceError, classify, classify_close
from device.logs import STATE_FIELD
from device.realtime.client import Closed, RealtimeClient, realtime_url
from device.realtime.events import ResponseDone
from device.realtime.session import RealtimeSession, SessionSettings
from device.service import ServiceNotifier
from device.state import Event, State, transition
from device.timeline import LOCAL_SPEECH_END, LOCAL_SPEECH_START, Timeline
from device.tools import ToolRegistry
from device.trace import Trace
from device.ui.leds import pattern
from device.usage import UsageKeeper, today_iso
from hw.factory import Hardware
from hw.ports import Rgb

log = logging.getLogger(__name__)

LED_REFRESH_S = 0.05
MAX_SEND_BACKLOG_CHUNKS = 50  # ~2 s of audio at 40 ms chunks; beyond that the link is down
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
SLOW_RETRY_S = 300.0

# Settings read when the hardware is opened: a reload cannot apply them.
RESTART_ONLY = (
    ("device", "hardware"),
    ("device", "board"),
    ("audio", "input_device"),
    ("audio", "output_device"),
    ("audio", "block_ms"),
    ("audio", "mic_channel"),
)


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


@dataclass
class DaemonStats:
    audio_blocks: int = 0
    chunks_sent: int = 0
    chunks_dropped_offline: int = 0
    chunks_dropped_backlog: int = 0
    chunks_held_while_speaking: int = 0
    chunks_dropped_budget: int = 0
    chunks_dropped_muted: int = 0
    bad_frames: int = 0
    connections: int = 0


class Daemon:
    """edgevoice: one device, one conversation at a time."""

    def __init__(
        self,
        config: Config,
        hardware: Hardware,
        api_key: str,
        *,
        timeline: Timeline | None = None,
        trace: Trace | None = None,
        rand: Callable[[], float] = random.random,
        today: Callable[[], str] = today_iso,
    ) -> None:
        self.config = config
        self.hw = hardware
        self._api_key = api_key
        self.timeline = timeline
        self._trace = trace
        self._rand = rand
        self.state = State.OFFLINE
        self.stats = DaemonStats()
        self.service = ServiceNotifier(hardware.notifier)
        fmt = hardware.duplex.format
        self.playback = PlaybackBuffer(fmt.rate_hz)
        self.reply = ReplyPlayer(self.playback, fmt.rate_hz)
        self.controls = DaemonControls(self, config.audio.volume_percent, config.device.state_dir)
        self.capture = self._capture_pipeline(config)
        self.conversation: Conversation | None = None
        self._session: RealtimeSession | None = None
        self._send_wanted = asyncio.Event()
        self._backlog_chunks = 0
        self._bridge: AudioBridge | None = None
        self._restart_session = asyncio.Event()
        self.audio = AudioSupervisor()
        self.usage = UsageKeeper(config, today=today, on_pause_change=self._budget_paused)
        self.tools = self._tool_registry(config)
        # What currently needs a person or waits on hardware; FAULT lasts while any does.
        self.faults: set[str] = set()
        self.replies_finished = 0
        self._reply_finished = asyncio.Event()

    def __repr__(self) -> str:  # never shows the key
        return f"Daemon(state={self.state.value})"

    def _capture_pipeline(self, config: Config) -> CapturePipeline:
        vad = config.vad
        return CapturePipeline(
            self.hw.duplex.format.rate_hz,
            GateSettings(vad.aggressiveness, vad.start_ms, vad.pre_roll_ms, vad.hangover_ms),
            config.audio.send_chunk_ms,
            config.audio.aec,
            config.vad.backend,
        )

    @property
    def online(self) -> bool:
        return self._session is not None

    def _tool_registry(self, config: Config) -> ToolRegistry:
        return ToolRegistry(device_tools(self.controls, config.tools.enabled),
                            timeout_s=config.tools.timeout_s)

    def mic_mute_changed(self, muted: bool) -> None:
        """The microphone was muted or unmuted: drop half-sent speech, say so."""
        if muted and self._session is not None:
            self._session.clear_input()
            self._send_wanted.set()
        self.service.status(self._status_line())

    def reload(self, config: Config) -> list[str]:
        """Apply a re-read config; returns the changed settings that need a restart."""
        old = self.config
        if (config.vad, config.audio.send_chunk_ms, config.audio.aec) != (
            old.vad, old.audio.send_chunk_ms, old.audio.aec
        ):
            # built first: an unavailable echo canceller must leave everything as it was
            self.capture = self._capture_pipeline(config)
        self.config = config
        pending = [
            f"{section}.{key}"
            for section, key in RESTART_ONLY
            if getattr(getattr(old, section), key) != getattr(getattr(config, section), key)
        ]
        self.usage.configure(config)
        if config.tools != old.tools:
            self.tools = self._tool_registry(config)
        if config.realtime != old.realtime or config.tools != old.tools:
            # The voice cannot change within a session: start a new one.
            self._restart_session.set()
        return pending

    @property
    def mic_channel(self) -> int:
        configured = self.config.audio.mic_channel
        return self.hw.board.mic_channels[0] if configured < 0 else configured

    # -- lifecycle -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; raises HardwareError if audio cannot start."""
        loop = asyncio.get_running_loop()
        self._bridge = AudioBridge(
            loop,
            self.hw.duplex.format,
            self.playback,
            mic_channel=self.mic_channel,
            loopback_channels=self.hw.board.loopback_channels,
        )
        self.service.status(self._status_line())
        await self.usage.load()
        await self.controls.load()
        bridge = self._bridge
        # Open once here so a device missing at start is a clear error for the
        # person starting us; from then on the supervisor reopens it after faults.
        self.hw.duplex.start(bridge.callback)
        tasks = [
            asyncio.create_task(
                self.audio.run(
                    self.hw.duplex,
                    bridge.callback,
                    on_fault=lambda reason: self._set_fault("audio", reason),
                    on_recovered=lambda: self._clear_fault("audio"),
                ),
                name="audio",
            ),
            asyncio.create_task(self._capture_loop(self._bridge), name="capture"),
            asyncio.create_task(self._connection_loop(stop), name="connection"),
            asyncio.create_task(self._led_loop(), name="leds"),
            asyncio.create_task(self.usage.day_loop(), name="day"),
            asyncio.create_task(
                self.service.watchdog_loop(
                    lambda: bridge.stats.callbacks,
                    lambda: self.stats.audio_blocks,
                    # A device the supervisor knows is gone is not a wedged loop:
                    # restarting the service would not bring it back.
                    excused=lambda: self.audio.faulted,
                ),
                name="watchdog",
            ),
        ]
        stopped = asyncio.create_task(stop.wait())
        try:
            # Tasks may end on their own (no watchdog configured, LEDs gone);
            # only the stop request or a task's exception ends the daemon.
            running: set[asyncio.Task[Any]] = {stopped, *tasks}
            while not stopped.done():
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc is not None:
                        raise exc
        finally:
            self.service.stopping()
            for task in [*tasks, stopped]:
                task.cancel()
            await asyncio.gather(*tasks, stopped, return_exceptions=True)
            self.hw.duplex.stop()
            self.hw.leds.close()
            await self.usage.flush()
            await self.controls.flush()

    async def wait_for_replies(self, count: int) -> None:
        """Return once ``count`` replies have finished playing (or been cut)."""
        while self.replies_finished < count:
            await self._reply_finished.wait()
            self._reply_finished.clear()

    # -- state -----------------------------------------------------------------------
    def dispatch(self, event: Event) -> None:
        if event is Event.REPLY_FINISHED:
            self.replies_finished += 1
            self._reply_finished.set()
        new = transition(self.state, event)
        if new is not self.state:
            log.info("state %s -> %s (%s)", self.state.value, new.value, event.value,
                     extra={STATE_FIELD: new.value})
            self.state = new
            self.service.status(self._status_line())

    def _status_line(self) -> str:
        online = "connected" if self._session is not None else "not connected"
        faults = f", fault: {', '.join(sorted(self.faults))}" if self.faults else ""
        budget = ", budget spent" if self.usage.paused else ""
        muted = ", microphone muted" if self.controls.mic_muted else ""
        return f"{self.state.value}, {online}{faults}{budget}{muted}"

    def _budget_paused(self, paused: bool) -> None:
        if paused and self._session is not None:
            self._session.clear_input()  # drop half-sent speech: no reply will be paid for
            self._send_wanted.set()
        self.service.status(self._status_line())

    def _set_fault(self, source: str, reason: str) -> None:
        """``source`` ("audio", "service") needs attention; FAULT until all clear."""
        log.error("%s fault: %s", source, reason)
        self.faults.add(source)
        self.dispatch(Event.FAULT)
        self.service.status(self._status_line())
        if source == "audio":
            # systemd waits for READY; an absent device must not make it kill us
            # in a loop: we report the fault and keep trying ourselves.
            self.service.ready()

    def _clear_fault(self, source: str) -> None:
        if source not in self.faults:
            return
        self.faults.discard(source)
        log.info("%s recovered", source)
        if not self.faults:
            self.dispatch(Event.RECOVERED)
            if self._session is not None and self._session.configured:
                self.dispatch(Event.CONNECTED)
        self.service.status(self._status_line())

    # -- audio -----------------------------------------------------------------------
    async def _capture_loop(self, bridge: AudioBridge) -> None:
        hangover_s = self.config.vad.hangover_ms / 1000.0
        while True:
            for block in await bridge.get():
                self.stats.audio_blocks += 1
                for played in block.playback_events:
                    if self.conversation is not None:
                        for event in self.conversation.on_playback(played, block.at_s):
                            self.dispatch(event)
                result = self.capture.process(block.mic, block.reference)
                if result.speech_started and self.usage.paused:
                    self.usage.check_day()  # speech just after midnight must not be lost
                if result.speech_started and self.timeline is not None:
                    onset_s = block.at_s - result.onset_offset_ms / 1000.0
                    self.timeline.mark(LOCAL_SPEECH_START, at_s=onset_s)
                if result.speech_stopped and self.timeline is not None:
                    self.timeline.mark(LOCAL_SPEECH_END, at_s=block.at_s - hangover_s)
                for chunk in result.chunks:
                    self._stream(chunk)
            self.service.ready()

    def _stream(self, chunk: bytes) -> None:
        if self.controls.mic_muted:
            self.stats.chunks_dropped_muted += 1
            return
        if self.usage.paused:
            self.stats.chunks_dropped_budget += 1
            return
        session = self._session
        if session is None or not session.configured:
            self.stats.chunks_dropped_offline += 1
            return
        if self.playback.queued_frames > 0 and not self.capture.cancels_echo:
            # Without echo cancellation the speaker would hear itself and
            # interrupt its own reply: hold the mic while it plays.
            self.stats.chunks_held_while_speaking += 1
            return
        if self._backlog_chunks >= MAX_SEND_BACKLOG_CHUNKS:
            self.stats.chunks_dropped_backlog += 1
            return
        session.append_audio(chunk)
        self._backlog_chunks += 1
        self._send_wanted.set()

    async def _led_loop(self) -> None:
        loop = asyncio.get_running_loop()
        leds = self.hw.leds
        while True:
            try:
                leds.show(self._led_pixels(loop.time(), leds.count))
            except Exception:
                log.exception("LED update failed; LEDs stay as they are")
                return
            await asyncio.sleep(LED_REFRESH_S)

    def _led_pixels(self, t_s: float, count: int) -> list[Rgb]:
        """The state's pattern; while idle, the colour a tool asked for, if any."""
        chosen = self.controls.led_color
        if chosen is not None and self.state is State.IDLE:
            rgb, brightness = chosen
            return [rgb.scaled(brightness)] * count
        return pattern(self.state, t_s, count)

    # -- network ---------------------------------------------------------------------
    def _settings(self) -> SessionSettings:
        rt = self.config.realtime
        return SessionSettings(voice=rt.voice, instructions=rt.instructions,
                               tools=tuple(self.tools.definitions()))

    async def _connection_loop(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            rt = self.config.realtime  # re-read: a reload may have changed it
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
                self.stats.connections += 1
                log.info("connected to %s", rt.url)
                await self._run_session(client)
                decision = Decision(True, "session ended")
            except _SessionRestart:
                restart = True
                decision = Decision(True, "settings changed")
            except Closed as exc:
                decision = classify_close(exc.code)
            except (ServiceError, OSError, TimeoutError, RemoteProtocolError) as exc:
                decision = classify(exc)
            finally:
                self._session = None
                self.conversation = None
                self.dispatch(Event.DISCONNECTED)
                with contextlib.suppress(Exception):
                    await client.close(1000)
            if decision.slow:
                self._set_fault("service", decision.reason)
            delay_s = 0.0 if restart else backoff_delay_s(attempt, decision, self._rand)
            log.log(logging.INFO if restart else logging.WARNING,
                    "%s; reconnecting in %.1f s", decision.reason, delay_s)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay_s)
            # The retry may succeed; a new failure sets the fault again.
            self._clear_fault("service")

    async def _run_session(self, client: RealtimeClient) -> None:
        """Serve one connection until it closes (raises Closed)."""
        session = RealtimeSession(self._settings())
        conversation = Conversation(session, self.reply, self.timeline,
                                    tools=self.tools, on_send=self._send_wanted.set)
        self._session, self.conversation = session, conversation
        self._backlog_chunks = 0
        session.configure()
        self._send_wanted.set()
        self._restart_session.clear()
        sender = asyncio.create_task(self._sender(client, session), name="sender")
        receiver = asyncio.create_task(self._receiver(client, session, conversation))
        restart = asyncio.create_task(self._restart_session.wait())
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
        while True:
            frame = await client.recv()
            try:
                events = session.receive(frame)
            except RemoteProtocolError as exc:
                self.stats.bad_frames += 1
                log.warning("ignored a bad frame from the service: %s", exc)
                continue
            for server_event in events:
                if isinstance(server_event, ResponseDone) and server_event.usage is not None:
                    self.usage.account(server_event.usage)
                for event in conversation.handle(server_event):
                    self.dispatch(event)
            self._send_wanted.set()

    async def _sender(self, client: RealtimeClient, session: RealtimeSession) -> None:
        while True:
            await self._send_wanted.wait()
            self._send_wanted.clear()
            for event in session.data_to_send():
                if event.get("type") == "input_audio_buffer.append":
                    self._backlog_chunks -= 1
                    self.stats.chunks_sent += 1
                await client.send(event)
