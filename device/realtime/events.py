"""Typed server events of the Realtime API (GA).

The daemon acts on a small part of what the service sends, so only those events
get a type; every other event type (MCP progress before its outcome, WebRTC-only
buffers, events newer than this code) becomes ``Unknown`` and is ignored, which
keeps an update of the service from breaking a speaker on a shelf. ``device.realtime.parse``
turns one frame into one of these events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias


@dataclass(frozen=True)
class _Event:
    # Keyword-only so that each event's own fields stay positional in the listed order.
    event_id: str = field(default="", kw_only=True)
    raw: Mapping[str, Any] = field(default_factory=dict, kw_only=True, repr=False, compare=False)


@dataclass(frozen=True)
class SessionCreated(_Event):
    """First frame of every connection: the service's default session."""

    session: Mapping[str, Any]
    session_id: str
    expires_at: int | None  # Unix seconds; sessions end after 60 minutes


@dataclass(frozen=True)
class SessionUpdated(_Event):
    """A session.update was accepted; ``session`` is the full effective config."""

    session: Mapping[str, Any]


@dataclass(frozen=True)
class SpeechStarted(_Event):
    """Server VAD heard the user start: the cue for barge-in."""

    item_id: str
    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped(_Event):
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True)
class BufferCommitted(_Event):
    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True)
class BufferCleared(_Event):
    pass


@dataclass(frozen=True)
class BufferTimeout(_Event):
    """Server VAD's idle timeout fired; the service commits silence and answers."""

    item_id: str
    audio_start_ms: int
    audio_end_ms: int


@dataclass(frozen=True)
class _ItemEvent(_Event):
    item: Mapping[str, Any]
    previous_item_id: str | None


@dataclass(frozen=True)
class ItemAdded(_ItemEvent):
    """conversation.item.added, and the beta name conversation.item.created."""


@dataclass(frozen=True)
class ItemDone(_ItemEvent):
    pass


@dataclass(frozen=True)
class ItemTruncated(_Event):
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True)
class ItemDeleted(_Event):
    item_id: str


@dataclass(frozen=True)
class InputTranscriptionDelta(_Event):
    item_id: str
    delta: str


@dataclass(frozen=True)
class InputTranscriptionCompleted(_Event):
    """What the separate speech-to-text pass heard; not necessarily what the model heard."""

    item_id: str
    transcript: str


@dataclass(frozen=True)
class InputTranscriptionFailed(_Event):
    item_id: str
    error: Mapping[str, Any]


@dataclass(frozen=True)
class ResponseCreated(_Event):
    response_id: str


@dataclass(frozen=True)
class _OutputItemEvent(_Event):
    response_id: str
    output_index: int
    item: Mapping[str, Any]


@dataclass(frozen=True)
class OutputItemAdded(_OutputItemEvent):
    pass


@dataclass(frozen=True)
class OutputItemDone(_OutputItemEvent):
    """Also sent for items of a cancelled or incomplete response."""


@dataclass(frozen=True)
class _ResponseEvent(_Event):
    """Streamed output of one item of one response."""

    response_id: str
    item_id: str


@dataclass(frozen=True)
class _ContentPartEvent(_ResponseEvent):
    content_index: int
    part: Mapping[str, Any]

    @property
    def kind(self) -> str | None:
        """ "audio" or "text", whichever spelling the service used.

        Content-part events say "audio"/"text" while item content says
        "output_audio"/"output_text"; clients have broken on each, so both read the same.
        """
        kind = self.part.get("type")
        if not isinstance(kind, str):
            return None
        return kind.removeprefix("output_")


@dataclass(frozen=True)
class ContentPartAdded(_ContentPartEvent):
    pass


@dataclass(frozen=True)
class ContentPartDone(_ContentPartEvent):
    pass


@dataclass(frozen=True)
class AudioDelta(_ResponseEvent):
    """A chunk of reply audio, already decoded: PCM16 mono at 24 kHz."""

    output_index: int
    content_index: int
    pcm: bytes = field(repr=False)  # kept out of log lines


@dataclass(frozen=True)
class AudioDone(_ResponseEvent):
    """The item's audio is complete; playback may drain and stop."""


@dataclass(frozen=True)
class TranscriptDelta(_ResponseEvent):
    """Text of the reply audio, streamed alongside it."""

    delta: str


@dataclass(frozen=True)
class TranscriptDone(_ResponseEvent):
    transcript: str


@dataclass(frozen=True)
class TextDelta(_ResponseEvent):
    delta: str


@dataclass(frozen=True)
class TextDone(_ResponseEvent):
    text: str


@dataclass(frozen=True)
class FunctionCallArgumentsDone(_ResponseEvent):
    """The model wants a tool run; ``name`` is None from services that omit it."""

    call_id: str
    name: str | None
    arguments: str  # a JSON document as a string, exactly as the model wrote it


@dataclass(frozen=True)
class McpListToolsDone(_Event):
    """mcp_list_tools.completed or .failed: the service listed an MCP server's tools, or
    could not. The ``mcp_list_tools`` item (conversation.item.done) names the server."""

    item_id: str
    failed: bool = field(default=False, kw_only=True)


@dataclass(frozen=True)
class McpCallDone(_Event):
    """response.mcp_call.completed or .failed; the ``mcp_call`` item (output_item.done)
    carries the tool, the server and the output or error."""

    item_id: str
    output_index: int
    failed: bool = field(default=False, kw_only=True)


@dataclass(frozen=True)
class Usage:
    """Token counts of one response; the cached counts are a subset of the input counts."""

    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_image_tokens: int = 0
    cached_tokens: int = 0
    cached_text_tokens: int = 0
    cached_audio_tokens: int = 0
    cached_image_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0


@dataclass(frozen=True)
class ResponseDone(_Event):
    """Always sent, whatever the outcome; ``status`` says which one."""

    response_id: str
    status: str  # completed | cancelled | failed | incomplete
    status_details: Mapping[str, Any] | None
    usage: Usage | None
    output: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class RateLimit:
    """One limit of the account: ``name`` is "requests" or "tokens"; None where not given."""

    name: str | None
    limit: int | None
    remaining: int | None
    reset_seconds: float | None


@dataclass(frozen=True)
class RateLimitsUpdated(_Event):
    """Sent as a response starts (its output tokens reserved); ``limits`` is the typed view."""

    rate_limits: tuple[Mapping[str, Any], ...]
    limits: tuple[RateLimit, ...] = field(default=(), kw_only=True, compare=False)


@dataclass(frozen=True)
class ServerError(_Event):
    """An ``error`` event; most are recoverable and the socket stays open.

    ``client_event_id`` is the event_id of our event that caused it, when there is one.
    """

    error_type: str
    code: str | None
    message: str
    param: str | None
    client_event_id: str | None


@dataclass(frozen=True)
class Unknown(_Event):
    """Any event type this daemon does not act on; kept so it can be counted and logged."""

    type: str


ServerEvent: TypeAlias = (
    SessionCreated
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | BufferCommitted
    | BufferCleared
    | BufferTimeout
    | ItemAdded
    | ItemDone
    | ItemTruncated
    | ItemDeleted
    | InputTranscriptionDelta
    | InputTranscriptionCompleted
    | InputTranscriptionFailed
    | ResponseCreated
    | OutputItemAdded
    | OutputItemDone
    | ContentPartAdded
    | ContentPartDone
    | AudioDelta
    | AudioDone
    | TranscriptDelta
    | TranscriptDone
    | TextDelta
    | TextDone
    | FunctionCallArgumentsDone
    | McpListToolsDone
    | McpCallDone
    | ResponseDone
    | RateLimitsUpdated
    | ServerError
    | Unknown
)
