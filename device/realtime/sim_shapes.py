"""The GA session, item and response shapes the simulator accepts, and the defaults.

Written out by hand from the protocol reference (the SDK models describe the same
shapes but are a test-only dependency and tolerate unknown keys). Only PCM 24 kHz
is accepted for audio formats: the simulator neither decodes nor encodes G.711,
and saying so with an error beats streaming noise under a wrong label.
"""

from __future__ import annotations

import copy
from typing import Any

from device.realtime.sim_schema import (
    Check,
    SimError,
    anything,
    array,
    boolean,
    by_kind,
    enum,
    integer,
    nullable,
    number,
    obj,
    str_map,
    string,
    tagged,
)
from device.realtime.sim_settings import PROMPT, transcription_model

DEFAULT_INSTRUCTIONS = (
    "You are a helpful voice assistant on a smart speaker. Answer briefly and warmly, "
    "in the language the user speaks."
)
PCM_RATE_HZ = 24000
MAX_ITEM_ID_CHARS = 32

SERVER_VAD_DEFAULTS: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
SEMANTIC_VAD_DEFAULTS: dict[str, Any] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}


def _pcm_only(value: Any, path: str) -> Any:
    if value.get("type") != "audio/pcm":
        raise SimError(
            "invalid_value",
            f"Invalid value: {value.get('type')!r}. The edgevoice simulator supports only "
            "'audio/pcm' at 24000 Hz.",
            f"{path}.type",
        )
    return {"type": "audio/pcm", "rate": PCM_RATE_HZ}


_FORMAT = tagged(
    {
        "audio/pcm": obj({"type": anything(), "rate": enum(PCM_RATE_HZ)}),
        "audio/pcmu": obj({"type": anything()}),
        "audio/pcma": obj({"type": anything()}),
    }
)


def _format(value: Any, path: str) -> Any:
    return _pcm_only(_FORMAT(value, path), path)


def _with_defaults(defaults: dict[str, Any], inner: Check) -> Check:
    def check(value: Any, path: str) -> Any:
        return {**defaults, **inner(value, path)}

    return check


_TURN_DETECTION = nullable(
    tagged(
        {
            "server_vad": _with_defaults(
                SERVER_VAD_DEFAULTS,
                obj(
                    {
                        "type": anything(),
                        "threshold": number(0.0, 1.0),
                        "prefix_padding_ms": integer(0),
                        "silence_duration_ms": integer(0),
                        "idle_timeout_ms": nullable(integer(5000, 30000)),
                        "create_response": boolean(),
                        "interrupt_response": boolean(),
                    }
                ),
            ),
            "semantic_vad": _with_defaults(
                SEMANTIC_VAD_DEFAULTS,
                obj(
                    {
                        "type": anything(),
                        "eagerness": enum("low", "medium", "high", "auto"),
                        "create_response": boolean(),
                        "interrupt_response": boolean(),
                    }
                ),
            ),
        }
    )
)
_TRANSCRIPTION = nullable(
    obj(
        {
            "model": transcription_model,
            "language": string(),
            "prompt": string(),
            "delay": enum("minimal", "low", "medium", "high", "xhigh"),
            "keywords": array(string()),
            "languages": array(string()),
        }
    )
)
_NOISE_REDUCTION = nullable(
    obj({"type": enum("near_field", "far_field"), "strength": number(0.0, 1.0)})
)
_AUDIO_INPUT = obj(
    {
        "format": _format,
        "noise_reduction": _NOISE_REDUCTION,
        "transcription": _TRANSCRIPTION,
        "turn_detection": _TURN_DETECTION,
    }
)
_VOICE = by_kind("a string or an object", text=string(), mapping=obj({"id": string()}, ["id"]))
_AUDIO_OUTPUT = obj({"format": _format, "voice": _VOICE, "speed": number(0.25, 1.5)})

_TOOL_FILTER = obj({"read_only": boolean(), "tool_names": array(string())})
_FUNCTION_TOOL = obj(
    {"type": anything(), "name": string(), "description": string(), "parameters": anything()},
    ["name"],
)
_MCP_TOOL = obj(
    {
        "type": anything(),
        "server_label": string(),
        "server_url": string(),
        "connector_id": string(),
        "authorization": string(),
        "headers": str_map(),
        "allowed_tools": by_kind(
            "an array or an object", sequence=array(string()), mapping=_TOOL_FILTER
        ),
        "require_approval": by_kind(
            "a string or an object",
            text=enum("always", "never"),
            mapping=obj({"always": _TOOL_FILTER, "never": _TOOL_FILTER}),
        ),
        "server_description": string(),
        "allowed_callers": array(enum("direct", "programmatic")),
        "defer_loading": boolean(),
        "tunnel_id": string(),
    },
    ["server_label"],
)
_TOOLS = array(tagged({"function": _FUNCTION_TOOL, "mcp": _MCP_TOOL}))
_TOOL_CHOICE = by_kind(
    "a string or an object",
    text=enum("auto", "none", "required"),
    mapping=tagged(
        {
            "function": obj({"type": anything(), "name": string()}, ["name"]),
            "mcp": obj(
                {"type": anything(), "server_label": string(), "name": string()},
                ["server_label"],
            ),
        }
    ),
)
_MAX_OUTPUT_TOKENS = by_kind("an integer or 'inf'", text=enum("inf"), number_=integer(1, 4096))
_TRUNCATION = by_kind(
    "a string or an object",
    text=enum("auto", "disabled"),
    mapping=tagged(
        {
            "retention_ratio": obj(
                {
                    "type": anything(),
                    "retention_ratio": number(0.0, 1.0),
                    "token_limits": obj({"post_instructions": integer(0)}),
                },
                ["retention_ratio"],
            )
        }
    ),
)
_TRACING = nullable(
    by_kind(
        "'auto' or an object",
        text=enum("auto"),
        mapping=obj({"workflow_name": string(), "group_id": string(), "metadata": anything()}),
    )
)
_PROMPT = PROMPT
_MODALITIES = array(enum("audio", "text"), min_items=1, max_items=1)
_REASONING = obj({"effort": enum("minimal", "low", "medium", "high", "xhigh")})

SESSION_FIELDS: dict[str, Check] = {
    "type": anything(),
    "model": string(),
    "output_modalities": _MODALITIES,
    "instructions": string(),
    "audio": obj({"input": _AUDIO_INPUT, "output": _AUDIO_OUTPUT}),
    "tools": _TOOLS,
    "tool_choice": _TOOL_CHOICE,
    "max_output_tokens": _MAX_OUTPUT_TOKENS,
    "truncation": _TRUNCATION,
    "prompt": _PROMPT,
    "tracing": _TRACING,
    "include": nullable(array(enum("item.input_audio_transcription.logprobs"))),
    "reasoning": _REASONING,
    "parallel_tool_calls": boolean(),
}
SESSION = obj(SESSION_FIELDS)


def default_session(model: str, session_id: str, expires_at_s: int) -> dict[str, Any]:
    """The full effective session the service announces in ``session.created``."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires_at_s,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": PCM_RATE_HZ},
                "noise_reduction": None,
                "transcription": None,
                "turn_detection": dict(SERVER_VAD_DEFAULTS),
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": PCM_RATE_HZ},
                "voice": "marin",
                "speed": 1.0,
            },
        },
        "include": None,
    }


def merge_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Apply a checked update: present keys change, ``audio`` merges per direction.

    Objects inside ``audio.input`` (turn detection, noise reduction, format) are
    replaced as a whole, their missing fields taking defaults, as the service does.
    """
    merged = copy.deepcopy(current)
    for key, value in update.items():
        if key == "audio":
            for direction, fields in value.items():
                merged["audio"][direction].update(copy.deepcopy(fields))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_TEXT_PART = obj({"type": anything(), "text": string()}, ["text"])
_USER_PARTS = tagged(
    {
        "input_text": _TEXT_PART,
        "input_audio": obj(
            {"type": anything(), "audio": string(), "transcript": nullable(string())}
        ),
        "input_image": obj(
            {"type": anything(), "image_url": string(), "detail": enum("auto", "low", "high")},
            ["image_url"],
        ),
    }
)
_ITEM_COMMON: dict[str, Check] = {
    "type": anything(),
    "id": string(MAX_ITEM_ID_CHARS),
    "object": enum("realtime.item"),
    "status": enum("completed", "incomplete", "in_progress"),
}


def _message(value: Any, path: str) -> Any:
    role_check = enum("user", "system", "assistant")
    if "role" not in value:
        raise SimError(
            "missing_required_parameter",
            f"Missing required parameter: '{path}.role'.",
            f"{path}.role",
        )
    role = role_check(value["role"], f"{path}.role")
    parts: dict[str, Check] = {
        "user": _USER_PARTS,
        "system": tagged({"input_text": _TEXT_PART}),
        "assistant": tagged({"output_text": _TEXT_PART}),
    }
    fields = {**_ITEM_COMMON, "role": anything(), "content": array(parts[role])}
    return obj(fields, ["content"])(value, path)


ITEM = tagged(
    {
        "message": _message,
        "function_call_output": obj(
            {**_ITEM_COMMON, "call_id": string(), "output": string()}, ["call_id", "output"]
        ),
        "function_call": obj(
            {**_ITEM_COMMON, "call_id": string(), "name": string(), "arguments": string()},
            ["name", "arguments"],
        ),
        "mcp_approval_response": obj(
            {
                **_ITEM_COMMON,
                "approval_request_id": string(),
                "approve": boolean(),
                "reason": nullable(string()),
            },
            ["id", "approval_request_id", "approve"],
        ),
    }
)

_INPUT_ENTRY = by_kind(
    "an object",
    mapping=lambda value, path: (
        obj({"type": anything(), "id": string()}, ["id"])(value, path)
        if value.get("type") == "item_reference"
        else ITEM(value, path)
    ),
)
RESPONSE = obj(
    {
        "output_modalities": _MODALITIES,
        "instructions": string(),
        "audio": obj({"output": obj({"format": _format, "voice": _VOICE})}),
        "tools": _TOOLS,
        "tool_choice": _TOOL_CHOICE,
        "max_output_tokens": _MAX_OUTPUT_TOKENS,
        "metadata": nullable(str_map(max_items=16, max_value_len=512)),
        "prompt": _PROMPT,
        "conversation": enum("auto", "none"),
        "input": array(_INPUT_ENTRY),
        "reasoning": _REASONING,
        "parallel_tool_calls": boolean(),
    }
)

_ENVELOPE: dict[str, Check] = {"type": anything(), "event_id": string()}
CLIENT_EVENTS: dict[str, Check] = {
    "session.update": obj({**_ENVELOPE, "session": anything()}, ["session"]),
    "input_audio_buffer.append": obj({**_ENVELOPE, "audio": string()}, ["audio"]),
    "input_audio_buffer.commit": obj(_ENVELOPE),
    "input_audio_buffer.clear": obj(_ENVELOPE),
    "conversation.item.create": obj(
        {**_ENVELOPE, "previous_item_id": nullable(string()), "item": ITEM}, ["item"]
    ),
    "conversation.item.retrieve": obj({**_ENVELOPE, "item_id": string()}, ["item_id"]),
    "conversation.item.truncate": obj(
        {
            **_ENVELOPE,
            "item_id": string(),
            "content_index": integer(0),
            "audio_end_ms": integer(0),
        },
        ["item_id", "content_index", "audio_end_ms"],
    ),
    "conversation.item.delete": obj({**_ENVELOPE, "item_id": string()}, ["item_id"]),
    "response.create": obj({**_ENVELOPE, "response": RESPONSE}),
    "response.cancel": obj({**_ENVELOPE, "response_id": string()}),
    "output_audio_buffer.clear": obj(_ENVELOPE),
}
