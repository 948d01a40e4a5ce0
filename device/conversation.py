"""What the device does with the service's events: play replies, cut them short,
and tell the state machine where the conversation is.

Runs on the event loop; no I/O of its own: it queues client events on the
sans-I/O session, pushes audio into the playback buffer and returns state
machine events.

Function calls: a call starts as soon as its arguments are complete, in a task
of its own, so neither the receiver nor the audio loop waits on a tool. Its
``function_call_output`` (and any item the tool adds, such as a picture) is
queued once both the result is ready and the response that carried the call is
done, and then one ``response.create`` per response, since the service neither
answers tool output by itself nor accepts a new response while one runs. A tool
that finishes on its own wakes the sender through ``on_send``. When the user cut
the calling response short, its calls still run (their arguments were complete)
and their outputs are still sent, but no response is asked for: the user has
moved on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from device.audio.capture import API_RATE_HZ
from device.audio.frames import bytes_to_pcm
from device.audio.playback import PlaybackBuffer, PlaybackEvent
from device.audio.resample import StreamResampler
from device.mcp import McpMonitor, McpServers
from device.realtime import events as ev
from device.realtime.session import RealtimeSession
from device.reply_notes import NOTED, note, note_ending
from device.session_settings import idle_listen_ms
from device.state import Event
from device.timeline import (
    FIRST_AUDIO_DELTA,
    FIRST_DAC_SAMPLE,
    PLAYBACK_FINISHED,
    PLAYBACK_INTERRUPTED,
    RESPONSE_CREATED,
    RESPONSE_DONE,
    SPEECH_STARTED,
    SPEECH_STOPPED,
    TALK_PRESSED,
    TALK_RELEASED,
    Timeline,
)
from device.tools import ToolOutput, ToolRegistry

log = logging.getLogger(__name__)

_NO_TOOLS_TIMEOUT_S = 1.0


@dataclass
class _Call:
    """One function call, from its complete arguments to its output being queued."""

    call_id: str
    response_id: str
    task: asyncio.Task[ToolOutput]
    output: str | None = None
    items: tuple[Mapping[str, Any], ...] = ()  # added after the output (a picture)


class ReplyPlayer:
    """Reply audio (24 kHz from the service) into the playback buffer at the DAC rate."""

    def __init__(self, playback: PlaybackBuffer, dac_rate_hz: int) -> None:
        self.playback = playback
        self._dac_rate_hz = dac_rate_hz
        self._resamplers: dict[str, StreamResampler] = {}
        self.gain = 1.0  # the playback volume; the echo reference is what is played

    def add(self, item_id: str, pcm: bytes) -> None:
        resampler = self._resamplers.get(item_id)
        if resampler is None:
            resampler = StreamResampler(API_RATE_HZ, self._dac_rate_hz)
            self._resamplers[item_id] = resampler
        self.playback.push(item_id, self._scaled(resampler.process(bytes_to_pcm(pcm))))

    def finish(self, item_id: str) -> None:
        resampler = self._resamplers.pop(item_id, None)
        if resampler is not None:
            tail = resampler.process(bytes_to_pcm(b""), last=True)
            if len(tail):
                self.playback.push(item_id, self._scaled(tail))
        self.playback.end_item(item_id)

    def _scaled(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        if self.gain == 1.0:
            return samples
        scaled = np.round(samples.astype(np.float32) * self.gain)
        return np.clip(scaled, -32768, 32767).astype(np.int16)

    def interrupt(self) -> list[tuple[str, float]]:
        """Silence the speaker now; (item_id, ms actually played) per cut item."""
        self._resamplers.clear()
        return self.playback.clear()


class Conversation:
    """Acts on server events and playback events for one session.

    ``tools`` answers the model's function calls (none: every call gets an error
    output); ``on_send`` is called when a tool result queued client events
    outside ``handle``, so the sender sends them. ``close`` ends the
    conversation with its connection: results still running are dropped.
    ``mcp`` holds the remote MCP servers' approval policy (``device.mcp``).
    """

    def __init__(
        self,
        session: RealtimeSession,
        reply: ReplyPlayer,
        timeline: Timeline | None = None,
        *,
        tools: ToolRegistry | None = None,
        on_send: Callable[[], None] | None = None,
        mcp: McpServers | None = None,
    ) -> None:
        self.session = session
        self.mcp = McpMonitor(session, mcp)  # answers MCP approval requests, logs MCP calls
        self.reply = reply
        self.timeline = timeline
        self.tools = tools if tools is not None else ToolRegistry((), timeout_s=_NO_TOOLS_TIMEOUT_S)
        self.on_send = on_send
        self.replies_finished = 0
        self.tool_calls = 0
        self._responses_with_audio: set[str] = set()
        self._items_started: set[str] = set()
        self._items_heard: set[str] = set()  # items whose audio came on this connection
        self._response_pending_finish = False
        self._calls: dict[str, _Call] = {}  # by call_id, until the output is queued
        self._answered: set[str] = set()  # call_ids whose output was queued
        self._ended: dict[str, str] = {}  # response_id -> status, while its calls run
        self._follow_up = False  # a response.create is owed for tool output
        self._follow_up_event: str | None = None  # that response.create, until it starts
        self._follow_up_ids: set[str] = set()  # every such response.create's event_id
        self._closed = False
        self._audio_open: dict[str, str] = {}  # item_id -> response_id, until AudioDone
        self._last_reply_ms = 0.0  # audio of the last response, for the idle timeout
        self._idle_prompted = False  # the service spoke after a silence; none since

    def _mark(self, name: str, detail: str = "", at_s: float | None = None) -> None:
        if self.timeline is not None:
            self.timeline.mark(name, detail, at_s=at_s)

    def handle(self, event: ev.ServerEvent) -> list[Event]:
        """React to one server event; returns what the state machine should hear."""
        if self.mcp.handle(event):
            return []
        if isinstance(event, ev.SessionUpdated):
            return [Event.CONNECTED] if self.session.configured else []
        if isinstance(event, ev.ServerError):
            return self._on_error(event)
        if isinstance(event, ev.SpeechStarted):
            self._idle_prompted = False
            self._mark(SPEECH_STARTED)
            self.barge_in()
            return [Event.USER_SPEECH_STARTED]
        if isinstance(event, ev.SpeechStopped):
            self._mark(SPEECH_STOPPED)
            return [Event.USER_SPEECH_STOPPED]
        if isinstance(event, ev.ResponseCreated):
            self._follow_up_event = None
            self._mark(RESPONSE_CREATED, event.response_id)
            self._response_pending_finish = True
            return [Event.RESPONSE_STARTED]
        if isinstance(event, ev.AudioDelta):
            if event.response_id not in self._responses_with_audio:
                self._responses_with_audio.add(event.response_id)
                self._mark(FIRST_AUDIO_DELTA, event.item_id)
            self.reply.add(event.item_id, event.pcm)
            self._items_heard.add(event.item_id)
            self._audio_open[event.item_id] = event.response_id
            return []
        if isinstance(event, ev.AudioDone):
            self._audio_open.pop(event.item_id, None)
            self.reply.finish(event.item_id)
            return []
        if isinstance(event, ev.TranscriptDone):
            log.info("assistant said: %s", event.transcript)
            return []
        if isinstance(event, NOTED):
            self._idle_prompted |= isinstance(event, ev.BufferTimeout)
            note(event, self.timeline)
            return []
        if isinstance(event, ev.FunctionCallArgumentsDone) and event.name is not None:
            self._start_call(event.response_id, event.call_id, event.name, event.arguments)
            return []
        if isinstance(event, ev.OutputItemDone):
            self._start_item_call(event.response_id, event.item)
            return []
        if isinstance(event, ev.ResponseDone):
            return self._on_response_done(event)
        return []

    def _on_error(self, event: ev.ServerError) -> list[Event]:
        if (
            event.code == "conversation_already_has_active_response"
            and event.client_event_id in self._follow_up_ids
        ):
            # A response started meanwhile (the user spoke): it reads the tool output.
            self._follow_up_event = None
            log.debug("tool output is answered by the response already running")
        elif event.code in ("response_cancel_not_active", "input_audio_buffer_commit_empty"):
            log.debug("routine race: %s", event.message)
        elif not self.session.configured and self.session.last_error is event:
            log.error(
                "the service rejected the session configuration (%s, param %s): %s",
                event.code,
                event.param,
                event.message,
            )
        else:
            log.warning("service error %s/%s: %s", event.error_type, event.code, event.message)
        return []

    def _on_response_done(self, event: ev.ResponseDone) -> list[Event]:
        usage = event.usage
        detail = event.status
        if usage is not None:
            detail += (
                f" tokens in={usage.input_tokens} (audio {usage.input_audio_tokens})"
                f" out={usage.output_tokens} (audio {usage.output_audio_tokens})"
            )
        self._mark(RESPONSE_DONE, detail)
        note_ending(event, self.timeline)
        # Audio the service stopped sending (a failed reply may skip output_audio.done)
        # still plays out, and then counts as finished.
        for item_id in [i for i, r in self._audio_open.items() if r == event.response_id]:
            del self._audio_open[item_id]
            self.reply.finish(item_id)
        items = [item.get("id") for item in event.output]
        self._last_reply_ms = sum(self.session.audio_received_ms(i) for i in items if i)
        for item in event.output:
            self._start_item_call(event.response_id, item)
        if any(call.response_id == event.response_id for call in self._calls.values()):
            self._ended[event.response_id] = event.status
        self._flush()
        return self._maybe_finished()

    def _maybe_finished(self) -> list[Event]:
        if (
            self._response_pending_finish
            and not self._answer_owed()
            and self.session.active_response_id is None
            and self.reply.playback.queued_frames == 0
        ):
            self._response_pending_finish = False
            self.replies_finished += 1
            return [Event.REPLY_FINISHED]
        return []

    # -- function calls ----------------------------------------------------------------

    def _start_item_call(self, response_id: str, item: Mapping[str, Any]) -> None:
        if item.get("type") != "function_call":
            return
        call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
        if isinstance(call_id, str) and isinstance(name, str):
            text = arguments if isinstance(arguments, str) else ""
            self._start_call(response_id, call_id, name, text)

    def _start_call(self, response_id: str, call_id: str, name: str, arguments: str) -> None:
        """Run the call in a task of its own, once per call_id."""
        if self._closed or call_id in self._calls or call_id in self._answered:
            return
        self.tool_calls += 1
        task = asyncio.get_running_loop().create_task(
            self.tools.run(name, arguments), name=f"tool {name}"
        )
        call = _Call(call_id, response_id, task)
        self._calls[call_id] = call
        task.add_done_callback(lambda done: self._on_result(call, done))

    def _on_result(self, call: _Call, task: asyncio.Task[ToolOutput]) -> None:
        if self._closed or task.cancelled():
            return  # the connection is gone: a result now has nowhere to go
        try:
            result = task.result()
            call.output, call.items = result.text, result.items
        except Exception as exc:  # the registry answers every call; this is a last resort
            log.exception("tool call %s failed", call.call_id)
            call.output = json.dumps({"error": f"failed: {type(exc).__name__}"})
        if self._flush() and self.on_send is not None:
            self.on_send()

    def _flush(self) -> bool:
        """Queue the outputs of every done response whose calls all finished, then the
        one response.create they need once no response runs; True if anything was queued."""
        queued = False
        for response_id, status in list(self._ended.items()):
            calls = [call for call in self._calls.values() if call.response_id == response_id]
            if any(call.output is None for call in calls):
                continue
            del self._ended[response_id]
            for call in calls:
                assert call.output is not None
                self.session.create_item(
                    {"type": "function_call_output", "call_id": call.call_id, "output": call.output}
                )
                # After the output, not before: a call must be followed by its own output.
                for item in call.items:
                    self.session.create_item(item)
                del self._calls[call.call_id]
                self._answered.add(call.call_id)
                queued = True
            # A cancelled response was cut short by the user, who has moved on:
            # the outputs keep the conversation true, but need no answer of their own.
            self._follow_up = self._follow_up or status == "completed"
        if (
            self._follow_up
            and self._follow_up_event is None
            and self.session.active_response_id is None
        ):
            self._follow_up = False
            self._follow_up_event = self.session.create_response()
            self._follow_up_ids.add(self._follow_up_event)
            queued = True
        return queued

    def _answer_owed(self) -> bool:
        """True while a completed response's tool calls still wait for their answer."""
        return (
            self._follow_up
            or self._follow_up_event is not None
            or "completed" in self._ended.values()
            or self.mcp.answer_owed
        )

    def close(self) -> None:
        """The connection ended: cancel running calls and drop their results."""
        self._closed = True
        for call in self._calls.values():
            call.task.cancel()
        self._calls.clear()
        self._ended.clear()
        self._follow_up = False

    @property
    def listen_after_reply_ms(self) -> int:
        """How long the microphone streams after the last reply so the service's idle
        timeout can fire; not after the service's own prompt (it asks once)."""
        if self._idle_prompted:
            return 0
        return idle_listen_ms(self.session.settings.turn_detection, self._last_reply_ms)

    def talk(self, pressed: bool) -> list[Event]:
        """Push-to-talk: the talk button went down (a turn starts, cutting the reply
        short) or up (the turn ends: commit it and ask for the answer)."""
        if pressed:
            self._mark(TALK_PRESSED)
            self.session.cancel_response()
            self.barge_in()
            return [Event.USER_SPEECH_STARTED]
        self._mark(TALK_RELEASED)
        if self.session.end_turn() is None:
            log.info("the talk button was let go before anything was said")
            return [Event.ACTIVATION_ENDED]
        return [Event.USER_SPEECH_STOPPED]

    def barge_in(self) -> None:
        """Stop the speaker and tell the service how much of the reply was heard."""
        for item_id, played_ms in self.reply.interrupt():
            self.session.truncate(item_id, played_ms)

    def on_playback(self, event: PlaybackEvent, at_s: float) -> list[Event]:
        """React to what the audio callback reported about playback."""
        if event.item_id not in self._items_heard:
            # The rest of a reply whose connection broke plays on; it is not this
            # session's turn, and must not leave the device "speaking" after it.
            return []
        if event.kind == "started":
            if event.item_id in self._items_started:
                return []
            self._items_started.add(event.item_id)
            self._mark(FIRST_DAC_SAMPLE, event.item_id, at_s=at_s)
            return [Event.REPLY_AUDIO_STARTED]
        if event.kind == "interrupted":
            self._mark(PLAYBACK_INTERRUPTED, event.item_id, at_s=at_s)
            return self._maybe_finished()
        self._mark(PLAYBACK_FINISHED, event.item_id, at_s=at_s)
        return self._maybe_finished()
