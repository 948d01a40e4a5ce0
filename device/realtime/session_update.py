"""The checks on ``SessionSettings`` and the GA ``session.update`` body built from them.

The service rejects a whole update for one bad value and then runs with its
defaults (default instructions, no tools, server VAD), which looks like a speaker
that ignores its config. So each value is checked here, when the settings are
made at start-up, against the ranges the service documents; what passes is what
``session_body`` sends. Settings left at None are not sent: the service keeps
its own default for them.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from device.errors import LocalProtocolError

if TYPE_CHECKING:
    from device.realtime.session import SessionSettings

PCM_RATE_HZ = 24_000  # the only PCM rate the service accepts
_OUTPUT_MODALITIES = (("audio",), ("text",))  # GA allows exactly one
_TOOL_CHOICES = ("auto", "none", "required")
_TOOL_TYPES = ("function", "mcp")
_NOISE_REDUCTIONS = ("off", "near_field", "far_field")
_EAGERNESS = ("low", "medium", "high", "auto")
_TRUNCATIONS = ("auto", "disabled")
_SERVER_VAD_KEYS = {"type", "threshold", "prefix_padding_ms", "silence_duration_ms",
                    "idle_timeout_ms", "create_response", "interrupt_response"}  # fmt: skip
_SEMANTIC_VAD_KEYS = {"type", "eagerness", "create_response", "interrupt_response"}
_IDLE_TIMEOUT_MS = (5000, 30000)
_PROMPT_ID = re.compile(r"pmpt_[A-Za-z0-9]+")


def _fail(message: str) -> LocalProtocolError:
    return LocalProtocolError(message)


def _number(value: Any, name: str, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise _fail(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise _fail(f"{name} must be {low:g}..{high:g}, got {value!r}")


def _whole(value: Any, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise _fail(f"{name} must be {low}..{high}, got {value!r}")


def check_turn_detection(turn: Mapping[str, Any] | None) -> None:
    """server_vad or semantic_vad with only the keys (and ranges) their type takes."""
    if turn is None:
        return
    kind = turn.get("type")
    allowed = {"server_vad": _SERVER_VAD_KEYS, "semantic_vad": _SEMANTIC_VAD_KEYS}.get(str(kind))
    if allowed is None:
        raise _fail("turn_detection type must be one of ('server_vad', 'semantic_vad') or None,"
                    f" got {kind!r}")  # fmt: skip
    extra = sorted(set(turn) - allowed)
    if extra:
        raise _fail(f"turn_detection {kind} does not take {', '.join(extra)}")
    if "threshold" in turn:
        _number(turn["threshold"], "turn_detection threshold", 0.0, 1.0)
    for name in ("prefix_padding_ms", "silence_duration_ms"):
        if name in turn:
            _whole(turn[name], f"turn_detection {name}", 0, 60_000)
    idle = turn.get("idle_timeout_ms")
    if idle is not None:
        _whole(idle, "turn_detection idle_timeout_ms", *_IDLE_TIMEOUT_MS)
    if "eagerness" in turn and turn["eagerness"] not in _EAGERNESS:
        raise _fail(f"turn_detection eagerness must be one of {_EAGERNESS}, "
                    f"got {turn['eagerness']!r}")  # fmt: skip
    for name in ("create_response", "interrupt_response"):
        if name in turn and not isinstance(turn[name], bool):
            raise _fail(f"turn_detection {name} must be true or false, got {turn[name]!r}")


def _check_truncation(truncation: str | Mapping[str, Any] | None) -> None:
    if truncation is None or truncation in _TRUNCATIONS:
        return
    if not isinstance(truncation, Mapping) or truncation.get("type") != "retention_ratio":
        raise _fail(f"truncation must be 'auto', 'disabled' or a retention_ratio object, "
                    f"got {truncation!r}")  # fmt: skip
    if set(truncation) - {"type", "retention_ratio", "token_limits"}:
        raise _fail(f"truncation takes type, retention_ratio and token_limits, got {truncation}")
    _number(truncation.get("retention_ratio"), "truncation retention_ratio", 0.0, 1.0)
    limits = truncation.get("token_limits")
    if limits is not None:
        if not isinstance(limits, Mapping) or set(limits) != {"post_instructions"}:
            raise _fail(f"truncation token_limits must be {{post_instructions}}, got {limits!r}")
        _whole(limits["post_instructions"], "truncation post_instructions", 0, 10**9)


def _check_prompt(prompt: Mapping[str, Any] | None) -> None:
    if prompt is None:
        return
    if not _PROMPT_ID.fullmatch(str(prompt.get("id"))):
        raise _fail(f"prompt id must look like 'pmpt_...', got {prompt.get('id')!r}")
    if set(prompt) - {"id", "version", "variables"}:
        raise _fail(f"prompt takes id, version and variables, got {sorted(prompt)}")
    if "version" in prompt and not isinstance(prompt["version"], str):
        raise _fail(f"prompt version must be a string, got {prompt['version']!r}")
    variables = prompt.get("variables", {})
    if not isinstance(variables, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise _fail(f"prompt variables must map names to strings, got {variables!r}")


def _check_transcription(transcription: Mapping[str, Any] | None) -> None:
    if transcription is None:
        return
    model = transcription.get("model")
    if not isinstance(model, str) or not model:
        raise _fail(f"transcription needs a model, got {model!r}")
    if set(transcription) - {"model", "language", "prompt"}:
        raise _fail(f"transcription takes model, language and prompt, got {sorted(transcription)}")
    for name in ("language", "prompt"):
        if name in transcription and not isinstance(transcription[name], str):
            raise _fail(f"transcription {name} must be a string, got {transcription[name]!r}")


def check_settings(s: SessionSettings) -> None:
    """Raise LocalProtocolError for the first value the service would refuse."""
    if not s.voice:
        raise _fail("voice must not be empty")
    if tuple(s.output_modalities) not in _OUTPUT_MODALITIES:
        raise _fail(f"output_modalities must be ('audio',) or ('text',), got {s.output_modalities}")
    check_turn_detection(s.turn_detection)
    if s.input_rate_hz != PCM_RATE_HZ:
        raise _fail(f"input_rate_hz must be {PCM_RATE_HZ} (the only PCM rate the service takes),"
                    f" got {s.input_rate_hz}; resample before sending")  # fmt: skip
    if s.tool_choice not in _TOOL_CHOICES:
        raise _fail(f"tool_choice must be one of {_TOOL_CHOICES}, got {s.tool_choice!r}")
    for index, tool in enumerate(s.tools):
        kind = tool.get("type")
        name = tool.get("server_label" if kind == "mcp" else "name")
        if kind not in _TOOL_TYPES or not isinstance(name, str) or not name:
            raise _fail(f"tools[{index}] must be a function tool with a name or an mcp tool"
                        f" with a server_label, got type {kind!r}")  # fmt: skip
    if s.speed is not None:
        _number(s.speed, "speed", 0.25, 1.5)
    if s.max_output_tokens is not None and s.max_output_tokens != "inf":
        _whole(s.max_output_tokens, "max_output_tokens", 1, 4096)
    _check_truncation(s.truncation)
    _check_prompt(s.prompt)
    if s.noise_reduction is not None and s.noise_reduction not in _NOISE_REDUCTIONS:
        raise _fail(f"noise_reduction must be one of {_NOISE_REDUCTIONS}, "
                    f"got {s.noise_reduction!r}")  # fmt: skip
    _check_transcription(s.transcription)


def _plain(value: Any) -> Any:
    """A deep copy as plain dicts and lists, whatever mapping types the settings hold."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def session_body(s: SessionSettings) -> dict[str, Any]:
    """The ``session`` of the update. The model is not part of it: the URL fixes it.

    Empty instructions are left out rather than sent as "", which would erase the
    service's default instructions (or a reusable prompt's) instead of keeping them.
    """
    pcm = {"type": "audio/pcm", "rate": PCM_RATE_HZ}
    audio_in: dict[str, Any] = {
        "format": dict(pcm),
        "turn_detection": _plain(s.turn_detection),
    }
    if s.noise_reduction is not None:
        off = s.noise_reduction == "off"
        audio_in["noise_reduction"] = None if off else {"type": s.noise_reduction}
    if s.transcription is not None:
        audio_in["transcription"] = _plain(s.transcription)
    audio_out: dict[str, Any] = {"format": dict(pcm), "voice": s.voice}
    if s.speed is not None:
        audio_out["speed"] = s.speed
    session: dict[str, Any] = {
        "type": "realtime",
        "output_modalities": list(s.output_modalities),
        "audio": {"input": audio_in, "output": audio_out},
    }
    if s.instructions:
        session["instructions"] = s.instructions
    if s.tools:
        session["tools"] = [copy.deepcopy(dict(tool)) for tool in s.tools]
        session["tool_choice"] = s.tool_choice
    if s.max_output_tokens is not None:
        session["max_output_tokens"] = s.max_output_tokens
    if s.truncation is not None:
        session["truncation"] = _plain(s.truncation)
    if s.prompt is not None:
        session["prompt"] = _plain(s.prompt)
    return session
