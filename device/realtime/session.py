"""The Realtime session as a pure state machine: frames in, events out, events to send.

No socket and no clock live here (design rule 2), so the whole protocol logic
runs in unit tests at full speed, and the WebSocket client only moves text:

    session.configure()
    for event in session.data_to_send(): ws.send(json.dumps(event))
    for event in session.receive(frame): app.handle(event)

What the session remembers is what the barge-in rules of the protocol need and
a WebSocket client must otherwise guess: which response is running, how much
reply audio arrived per item (a truncate may not claim more than that), and
which responses we cancelled (their in-flight deltas must not reach the speaker).
"""

from __future__ import annotations

import base64
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from device.errors import LocalProtocolError
from device.realtime.events import (
    AudioDelta,
    AudioDone,
    ItemDeleted,
    OutputItemAdded,
    ResponseCreated,
    ResponseDone,
    ServerError,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    TextDelta,
    TranscriptDelta,
    Unknown,
)
from device.realtime.parse import parse_server_event
from device.realtime.session_update import PCM_RATE_HZ, check_settings, session_body

PCM_BYTES_PER_MS = 48  # 16-bit mono at 24 kHz
MAX_APPEND_BYTES = 15 * 1024 * 1024  # per input_audio_buffer.append event
MAX_ID_CHARS = 32  # client-chosen ids longer than this are refused by the service
MIN_COMMIT_MS = 100  # the service refuses to commit less (input_audio_buffer_commit_empty)
_MAX_PREFIX_CHARS = 12  # leaves room for "_" and a 19-digit counter
# Items whose reply audio is remembered. A conversation has a handful of recent
# items worth truncating; older ones are forgotten even if the app never says so.
_MAX_TRACKED_ITEMS = 64


@dataclass(frozen=True)
class SessionSettings:
    """What the device asks of the service in its one session.update.

    ``turn_detection`` None means push-to-talk: no server VAD, the device commits
    the input buffer and asks for a response itself. ``tools`` are GA tool
    definitions (``ToolRegistry.definitions()``); without any, the update leaves
    the service's tools and tool choice as they are.
    """

    voice: str = "marin"
    instructions: str = ""
    output_modalities: tuple[str, ...] = ("audio",)
    turn_detection: Mapping[str, Any] | None = field(default_factory=lambda: {"type": "server_vad"})
    input_rate_hz: int = PCM_RATE_HZ
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: str = "auto"

    # None: not sent, the service keeps its default (see session_update.session_body).
    speed: float | None = None  # 0.25..1.5
    max_output_tokens: int | Literal["inf"] | None = None
    truncation: str | Mapping[str, Any] | None = None  # auto, disabled, retention_ratio
    prompt: Mapping[str, Any] | None = None  # {id: "pmpt_...", version?, variables?}
    noise_reduction: str | None = None  # off, near_field or far_field
    transcription: Mapping[str, Any] | None = None  # {model, language?}

    def __post_init__(self) -> None:
        # Checked here so a bad value fails at start-up, not as a silently rejected update.
        check_settings(self)


@dataclass
class SessionCounters:
    """Totals over one session, for status lines and the journal."""

    events_sent: int = 0
    events_received: int = 0
    audio_bytes_sent: int = 0
    unknown_events: int = 0
    errors: int = 0
    late_deltas_dropped: int = 0


@dataclass
class _ItemAudio:
    received_bytes: int = 0
    content_index: int = 0
    truncated: bool = False  # audio past the truncation point must not be played


class RealtimeSession:
    """One Realtime session, from ``session.created`` to the socket's close.

    Every sending method queues one client event (collected by ``data_to_send``)
    and returns its ``event_id``, which the service echoes in an ``error`` event
    caused by it. ``receive`` raises only ``RemoteProtocolError``; the sending
    methods raise ``LocalProtocolError`` for what the service would refuse.
    """

    def __init__(self, settings: SessionSettings, *, id_prefix: str = "ev") -> None:
        if not id_prefix or len(id_prefix) > _MAX_PREFIX_CHARS:
            raise LocalProtocolError(
                f"id_prefix must be 1 to {_MAX_PREFIX_CHARS} characters, got {id_prefix!r}"
            )
        self._settings = settings
        self._id_prefix = id_prefix
        self._next_id = 1
        self._outbox: list[dict[str, Any]] = []
        self._counters = SessionCounters()
        self._session_id: str | None = None
        self._expires_at: int | None = None
        self._pending_updates: list[str] = []  # event_ids of unanswered session.updates
        self._configured = False
        self._active_response_id: str | None = None
        self._cancelled: set[str] = set()  # response ids cancelled here, until response.done
        self._out_of_band: set[str] = set()  # running responses outside the conversation
        self._out_of_band_items: dict[str, str] = {}  # their items -> their response ids
        self._items: OrderedDict[str, _ItemAudio] = OrderedDict()
        self._last_error: ServerError | None = None
        self._uncommitted_bytes = 0  # appended since the last commit or clear

    # ----------------------------------------------------------------- outgoing

    def configure(self) -> str:
        """Queue the GA session.update built from the settings (``session_body``)."""
        event_id = self._queue({"type": "session.update", "session": session_body(self._settings)})
        self._pending_updates.append(event_id)
        self._configured = False
        return event_id

    def append_audio(self, pcm: bytes) -> str:
        """Queue one chunk of microphone audio: PCM16 mono at 24 kHz."""
        if not pcm:
            raise LocalProtocolError("input_audio_buffer.append: audio is empty")
        if len(pcm) % 2:
            raise LocalProtocolError(
                f"input_audio_buffer.append: {len(pcm)} bytes is not whole 16-bit samples"
            )
        if len(pcm) > MAX_APPEND_BYTES:
            raise LocalProtocolError(
                f"input_audio_buffer.append: {len(pcm)} bytes is over {MAX_APPEND_BYTES}"
            )
        audio = base64.b64encode(pcm).decode("ascii")
        event_id = self._queue({"type": "input_audio_buffer.append", "audio": audio})
        self._counters.audio_bytes_sent += len(pcm)
        self._uncommitted_bytes += len(pcm)
        return event_id

    def commit(self) -> str:
        """Turn the buffered audio into a user item (push-to-talk; VAD commits by itself)."""
        self._uncommitted_bytes = 0
        return self._queue({"type": "input_audio_buffer.commit"})

    def clear_input(self) -> str:
        self._uncommitted_bytes = 0
        return self._queue({"type": "input_audio_buffer.clear"})

    def end_turn(self) -> str | None:
        """Push-to-talk: the user finished speaking; commit the audio and ask for the answer.

        Returns the commit's event_id. With less than ``MIN_COMMIT_MS`` appended
        since the last commit or clear (a tap of the button) the buffer is cleared
        instead and None returned: the service would refuse the commit. Only for
        sessions without turn detection, where nothing else ends a turn.
        """
        if self._settings.turn_detection is not None:
            raise LocalProtocolError("end_turn is for push-to-talk (turn_detection None)")
        if self._uncommitted_bytes < MIN_COMMIT_MS * PCM_BYTES_PER_MS:
            self.clear_input()
            return None
        event_id = self.commit()
        self.create_response()
        return event_id

    def create_response(self, response: Mapping[str, Any] | None = None) -> str:
        """Ask for a response; ``response`` holds per-response overrides, passed as given."""
        event: dict[str, Any] = {"type": "response.create"}
        if response is not None:
            event["response"] = dict(response)
        return self._queue(event)

    def cancel_response(self) -> str | None:
        """Cancel the running response; None (nothing sent) when none runs or it is
        already cancelled, since the service would only answer with an error.

        From here on, deltas of that response still in flight are dropped by ``receive``.
        """
        response_id = self._active_response_id
        if response_id is None or response_id in self._cancelled:
            return None
        self._cancelled.add(response_id)
        return self._queue({"type": "response.cancel", "response_id": response_id})

    def truncate(self, item_id: str, played_ms: float) -> str | None:
        """Tell the service how much of an item's reply audio was actually heard.

        ``audio_end_ms`` is ``played_ms`` clamped to the audio received for the
        item: the service rejects a cut past its end, and estimates of played
        audio tend to overshoot. None (nothing sent) when the item's audio is
        unknown or nothing was heard: there is nothing to cut. Later deltas of the
        item are dropped, because they lie past what the user heard.
        """
        if math.isnan(played_ms) or played_ms < 0:
            raise LocalProtocolError(
                f"conversation.item.truncate: played_ms must be >= 0, got {played_ms}"
            )
        audio = self._items.get(item_id)
        if audio is None:
            return None
        if item_id in self._out_of_band_items:
            audio.truncated = True
            return self._cancel_out_of_band(self._out_of_band_items[item_id])
        audio_end_ms = math.floor(min(played_ms, audio.received_bytes / PCM_BYTES_PER_MS))
        if audio_end_ms == 0:
            return None
        audio.truncated = True
        return self._queue(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": audio.content_index,
                "audio_end_ms": audio_end_ms,
            }
        )

    def keep_out_of_conversation(self, response_id: str) -> None:
        """Mark a response asked for with ``conversation: "none"``: its items are not in
        the conversation, so cutting one short cancels the response instead of
        truncating the item (which the service would refuse as not found)."""
        self._out_of_band.add(response_id)

    def _cancel_out_of_band(self, response_id: str) -> str | None:
        if response_id not in self._out_of_band or response_id in self._cancelled:
            return None
        self._cancelled.add(response_id)
        return self._queue({"type": "response.cancel", "response_id": response_id})

    def create_item(self, item: Mapping[str, Any], previous_item_id: str | None = None) -> str:
        """Add a message or a tool output to the conversation (text only for assistants)."""
        item_id = item.get("id")
        if isinstance(item_id, str) and len(item_id) > MAX_ID_CHARS:
            raise LocalProtocolError(
                f"conversation.item.create: item id {item_id!r} is over {MAX_ID_CHARS} characters"
            )
        event: dict[str, Any] = {"type": "conversation.item.create", "item": dict(item)}
        if previous_item_id is not None:
            event["previous_item_id"] = previous_item_id
        return self._queue(event)

    def delete_item(self, item_id: str) -> str:
        """Remove an item, e.g. a reply interrupted before any of it was heard."""
        self.forget_item(item_id)
        return self._queue({"type": "conversation.item.delete", "item_id": item_id})

    def data_to_send(self) -> list[dict[str, Any]]:
        """Hand over the queued client events, oldest first, and forget them."""
        outbox, self._outbox = self._outbox, []
        return outbox

    def _queue(self, event: dict[str, Any]) -> str:
        event_id = f"{self._id_prefix}_{self._next_id}"
        self._next_id += 1
        self._outbox.append({"type": event.pop("type"), "event_id": event_id, **event})
        self._counters.events_sent += 1
        return event_id

    # ----------------------------------------------------------------- incoming

    def receive(self, frame: str | bytes) -> list[ServerEvent]:
        """Parse one frame, update the state, and return what the application should act on.

        Unknown events are counted and not returned. Audio, transcript and text
        deltas (and the audio's end) of a response cancelled here, or of an item
        truncated here, are counted as late and not returned: playing them would
        replay what the user interrupted.
        """
        event = parse_server_event(frame)
        self._counters.events_received += 1
        if isinstance(event, Unknown):
            self._counters.unknown_events += 1
            return []
        if isinstance(event, (AudioDelta, AudioDone, TranscriptDelta, TextDelta)):
            return self._streamed(event)
        if isinstance(event, SessionCreated):
            self._session_id = event.session_id
            self._expires_at = event.expires_at
        elif isinstance(event, SessionUpdated):
            if self._pending_updates:
                self._pending_updates.pop(0)
                self._configured = not self._pending_updates
        elif isinstance(event, ResponseCreated):
            self._active_response_id = event.response_id
        elif isinstance(event, ResponseDone):
            if event.response_id == self._active_response_id:
                self._active_response_id = None
            self._cancelled.discard(event.response_id)
            self._out_of_band.discard(event.response_id)
        elif isinstance(event, OutputItemAdded):
            item_id = event.item.get("id")
            if isinstance(item_id, str):
                self._track(item_id)
                if event.response_id in self._out_of_band:
                    self._out_of_band_items[item_id] = event.response_id
        elif isinstance(event, ItemDeleted):
            self.forget_item(event.item_id)
        elif isinstance(event, ServerError):
            self._on_error(event)
        return [event]

    def _streamed(
        self, event: AudioDelta | AudioDone | TranscriptDelta | TextDelta
    ) -> list[ServerEvent]:
        known = self._items.get(event.item_id)
        if event.response_id in self._cancelled or (known is not None and known.truncated):
            self._counters.late_deltas_dropped += 1
            return []
        if isinstance(event, AudioDelta):
            audio = self._track(event.item_id)
            audio.received_bytes += len(event.pcm)
            audio.content_index = event.content_index
        return [event]

    def _on_error(self, error: ServerError) -> None:
        self._counters.errors += 1
        self._last_error = error
        if error.client_event_id in self._pending_updates:
            # The whole update was refused and the service keeps its old config:
            # the reply would come with default instructions, voice and tools.
            self._pending_updates.remove(error.client_event_id)
            self._configured = False

    def _track(self, item_id: str) -> _ItemAudio:
        audio = self._items.get(item_id)
        if audio is None:
            audio = self._items[item_id] = _ItemAudio()
            while len(self._items) > _MAX_TRACKED_ITEMS:
                self._items.popitem(last=False)
        return audio

    # -------------------------------------------------------------------- state

    @property
    def settings(self) -> SessionSettings:
        return self._settings

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def expires_at(self) -> int | None:
        """Unix seconds when the service ends the session (60 minutes after it began)."""
        return self._expires_at

    @property
    def configured(self) -> bool:
        """True once the service accepted the last configure(); False while it is
        unanswered or after it was rejected (see ``last_error``)."""
        return self._configured

    @property
    def active_response_id(self) -> str | None:
        """The response between its response.created and its response.done."""
        return self._active_response_id

    @property
    def last_error(self) -> ServerError | None:
        return self._last_error

    @property
    def counters(self) -> SessionCounters:
        """A snapshot; changing it does not change the session."""
        return replace(self._counters)

    def audio_received_ms(self, item_id: str) -> float:
        """Milliseconds of reply audio received for the item (0.0 when unknown)."""
        audio = self._items.get(item_id)
        return 0.0 if audio is None else audio.received_bytes / PCM_BYTES_PER_MS

    def forget_item(self, item_id: str) -> None:
        """Drop what is remembered about an item once it can no longer be interrupted."""
        self._items.pop(item_id, None)
        self._out_of_band_items.pop(item_id, None)
