"""The simulator's protocol core for one connection: client events in, server events out.

No socket and no clock: the WebSocket layer feeds parsed client events and the
time of connection, and paces the responses this core starts. That keeps every
protocol rule testable by calling methods, and gives one place where events come
in (``handle``) and one where they go out (the returned lists) for fault
injection to hook into later.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Callable
from typing import Any, Literal

from device.realtime.sim_conversation import Conversation, StoredItem
from device.realtime.sim_endings import ResponseEndings
from device.realtime.sim_images import image_reply, input_image_tokens
from device.realtime.sim_input import InputBuffer
from device.realtime.sim_items import ItemRules
from device.realtime.sim_mcp import SimMcp
from device.realtime.sim_options import (
    DEFAULT_REPLY,
    IDLE_REPLY,
    SimulatorOptions,
    random_id,
    verbatim_text,
)
from device.realtime.sim_response import Event, ResponsePlan, SimFunctionCall, SimResponse
from device.realtime.sim_schema import SimError, enum
from device.realtime.sim_shapes import CLIENT_EVENTS, SESSION, default_session, merge_session
from device.realtime.sim_transcription import transcription_events
from device.realtime.sim_vad import EnergyVad, VadMark, VadSettings

MIN_COMMIT_MS = 100


class SimulatorSession:
    """State of one simulated Realtime session (session config, buffer, conversation)."""

    def __init__(
        self,
        options: SimulatorOptions,
        model: str,
        now_s: float,
        new_id: Callable[[str], str] = random_id,
    ) -> None:
        self.options = options
        self.new_id = new_id
        self.expires_at_s = int(now_s) + options.session_lifetime_s
        self.session = default_session(model, new_id("sess"), self.expires_at_s)
        self.conversation = Conversation(new_id("conv"))
        self.buffer = InputBuffer()
        self.responses: dict[str, SimResponse] = {}
        self.audio_output_started = False
        self.tool_called = False  # the one call ``options.tool_call`` asks for was made
        self.endings = ResponseEndings()  # replies the faults end early (``sim_endings``)
        self._started: list[SimResponse] = []
        self._vad: EnergyVad | None = None
        self._speech_item: str | None = None
        self._idle_deadline_ms: int | None = None
        self._items = ItemRules(self)
        self.mcp = SimMcp(self, self._items.create)  # MCP servers, approvals and calls
        self._configure_vad()
        self._handlers: dict[str, Callable[[dict[str, Any]], list[Event]]] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit_request,
            "input_audio_buffer.clear": self._clear,
            "conversation.item.create": self.mcp.create_item,
            "conversation.item.retrieve": self._items.retrieve,
            "conversation.item.truncate": self._items.truncate,
            "conversation.item.delete": self._items.delete,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
            "output_audio_buffer.clear": self._webrtc_only,
        }

    # -- events in and out ------------------------------------------------------

    def event(self, kind: str, **fields: Any) -> Event:
        """A server event; payloads are copied so later state changes never leak into it."""
        return {"type": kind, "event_id": self.new_id("event"), **copy.deepcopy(fields)}

    def error(self, exc: SimError, client_event_id: str | None) -> Event:
        return self.event(
            "error",
            error={
                "type": exc.error_type,
                "code": exc.code,
                "message": exc.message,
                "param": exc.param,
                "event_id": client_event_id,
            },
        )

    def created(self) -> list[Event]:
        """The first frame of every session."""
        return [self.event("session.created", session=self.session)]

    def expired(self) -> list[Event]:
        """The last frame when the session reaches its lifetime (then close 1001)."""
        minutes = self.options.session_lifetime_s / 60
        limit = f"{minutes:g} minutes" if minutes >= 1 else f"{self.options.session_lifetime_s} s"
        message = f"Your session hit the maximum duration of {limit}."
        return [self.error(SimError("session_expired", message), None)]

    def invalid_frame(self, why: str) -> list[Event]:
        """Answer a frame that is not a JSON object."""
        return [self.error(SimError("invalid_event", why), None)]

    def handle(self, event: dict[str, Any]) -> list[Event]:
        """Apply one client event; errors come back as ``error`` events."""
        raw_id = event.get("event_id")
        client_id = raw_id if isinstance(raw_id, str) else None
        try:
            if "type" not in event:
                raise SimError("invalid_event", "The 'type' field is missing.", "type")
            kind = enum(*CLIENT_EVENTS)(event["type"], "type")
            return self._handlers[kind](CLIENT_EVENTS[kind](event, ""))
        except SimError as exc:
            return [self.error(exc, client_id)]

    def take_started(self) -> list[SimResponse]:
        """Responses started since the last call; the caller streams each one."""
        started, self._started = self._started, []
        return started

    def attach_audio(self, response_id: str, pcm: bytes) -> None:
        response = self.responses.get(response_id)
        if response is not None and response.active:
            response.attach_audio(pcm)

    def fail_response(self, response_id: str, message: str) -> list[Event]:
        """End a response whose audio could not be made (``response.done`` failed)."""
        response = self.responses.get(response_id)
        if response is None:
            return []
        events = response.fail(message)
        self._finished(response)
        return events

    def is_streaming(self, response_id: str) -> bool:
        response = self.responses.get(response_id)
        return response is not None and response.active

    def step(self, response_id: str) -> list[Event]:
        """The next slice of a response; empty once it is done or cancelled."""
        response = self.responses.get(response_id)
        if response is None:
            return []
        events = self.endings.step(response)
        if response.audio:
            self.audio_output_started = True
        if not response.active:
            self._finished(response)
        return events

    # -- session ----------------------------------------------------------------

    def _session_update(self, event: dict[str, Any]) -> list[Event]:
        session = event["session"]
        if not isinstance(session, dict):
            raise SimError(
                "invalid_type", "Invalid type for 'session': expected an object.", "session"
            )
        if "type" not in session:
            raise SimError(
                "missing_required_parameter",
                "Missing required parameter: 'session.type'.",
                "session.type",
            )
        enum("realtime")(session["type"], "session.type")
        update = SESSION(session, "session")
        self._check_stateful_rules(update)
        listing = self.mcp.configure(update)
        self.session = merge_session(self.session, update)
        if "turn_detection" in update.get("audio", {}).get("input", {}):
            self._configure_vad()
        return [self.event("session.updated", session=self.session), *listing]

    def _check_stateful_rules(self, update: dict[str, Any]) -> None:
        if "model" in update and update["model"] != self.session["model"]:
            raise SimError(
                "invalid_value", "The model of a session cannot be changed.", "session.model"
            )
        voice = update.get("audio", {}).get("output", {}).get("voice")
        current_voice = self.session["audio"]["output"]["voice"]
        if voice is not None and voice != current_voice and self.audio_output_started:
            raise SimError(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.audio.output.voice",
            )
        tracing = self.session["tracing"]
        if "tracing" in update and tracing is not None and update["tracing"] != tracing:
            raise SimError(
                "invalid_value",
                "Tracing cannot be modified once it is enabled.",
                "session.tracing",
            )

    def _turn_detection(self) -> dict[str, Any] | None:
        config: dict[str, Any] | None = self.session["audio"]["input"]["turn_detection"]
        return config

    def _configure_vad(self) -> None:
        config = self._turn_detection()
        self._speech_item = None
        self._vad = (
            None
            if config is None
            else EnergyVad(VadSettings.from_turn_detection(config), self.buffer.total_samples)
        )

    # -- input audio ------------------------------------------------------------

    def _append(self, event: dict[str, Any]) -> list[Event]:
        try:
            pcm = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SimError(
                "invalid_value", "Invalid 'audio'. Expected base64-encoded audio data.", "audio"
            ) from exc
        if len(pcm) % 2:
            raise SimError(
                "invalid_value",
                f"Invalid 'audio': PCM16 audio needs an even byte count, got {len(pcm)}.",
                "audio",
            )
        samples = self.buffer.append(pcm)
        if self._vad is None:
            return []
        events: list[Event] = []
        for mark in self._vad.push(samples):
            events += self._on_mark(mark)
        events += self._check_idle_timeout()
        if not self._vad.in_speech:
            self.buffer.keep_last(self._vad.settings.prefix_padding_ms + 100)
        return events

    def _on_mark(self, mark: VadMark) -> list[Event]:
        config = self._turn_detection()
        assert config is not None
        if mark.kind == "start":
            self._idle_deadline_ms = None
            self._speech_item = self.new_id("item")
            start_ms = max(mark.at_ms, self.buffer.start_ms)
            self.buffer.drop_before(start_ms)
            events = [
                self.event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=start_ms,
                    item_id=self._speech_item,
                )
            ]
            active = self.default_response()
            if active is not None and config["interrupt_response"]:
                events += self.cancel_response(active, "turn_detected")
            return events
        item_id = self._speech_item or self.new_id("item")
        self._speech_item = None
        events = [
            self.event(
                "input_audio_buffer.speech_stopped", audio_end_ms=mark.at_ms, item_id=item_id
            )
        ]
        events += self._commit(self.buffer.take_until(mark.at_ms), item_id)
        if config["create_response"] and self.default_response() is None:
            events += self.start_response({})
        return events

    def _check_idle_timeout(self) -> list[Event]:
        """server_vad ``idle_timeout_ms``: commit the silence and prompt the model."""
        deadline = self._idle_deadline_ms
        if deadline is None or self.buffer.end_ms < deadline or self._speech_item is not None:
            return []
        self._idle_deadline_ms = None
        item_id = self.new_id("item")
        events = [
            self.event(
                "input_audio_buffer.timeout_triggered",
                audio_start_ms=self.buffer.start_ms,
                audio_end_ms=self.buffer.end_ms,
                item_id=item_id,
            )
        ]
        events += self._commit(self.buffer.take_all(), item_id)
        if self.default_response() is None:
            events += self.start_response({}, IDLE_REPLY)
        return events

    def _commit(self, pcm: bytes, item_id: str) -> list[Event]:
        item = StoredItem(
            {
                "id": item_id,
                "object": "realtime.item",
                "type": "message",
                "status": "completed",
                "role": "user",
                "content": [{"type": "input_audio", "transcript": None}],
            },
            bytearray(pcm),
        )
        previous = self.conversation.insert(item)
        return [
            self.event("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id),
            self.event("conversation.item.added", previous_item_id=previous, item=item.data),
            self.event("conversation.item.done", previous_item_id=previous, item=item.data),
            *transcription_events(self, item),
        ]

    def _commit_request(self, event: dict[str, Any]) -> list[Event]:
        buffered_ms = self.buffer.buffered_ms
        if buffered_ms < MIN_COMMIT_MS:
            raise SimError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
            )
        item_id = self._speech_item or self.new_id("item")
        self._speech_item = None
        self._idle_deadline_ms = None
        if self._vad is not None:
            self._vad.reset()
        return self._commit(self.buffer.take_all(), item_id)

    def _clear(self, event: dict[str, Any]) -> list[Event]:
        self.buffer.clear()
        self._speech_item = None
        if self._vad is not None:
            self._vad.reset()
        return [self.event("input_audio_buffer.cleared")]

    def _webrtc_only(self, event: dict[str, Any]) -> list[Event]:
        raise SimError(
            "invalid_value",
            "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
            "type",
        )

    # -- responses --------------------------------------------------------------

    def default_response(self) -> SimResponse | None:
        """The response writing to the default conversation, if one is running."""
        return next((r for r in self.responses.values() if r.active and r.in_conversation), None)

    def _response_create(self, event: dict[str, Any]) -> list[Event]:
        params: dict[str, Any] = event.get("response") or {}
        active = self.default_response()
        if params.get("conversation") != "none" and active is not None:
            raise SimError(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: "
                f"{active.plan.response_id}. Wait until the response is finished "
                "before creating a new one.",
            )
        return self.start_response(params)

    def _response_cancel(self, event: dict[str, Any]) -> list[Event]:
        wanted = event.get("response_id")
        target = self.responses.get(wanted) if wanted else self.default_response()
        if target is None or not target.active:
            raise SimError(
                "response_cancel_not_active", "Cancellation failed: no active response found."
            )
        return self.cancel_response(target, "client_cancelled")

    def cancel_response(
        self, response: SimResponse, reason: Literal["turn_detected", "client_cancelled"]
    ) -> list[Event]:
        events = response.cancel(reason)
        self._finished(response)
        return events

    def start_response(self, params: dict[str, Any], reply: str | None = None) -> list[Event]:
        session = self.session
        output = params.get("audio", {}).get("output", {})
        voice = output.get("voice", session["audio"]["output"]["voice"])
        in_conversation = params.get("conversation") != "none"
        instructions = params.get("instructions", session["instructions"])
        last = self.conversation.items[-1].data if self.conversation.items else {}
        told = verbatim_text(instructions) or SimFunctionCall.reply_to(last) or image_reply(last)
        if told is not None:
            reply = told
        elif self.options.reply_text is not None:
            reply = self.options.reply_text
        elif reply is None:
            reply = DEFAULT_REPLY.format(seconds=self.conversation.latest_user_audio_ms() / 1000)
        wanted = None if self.tool_called else self.options.tool_call
        call = SimFunctionCall.planned(wanted, session, params)
        plan = ResponsePlan(
            response_id=self.new_id("resp"),
            item_id=self.new_id("item"),
            conversation_id=self.conversation.id if in_conversation else None,
            previous_item_id=self.conversation.last_id() if in_conversation else None,
            modality=(params.get("output_modalities") or session["output_modalities"])[0],
            output_format=output.get("format", session["audio"]["output"]["format"]),
            voice=voice["id"] if isinstance(voice, dict) else voice,
            speed=float(session["audio"]["output"]["speed"]),
            max_output_tokens=params.get("max_output_tokens", session["max_output_tokens"]),
            metadata=params.get("metadata"),
            text=reply,
            instructions=instructions,
            input_audio_ms=self._items.input_audio_ms(params.get("input")),
            input_image_tokens=input_image_tokens(self.conversation, params.get("input")),
            delta_ms=self.options.delta_ms,
        )
        if call is not None:  # over as it starts: the call item joins the conversation done
            self.tool_called = True
            function_call = SimFunctionCall(plan, self.new_id, *call)
            events = function_call.opening()
            if in_conversation:
                self.conversation.insert(StoredItem(function_call.item()))
            return events
        mcp = self.mcp.respond(plan, params)
        if isinstance(mcp, list):  # an approval request: over as it starts
            return mcp
        response = mcp or SimResponse(plan, self.new_id)
        plan = response.plan
        self.responses[plan.response_id] = response
        self._started.append(response)
        if in_conversation:
            self.conversation.insert(StoredItem(response.item(), response.audio))
        return response.opening()

    def _finished(self, response: SimResponse) -> None:
        """Record the final item and, after a spoken answer, arm the idle timeout."""
        self.responses.pop(response.plan.response_id, None)
        stored = self.conversation.find(response.plan.item_id)
        if stored is not None and response.in_conversation:
            stored.data = response.item()
        config = self._turn_detection()
        idle_ms = None if config is None else config.get("idle_timeout_ms")
        if response.status == "completed" and response.in_conversation and idle_ms:
            played_ms = len(response.audio) // 48
            self._idle_deadline_ms = self.buffer.end_ms + played_ms + int(idle_ms)
