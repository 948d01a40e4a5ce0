"""Whatever arrives on the socket, the parser returns an event or raises RemoteProtocolError.

Anything else escaping (KeyError, TypeError, binascii.Error...) would crash the
connection loop instead of letting it reconnect, so arbitrary input is thrown at it.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from device.errors import RemoteProtocolError
from device.realtime.events import AudioDelta, ServerEvent, Unknown
from device.realtime.parse import parse_server_event
from tests.unit.test_events import EXPECTED, GA_FIXTURES

SETTINGS = settings(max_examples=200, deadline=None)

KNOWN_TYPES = sorted(GA_FIXTURES)
# Every key a known event reads, at any depth, so random objects hit real fields.
FIELD_NAMES = sorted(
    {
        "type",
        "event_id",
        "session",
        "id",
        "expires_at",
        "item_id",
        "audio_start_ms",
        "audio_end_ms",
        "previous_item_id",
        "item",
        "content_index",
        "delta",
        "transcript",
        "error",
        "response",
        "status",
        "status_details",
        "usage",
        "output",
        "output_index",
        "part",
        "text",
        "call_id",
        "name",
        "arguments",
        "rate_limits",
        "code",
        "message",
        "param",
        "total_tokens",
        "input_tokens",
        "output_tokens",
        "input_token_details",
        "cached_tokens_details",
        "output_token_details",
        "text_tokens",
        "audio_tokens",
        "image_tokens",
        "cached_tokens",
    }
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "AAAA", "AA==", "not base64!", "0"])
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)


def parse_or_reject(frame: str | bytes) -> ServerEvent | None:
    """The event, or None when the frame was rejected the documented way."""
    try:
        event = parse_server_event(frame)
    except RemoteProtocolError:
        return None
    assert isinstance(event, ServerEvent)
    return event


@SETTINGS
@given(st.text())
def test_any_text(frame: str) -> None:
    parse_or_reject(frame)


@SETTINGS
@given(st.binary())
def test_any_binary_frame_is_rejected(frame: bytes) -> None:
    assert parse_or_reject(frame) is None


@SETTINGS
@given(json_values)
def test_any_json_value(value: Any) -> None:
    event = parse_or_reject(json.dumps(value))
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        assert event is None


@SETTINGS
@given(st.sampled_from(KNOWN_TYPES), st.dictionaries(keys, json_values, max_size=8))
def test_known_type_with_random_fields(kind: str, fields: dict[str, Any]) -> None:
    event = parse_or_reject(json.dumps({**fields, "type": kind}))
    assert not isinstance(event, Unknown)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a decoded JSON object (list positions included)."""
    found: list[tuple[Any, ...]] = []
    children = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in children:
        found.append((*prefix, key))
        if isinstance(child, (dict, list)):
            found.extend(paths(child, (*prefix, key)))
    return found


@SETTINGS
@given(st.sampled_from(KNOWN_TYPES), st.data())
def test_valid_event_with_one_field_replaced_or_removed(kind: str, data: st.DataObject) -> None:
    event = copy.deepcopy(GA_FIXTURES[kind])
    path = data.draw(st.sampled_from([p for p in paths(event) if p != ("type",)]))
    parent = event
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        parent[path[-1]] = data.draw(json_values)
    elif isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    parse_or_reject(json.dumps(event))


@SETTINGS
@given(st.sampled_from(KNOWN_TYPES), st.dictionaries(st.text(max_size=12), json_values, max_size=4))
def test_extra_fields_change_nothing(kind: str, extra: dict[str, Any]) -> None:
    fixture = GA_FIXTURES[kind]
    event = {**{k: v for k, v in extra.items() if k not in fixture}, **fixture}
    assert parse_server_event(json.dumps(event)) == EXPECTED[kind]


@SETTINGS
@given(st.binary(max_size=4096))
def test_audio_delta_round_trips_any_pcm(pcm: bytes) -> None:
    event = {**GA_FIXTURES["response.output_audio.delta"], "delta": base64.b64encode(pcm).decode()}
    parsed = parse_server_event(json.dumps(event))
    assert isinstance(parsed, AudioDelta) and parsed.pcm == pcm


@SETTINGS
@given(st.text(max_size=40))
def test_audio_delta_with_any_text_as_base64(delta: str) -> None:
    event = {**GA_FIXTURES["response.output_audio.delta"], "delta": delta}
    parsed = parse_or_reject(json.dumps(event))
    assert parsed is None or isinstance(parsed, AudioDelta)
