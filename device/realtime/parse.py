"""The one function that turns a frame from the Realtime API into a typed server event.

A frame that cannot be understood raises ``RemoteProtocolError`` and nothing
else: the reconnect loop relies on that one class to tell "the server sent
garbage" from a bug of ours. The rule for fields is uniform: a field an event
needs must be present with the right JSON type; an optional field may be
missing or null (it then reads as None, 0 or an empty tuple) but, when present,
must still have the right type. Extra fields are ignored. ``event_id`` is the
one lenient exception: no behaviour depends on it, so a missing one reads as "".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from device.errors import RemoteProtocolError
from device.realtime.events import (
    AudioDelta,
    AudioDone,
    BufferCleared,
    BufferCommitted,
    BufferTimeout,
    ContentPartAdded,
    ContentPartDone,
    FunctionCallArgumentsDone,
    InputTranscriptionCompleted,
    InputTranscriptionDelta,
    InputTranscriptionFailed,
    ItemAdded,
    ItemDeleted,
    ItemDone,
    ItemTruncated,
    McpCallDone,
    McpListToolsDone,
    OutputItemAdded,
    OutputItemDone,
    RateLimit,
    RateLimitsUpdated,
    ResponseCreated,
    ResponseDone,
    ServerError,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    TranscriptDelta,
    TranscriptDone,
    Unknown,
    Usage,
)

_MISSING = object()


def _json_type(value: Any) -> str:
    if value is _MISSING:
        return "missing"
    names = {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_obj(value: Any) -> bool:
    return isinstance(value, dict)


def _is_obj_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


class _Fields:
    """Reads one decoded JSON object; every complaint names the event type and the field."""

    def __init__(self, kind: str, obj: Mapping[str, Any], path: str = "") -> None:
        self.kind = kind
        self.obj = obj
        self._path = path

    def _get(self, name: str, expected: str, ok: Callable[[Any], bool], optional: bool) -> Any:
        value = self.obj.get(name, _MISSING)
        if optional and (value is _MISSING or value is None):
            return None
        if not ok(value):
            raise RemoteProtocolError(
                f"{self.kind}: field {self._path + name!r} must be"
                f" {expected}, got {_json_type(value)}"
            )
        return value

    def text(self, name: str) -> str:
        return str(self._get(name, "a string", _is_str, optional=False))

    def opt_text(self, name: str) -> str | None:
        value = self._get(name, "a string", _is_str, optional=True)
        return None if value is None else str(value)

    def integer(self, name: str) -> int:
        return int(self._get(name, "an integer", _is_int, optional=False))

    def opt_integer(self, name: str) -> int | None:
        value = self._get(name, "an integer", _is_int, optional=True)
        return None if value is None else int(value)

    def opt_number(self, name: str) -> float | None:
        value = self._get(name, "a number", _is_number, optional=True)
        return None if value is None else float(value)

    def count(self, name: str) -> int:
        return self.opt_integer(name) or 0

    def mapping(self, name: str) -> Mapping[str, Any]:
        value: Mapping[str, Any] = self._get(name, "an object", _is_obj, optional=False)
        return value

    def opt_mapping(self, name: str) -> Mapping[str, Any] | None:
        value: Mapping[str, Any] | None = self._get(name, "an object", _is_obj, optional=True)
        return value

    def mappings(self, name: str) -> tuple[Mapping[str, Any], ...]:
        return tuple(self._get(name, "an array of objects", _is_obj_list, optional=False))

    def opt_mappings(self, name: str) -> tuple[Mapping[str, Any], ...]:
        value = self._get(name, "an array of objects", _is_obj_list, optional=True)
        return () if value is None else tuple(value)

    def sub(self, name: str) -> _Fields:
        return _Fields(self.kind, self.mapping(name), f"{self._path}{name}.")

    def opt_sub(self, name: str) -> _Fields:
        """The nested object, or an empty one when it is missing or null."""
        return _Fields(self.kind, self.opt_mapping(name) or {}, f"{self._path}{name}.")

    def base64(self, name: str) -> bytes:
        encoded = self.text(name)
        try:
            return base64.b64decode(encoded, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII characters in the string
            raise RemoteProtocolError(
                f"{self.kind}: field {self._path + name!r} is not valid base64"
            ) from None

    def common(self) -> dict[str, Any]:
        return {"event_id": self.opt_text("event_id") or "", "raw": self.obj}


# How a field is read, by its annotation (a string: annotations are postponed here).
_READ_BY_TYPE: dict[str, Callable[[_Fields, str], Any]] = {
    "str": _Fields.text,
    "str | None": _Fields.opt_text,
    "int": _Fields.integer,
    "int | None": _Fields.opt_integer,
    "Mapping[str, Any]": _Fields.mapping,
    "Mapping[str, Any] | None": _Fields.opt_mapping,
    "tuple[Mapping[str, Any], ...]": _Fields.mappings,
}


def _by_name(cls: type[ServerEvent]) -> Callable[[_Fields], ServerEvent]:
    """Read each of the event's own fields from the JSON key of the same name.

    Most events are flat and named as on the wire, so declaring the dataclass is
    declaring the parser; the few that are not get a function of their own below.
    An unsupported annotation fails at import, not on the first frame.
    """
    own = [fld for fld in fields(cls) if not fld.kw_only]
    readers = [(fld.name, _READ_BY_TYPE[str(fld.type)]) for fld in own]
    return lambda f: cls(*(read(f, name) for name, read in readers), **f.common())


def _session_created(f: _Fields) -> ServerEvent:
    session = f.sub("session")
    return SessionCreated(
        session.obj, session.text("id"), session.opt_integer("expires_at"), **f.common()
    )


def _transcription_delta(f: _Fields) -> ServerEvent:
    # The SDK marks this delta optional; a missing one carries no text, so it reads as "".
    return InputTranscriptionDelta(f.text("item_id"), f.opt_text("delta") or "", **f.common())


def _audio_delta(f: _Fields) -> ServerEvent:
    return AudioDelta(
        f.text("response_id"),
        f.text("item_id"),
        f.integer("output_index"),
        f.integer("content_index"),
        f.base64("delta"),
        **f.common(),
    )


def _usage(response: _Fields) -> Usage | None:
    if response.opt_mapping("usage") is None:
        return None
    usage = response.sub("usage")
    given = usage.opt_sub("input_token_details")
    cached = given.opt_sub("cached_tokens_details")
    produced = usage.opt_sub("output_token_details")
    return Usage(
        total_tokens=usage.count("total_tokens"),
        input_tokens=usage.count("input_tokens"),
        output_tokens=usage.count("output_tokens"),
        input_text_tokens=given.count("text_tokens"),
        input_audio_tokens=given.count("audio_tokens"),
        input_image_tokens=given.count("image_tokens"),
        cached_tokens=given.count("cached_tokens"),
        cached_text_tokens=cached.count("text_tokens"),
        cached_audio_tokens=cached.count("audio_tokens"),
        cached_image_tokens=cached.count("image_tokens"),
        output_text_tokens=produced.count("text_tokens"),
        output_audio_tokens=produced.count("audio_tokens"),
    )


def _response_done(f: _Fields) -> ServerEvent:
    response = f.sub("response")
    return ResponseDone(
        response.text("id"),
        response.text("status"),
        response.opt_mapping("status_details"),
        _usage(response),
        response.opt_mappings("output"),
        **f.common(),
    )


def _rate_limits_updated(f: _Fields) -> ServerEvent:
    entries = f.mappings("rate_limits")
    limits = []
    for index, entry in enumerate(entries):
        limit = _Fields(f.kind, entry, f"rate_limits[{index}].")
        limits.append(
            RateLimit(
                limit.opt_text("name"),
                limit.opt_integer("limit"),
                limit.opt_integer("remaining"),
                limit.opt_number("reset_seconds"),
            )
        )
    return RateLimitsUpdated(entries, limits=tuple(limits), **f.common())


def _server_error(f: _Fields) -> ServerEvent:
    error = f.sub("error")
    # A message-less error still carries its type and code, which matter more than losing it.
    return ServerError(
        error.text("type"),
        error.opt_text("code"),
        error.opt_text("message") or "",
        error.opt_text("param"),
        error.opt_text("event_id"),
        **f.common(),
    )


def _mcp_list_failed(f: _Fields) -> ServerEvent:
    return McpListToolsDone(f.text("item_id"), failed=True, **f.common())


def _mcp_call_failed(f: _Fields) -> ServerEvent:
    return McpCallDone(f.text("item_id"), f.integer("output_index"), failed=True, **f.common())


_PARSERS: dict[str, Callable[[_Fields], ServerEvent]] = {
    "session.created": _session_created,
    "session.updated": _by_name(SessionUpdated),
    "input_audio_buffer.speech_started": _by_name(SpeechStarted),
    "input_audio_buffer.speech_stopped": _by_name(SpeechStopped),
    "input_audio_buffer.committed": _by_name(BufferCommitted),
    "input_audio_buffer.cleared": _by_name(BufferCleared),
    "input_audio_buffer.timeout_triggered": _by_name(BufferTimeout),
    "conversation.item.added": _by_name(ItemAdded),
    "conversation.item.created": _by_name(ItemAdded),  # beta name, still in the SDK's union
    "conversation.item.done": _by_name(ItemDone),
    "conversation.item.truncated": _by_name(ItemTruncated),
    "conversation.item.deleted": _by_name(ItemDeleted),
    "conversation.item.input_audio_transcription.delta": _transcription_delta,
    "conversation.item.input_audio_transcription.completed": _by_name(InputTranscriptionCompleted),
    "conversation.item.input_audio_transcription.failed": _by_name(InputTranscriptionFailed),
    "response.created": lambda f: ResponseCreated(f.sub("response").text("id"), **f.common()),
    "response.output_item.added": _by_name(OutputItemAdded),
    "response.output_item.done": _by_name(OutputItemDone),
    "response.content_part.added": _by_name(ContentPartAdded),
    "response.content_part.done": _by_name(ContentPartDone),
    "response.output_audio.delta": _audio_delta,
    "response.output_audio.done": _by_name(AudioDone),
    "response.output_audio_transcript.delta": _by_name(TranscriptDelta),
    "response.output_audio_transcript.done": _by_name(TranscriptDone),
    "response.output_text.delta": _by_name(TextDelta),
    "response.output_text.done": _by_name(TextDone),
    "response.function_call_arguments.done": _by_name(FunctionCallArgumentsDone),
    "mcp_list_tools.completed": _by_name(McpListToolsDone),
    "mcp_list_tools.failed": _mcp_list_failed,
    "response.mcp_call.completed": _by_name(McpCallDone),
    "response.mcp_call.failed": _mcp_call_failed,
    "response.done": _response_done,
    "rate_limits.updated": _rate_limits_updated,
    "error": _server_error,
}


def hide_tokens(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with each MCP tool's token in its session shown as "***".

    The service may echo a session's tools, tokens included; the token must not
    live on in events, their reprs or the trace. Returns ``event`` itself when
    there is nothing to hide, else a copy (the original may still be sent).
    """
    session = event.get("session")
    if not isinstance(session, dict):
        return event
    tools = session.get("tools")
    if not isinstance(tools, list) or not any(
        isinstance(tool, dict) and tool.get("authorization") is not None for tool in tools
    ):
        return event
    hidden = [
        {**tool, "authorization": "***"}
        if isinstance(tool, dict) and tool.get("authorization") is not None
        else tool
        for tool in tools
    ]
    return {**event, "session": {**session, "tools": hidden}}


def parse_server_event(frame: str | bytes) -> ServerEvent:
    """Turn one WebSocket frame from the service into a typed event.

    Raises ``RemoteProtocolError`` (only) for a binary frame, text that is not a
    JSON object with a string ``type``, or a known event missing a field it needs.
    """
    if not isinstance(frame, str):
        raise RemoteProtocolError(
            f"expected a text frame, got a binary frame of {len(frame)} bytes"
            if isinstance(frame, (bytes, bytearray, memoryview))
            else f"expected a text frame, got {type(frame).__name__}"
        )
    try:
        obj = json.loads(frame)
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise RemoteProtocolError(f"frame is not JSON: {exc}") from None
    except RecursionError:
        raise RemoteProtocolError("frame is JSON nested too deeply to decode") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"frame must be a JSON object, got {_json_type(obj)}")
    kind = obj.get("type", _MISSING)
    if not isinstance(kind, str):
        raise RemoteProtocolError(f"event field 'type' must be a string, got {_json_type(kind)}")
    if kind in ("session.created", "session.updated"):
        obj = hide_tokens(obj)
    parser = _PARSERS.get(kind)
    if parser is None:
        # Nothing is read from an event we do not act on, so nothing about it can be wrong.
        event_id = obj.get("event_id")
        return Unknown(kind, event_id=event_id if isinstance(event_id, str) else "", raw=obj)
    return parser(_Fields(kind, obj))
