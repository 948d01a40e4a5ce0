"""The composition root: the daemon's supervised tasks on one event loop.

    audio callback ──► AudioBridge ──► capture task: VAD gate ─► 24 kHz ─► session.append
                                                                           │
    speaker ◄── PlaybackBuffer ◄── Conversation ◄── connection task ◄──────┘ (WebSocket)

Tasks: capture (the audio loop; it feeds the watchdog), connection (the
``ServiceLink`` of ``device/link.py``: connect, receive, send, reconnect with
backoff), LEDs, the day's usage, and the service watchdog. No task ever waits on the network
while holding audio: while offline, mic audio is dropped, never queued.
"""

from __future__ import annotations

import asyncio
import logging
import os
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
from device.link import ServiceLink
from device.listen import DaemonListener
from device.logs import STATE_FIELD
from device.look import CameraSetup
from device.mcp import load_mcp
from device.service import ServiceNotifier
from device.session_settings import stream_tail_ms
from device.state import Event, State, transition
from device.timeline import MIC_MUTED, MIC_UNMUTED, Timeline
from device.tools import ToolRegistry
from device.trace import Trace
from device.ui.panel import FrontPanel
from device.usage import UsageKeeper, today_iso
from hw.factory import Hardware

log = logging.getLogger(__name__)

# Settings read when the hardware is opened: a reload cannot apply them.
RESTART_ONLY = (
    ("device", "hardware"),
    ("device", "board"),
    ("audio", "input_device"),
    ("audio", "output_device"),
    ("audio", "block_ms"),
    ("audio", "mic_channel"),
    ("camera", "image_path"),
)


@dataclass
class DaemonStats:
    """What the daemon did with its audio and its connections, since it started.

    Every microphone chunk the capture pipeline produces ends in exactly one of
    the ``chunks_*`` outcomes below (``chunks_produced`` is their sum once the
    current session has sent what it holds).
    """

    audio_blocks: int = 0
    chunks_produced: int = 0
    chunks_sent: int = 0
    chunks_unsent: int = 0  # handed to a session whose connection ended before sending them
    chunks_dropped_offline: int = 0
    chunks_dropped_backlog: int = 0
    chunks_held_while_speaking: int = 0
    chunks_dropped_budget: int = 0
    chunks_dropped_muted: int = 0
    chunks_dropped_asleep: int = 0  # no activation: before the wake word, or the wake word
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
        self.timeline = timeline
        self.state = State.OFFLINE
        self.stats = DaemonStats()
        self.service = ServiceNotifier(hardware.notifier)
        fmt = hardware.duplex.format
        self.playback = PlaybackBuffer(fmt.rate_hz)
        self.reply = ReplyPlayer(self.playback, fmt.rate_hz)
        self.controls = DaemonControls(self, config.audio.volume_percent, config.device.state_dir)
        self.ui = FrontPanel(self)  # buttons, LEDs and earcons
        self.capture = self._capture_pipeline(config)
        self.listener = DaemonListener(self, config)  # wake word, follow-up, barge-in
        self._bridge: AudioBridge | None = None
        self.audio = AudioSupervisor()
        self.usage = UsageKeeper(config, today=today, on_pause_change=self._budget_paused)
        self.tools = self._tool_registry(config)
        self.mcp = load_mcp(config, os.environ)  # remote MCP servers, their tokens read now
        for warning in self.mcp.warnings:
            log.warning("%s", warning)
        # What currently needs a person or waits on hardware; FAULT lasts while any does.
        self.faults: set[str] = set()
        self.replies_finished = 0
        self._reply_finished = asyncio.Event()
        self.link = ServiceLink(self, api_key, trace=trace, rand=rand)

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
            tail_ms=stream_tail_ms(config),
            follow_gate=config.turn.mode != "push_to_talk",
        )

    @property
    def online(self) -> bool:
        return self.link.session is not None

    @property
    def conversation(self) -> Conversation | None:
        """The conversation of the open session, if any."""
        return self.link.conversation

    def _tool_registry(self, config: Config) -> ToolRegistry:
        camera = self.hw.camera if config.camera.enabled else None
        setup = None if camera is None else CameraSetup(camera, config.camera.limits)
        return ToolRegistry(
            device_tools(self.controls, config.tools.enabled, camera=setup),
            timeout_s=config.tools.timeout_s,
        )

    def mic_mute_changed(self, muted: bool) -> None:
        """The microphone was muted or unmuted: drop half-sent speech, say so."""
        if muted:
            self.link.clear_input()
        if self.timeline is not None:
            self.timeline.mark(MIC_MUTED if muted else MIC_UNMUTED)
        self.dispatch(Event.MUTED if muted else Event.UNMUTED)
        if not muted and self.link.ready:
            self.dispatch(Event.CONNECTED)  # unmuting passes through OFFLINE
        self.service.status(self._status_line())

    def activate(self) -> None:
        """Open a turn as the wake word would (the talk button's press while idle)."""
        self.dispatch(Event.WAKE_DETECTED)

    def push_to_talk(self, pressed: bool) -> None:
        """Push-to-talk: the talk button went down (the turn opens) or up (it ends).

        With [turn] mode push_to_talk the microphone streams while the button is held,
        whatever the voice gate says, and letting it go commits the turn and asks for
        the answer (a mere tap is dropped); in the other modes the service ends turns.
        """
        if pressed:
            if self.state in (State.SPEAKING, State.THINKING):
                self.controls.stop_reply()
            self.activate()
        if self.config.turn.mode != "push_to_talk" or pressed == self.capture.held:
            return
        for chunk in self.capture.hold(pressed):
            self._stream(chunk)  # the end of what was said, before the commit
        if self.conversation is not None and self.link.ready:
            for event in self.conversation.talk(pressed):
                self.dispatch(event)
            self.link.wake_sender()

    def reload(self, config: Config) -> list[str]:
        """Apply a re-read config; returns the changed settings that need a restart."""
        old, old_tools = self.config, self.tools.names
        mcp, old_mcp = load_mcp(config, os.environ), self.mcp  # first: a bad token changes nothing
        if config.listen != old.listen or config.audio.send_chunk_ms != old.audio.send_chunk_ms:
            self.listener = DaemonListener(self, config)  # first: a bad wake word changes nothing
        capture_keys = (config.vad, config.audio.send_chunk_ms, config.audio.aec, config.turn)
        if capture_keys != (old.vad, old.audio.send_chunk_ms, old.audio.aec, old.turn):
            # built first: an unavailable echo canceller must leave everything as it was
            self.capture = self._capture_pipeline(config)
        self.config = config
        pending = [
            f"{section}.{key}"
            for section, key in RESTART_ONLY
            if getattr(getattr(old, section), key) != getattr(getattr(config, section), key)
        ]
        if config.camera.enabled and not old.camera.enabled and self.hw.camera is None:
            pending.append("camera.enabled")  # the camera is found when the hardware opens
        self.usage.configure(config)
        self.mcp = mcp  # re-read: a rotated token is sent by the new session started below
        if (config.tools, config.camera) != (old.tools, old.camera):
            self.tools = self._tool_registry(config)
        if (
            config.realtime != old.realtime
            or config.turn != old.turn
            or config.tools != old.tools
            or self.tools.names != old_tools  # the camera came or went
            or mcp != old_mcp
        ):
            # The voice cannot change within a session: start a new one.
            self.link.restart()
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
            doa_channels=self.ui.doa_channels,
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
                    on_fault=lambda reason: self.set_fault("audio", reason),
                    on_recovered=lambda: self.clear_fault("audio"),
                ),
                name="audio",
            ),
            asyncio.create_task(self._capture_loop(self._bridge), name="capture"),
            asyncio.create_task(self.link.run(stop), name="connection"),
            asyncio.create_task(self.ui.run(), name="panel"),
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
            await self.link.flush()

    async def wait_for_replies(self, count: int) -> None:
        """Return once ``count`` replies have finished playing (or been cut)."""
        while self.replies_finished < count:
            await self._reply_finished.wait()
            self._reply_finished.clear()

    # -- state -----------------------------------------------------------------------
    def dispatch(self, event: Event) -> None:
        self.listener.observe(event)
        if event is Event.REPLY_FINISHED:
            self.replies_finished += 1
            self._reply_finished.set()
            if self.conversation is not None and self.conversation.listen_after_reply_ms:
                self.capture.hold_for_ms(self.conversation.listen_after_reply_ms)
        elif event is Event.USER_SPEECH_STOPPED:
            self.capture.hold_for_ms(0)  # the service heard the end of the turn
        new = transition(self.state, event)
        if new is not self.state:
            log.info(
                "state %s -> %s (%s)",
                self.state.value,
                new.value,
                event.value,
                extra={STATE_FIELD: new.value},
            )
            old, self.state = self.state, new
            self.service.status(self._status_line())
            self.ui.state_changed(old, new, event)

    def _status_line(self) -> str:
        online = "connected" if self.online else "not connected"
        faults = f", fault: {', '.join(sorted(self.faults))}" if self.faults else ""
        budget = ", budget spent" if self.usage.paused else ""
        muted = ", microphone muted" if self.controls.mic_muted else ""
        return f"{self.state.value}, {online}{faults}{budget}{muted}"

    def _budget_paused(self, paused: bool) -> None:
        if paused:
            self.link.clear_input()  # drop half-sent speech: no reply will be paid for
        self.service.status(self._status_line())

    def set_fault(self, source: str, reason: str) -> None:
        """``source`` ("audio", "service") needs attention; FAULT until all clear."""
        log.error("%s fault: %s", source, reason)
        self.faults.add(source)
        self.dispatch(Event.FAULT)
        self.service.status(self._status_line())
        if source == "audio":
            # systemd waits for READY; an absent device must not make it kill us
            # in a loop: we report the fault and keep trying ourselves.
            self.service.ready()

    def clear_fault(self, source: str) -> None:
        if source not in self.faults:
            return
        self.faults.discard(source)
        log.info("%s recovered", source)
        if not self.faults:
            self.dispatch(Event.RECOVERED)
            if self.link.ready:
                self.dispatch(Event.CONNECTED)
        self.service.status(self._status_line())

    # -- audio -----------------------------------------------------------------------
    async def _capture_loop(self, bridge: AudioBridge) -> None:
        while True:
            for block in await bridge.get():
                self.stats.audio_blocks += 1
                for played in block.playback_events:
                    self.link.on_playback(played)
                    if self.conversation is not None:
                        for event in self.conversation.on_playback(played, block.at_s):
                            self.dispatch(event)
                    if played.kind == "finished":
                        self.playback.forget(played.item_id)  # else one record per reply, forever
                result = self.capture.process(block.mic, block.reference)
                self.ui.heard(block, result)  # the LEDs point at the talker
                if result.speech_started and self.usage.paused:
                    self.usage.check_day()  # speech just after midnight must not be lost
                self.stats.chunks_produced += len(result.chunks)
                for chunk in self.listener.heard(block, result):
                    self._stream(chunk)
            self.service.ready()

    def _stream(self, chunk: bytes) -> None:
        if self.controls.mic_muted:
            self.stats.chunks_dropped_muted += 1
            return
        if self.usage.paused:
            self.stats.chunks_dropped_budget += 1
            return
        if not self.link.ready:
            self.stats.chunks_dropped_offline += 1
            return
        self.link.offer_audio(chunk)
