"""The conformance oracle: the official ``openai`` SDK's Realtime event types.

Every event the daemon sends is checked with ``client_problems`` and every event
the simulator sends with ``server_problems``. The SDK models tolerate unknown
keys (``extra="allow"``), which would let beta leftovers such as
``session.voice`` or ``session.temperature`` through, so the models are walked
and any extra key is reported. A few GA rules the types do not enforce are
checked by hand (base64 audio, item id length, a single output modality).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Annotated, Any

import pydantic
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import BaseModel, Field, TypeAdapter

_CLIENT = TypeAdapter(Annotated[RealtimeClientEvent, Field(discriminator="type")])
_SERVER = TypeAdapter(Annotated[RealtimeServerEvent, Field(discriminator="type")])

# session.created/updated carry the effective session, which the SDK types with
# the *request* model; these response-only keys are legitimate there.
_SESSION_RESPONSE_KEYS = {"session.id", "session.object", "session.expires_at"}
# Beta-era names still present in the SDK union; the GA service never sends them.
_BETA_SERVER_TYPES = {"conversation.item.created", "conversation.created"}
_MAX_ITEM_ID = 32

SENT_BY_SIMULATOR: list[dict[str, Any]] = []
"""Events a test's simulator sent; tests/contract/conftest.py checks each one after the test."""
_MAX_APPEND_BYTES = 15 * 1024 * 1024


def unknown_keys(model: Any, path: str = "") -> Iterator[str]:
    """Yield the dotted path of every key the SDK model did not declare."""
    if isinstance(model, BaseModel):
        for key in model.model_extra or {}:
            yield f"{path}{key}"
        for name in type(model).model_fields:
            yield from unknown_keys(getattr(model, name), f"{path}{name}.")
    elif isinstance(model, list):
        for i, value in enumerate(model):
            yield from unknown_keys(value, f"{path}{i}.")
    elif isinstance(model, dict):
        for key, value in model.items():
            yield from unknown_keys(value, f"{path}{key}.")


def _validate(adapter: TypeAdapter[Any], event: dict[str, Any], allowed: set[str]) -> list[str]:
    try:
        parsed = adapter.validate_python(event)
    except pydantic.ValidationError as exc:
        return [f"{event.get('type')!r}: {err['loc']}: {err['msg']}" for err in exc.errors()]
    return [
        f"{event.get('type')!r}: unknown key {key}"
        for key in unknown_keys(parsed)
        if key not in allowed
    ]


def _audio_problems(event_type: str, audio: Any, limit: int | None) -> list[str]:
    if not isinstance(audio, str):
        return [f"{event_type!r}: audio is not a base64 string"]
    try:
        raw = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        return [f"{event_type!r}: audio is not valid base64"]
    problems = []
    if len(raw) % 2:
        problems.append(f"{event_type!r}: audio has an odd byte count ({len(raw)})")
    if limit is not None and len(raw) > limit:
        problems.append(f"{event_type!r}: audio is {len(raw)} bytes, over {limit}")
    return problems


def _session_problems(event_type: str, session: Any) -> list[str]:
    if not isinstance(session, dict):
        return []
    modalities = session.get("output_modalities")
    if isinstance(modalities, list) and len(modalities) > 1:
        return [f"{event_type!r}: output_modalities must hold one modality, got {modalities}"]
    return []


def client_problems(event: dict[str, Any]) -> list[str]:
    """Everything wrong with an event the device sends; [] when it is GA-valid."""
    problems = _validate(_CLIENT, event, set())
    kind = str(event.get("type"))
    if kind == "input_audio_buffer.append":
        problems += _audio_problems(kind, event.get("audio"), _MAX_APPEND_BYTES)
    if kind == "session.update":
        problems += _session_problems(kind, event.get("session"))
    item = event.get("item")
    if isinstance(item, dict) and len(str(item.get("id", ""))) > _MAX_ITEM_ID:
        problems.append(f"{kind!r}: item id longer than {_MAX_ITEM_ID} characters")
    return problems


def server_problems(event: dict[str, Any]) -> list[str]:
    """Everything wrong with an event the service (or simulator) sends."""
    kind = str(event.get("type"))
    if kind in _BETA_SERVER_TYPES:
        return [f"{kind!r}: beta event name"]
    allowed = _SESSION_RESPONSE_KEYS if kind in ("session.created", "session.updated") else set()
    problems = _validate(_SERVER, event, allowed)
    if kind == "response.output_audio.delta":
        problems += _audio_problems(kind, event.get("delta"), None)
    if kind in ("session.created", "session.updated"):
        problems += _session_problems(kind, event.get("session"))
    return problems
