"""Simulator checks for the session settings whose values the service knows by name:
transcription models and reusable prompts.

A typo in either is refused by the service for the whole ``session.update``, so the
simulator refuses it too (``invalid_value`` naming the parameter) rather than
accept a session the service would not run.
"""

from __future__ import annotations

import re
from typing import Any

from device.realtime.sim_schema import (
    Check,
    SimError,
    anything,
    by_kind,
    enum,
    nullable,
    obj,
    string,
    tagged,
)

# The transcription models of the GA interface (SDK 3.57 names, and the ones it retired).
TRANSCRIPTION_MODELS = (
    "whisper-1",
    "gpt-transcribe",
    "gpt-live-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe",
    "gpt-4o-transcribe-latest",
    "gpt-4o-transcribe-diarize",
    "gpt-realtime-whisper",
)
BILLED_BY_DURATION = ("whisper-1",)  # the others report token usage
_PROMPT_ID = re.compile(r"pmpt_[A-Za-z0-9]+")


def transcription_model(value: Any, path: str) -> Any:
    return enum(*TRANSCRIPTION_MODELS)(string()(value, path), path)


def _prompt_id(value: Any, path: str) -> Any:
    text = string()(value, path)
    if not _PROMPT_ID.fullmatch(text):
        raise SimError(
            "invalid_value",
            f"Invalid '{path}': '{text}'. Expected an ID that begins with 'pmpt'.",
            path,
        )
    return text


_VARIABLE = by_kind(
    "a string or an input object",
    text=string(),
    mapping=tagged(
        {
            "input_text": obj({"type": anything(), "text": string()}, ["text"]),
            "input_image": obj(
                {
                    "type": anything(),
                    "image_url": string(),
                    "file_id": string(),
                    "detail": enum("auto", "low", "high"),
                }
            ),
            "input_file": obj(
                {
                    "type": anything(),
                    "file_id": string(),
                    "file_data": string(),
                    "file_url": string(),
                    "filename": string(),
                }
            ),
        }
    ),
)


def _variables(value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise SimError(
            "invalid_type",
            f"Invalid type for '{path}': expected an object.",
            path,
        )
    return {str(name): _VARIABLE(item, f"{path}.{name}") for name, item in value.items()}


PROMPT: Check = nullable(
    obj({"id": _prompt_id, "version": string(), "variables": _variables}, ["id"])
)
