"""The oracle itself must catch what it is there to catch."""

from __future__ import annotations

import base64

from tests.contract.oracle import client_problems, server_problems

GA_UPDATE = {
    "type": "session.update",
    "event_id": "ev_1",
    "session": {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": "Be brief.",
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
        },
    },
}


def test_ga_session_update_is_valid() -> None:
    assert client_problems(GA_UPDATE) == []


def test_beta_leftover_key_is_reported() -> None:
    event = {**GA_UPDATE, "session": {**GA_UPDATE["session"], "temperature": 0.8}}
    assert any("temperature" in p for p in client_problems(event))


def test_missing_session_type_is_reported() -> None:
    session = {k: v for k, v in GA_UPDATE["session"].items() if k != "type"}
    assert client_problems({**GA_UPDATE, "session": session})


def test_beta_event_type_is_reported() -> None:
    assert client_problems({"type": "response.audio.delta", "delta": ""})
    assert server_problems({"type": "conversation.item.created", "event_id": "e", "item": {}})


def test_audio_rate_other_than_24k_is_reported() -> None:
    event = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
        },
    }
    assert client_problems(event)


def test_append_audio_checked_for_base64_and_even_length() -> None:
    ok = base64.b64encode(b"\x00\x01" * 10).decode()
    odd = base64.b64encode(b"\x00" * 3).decode()
    assert client_problems({"type": "input_audio_buffer.append", "audio": ok}) == []
    assert client_problems({"type": "input_audio_buffer.append", "audio": odd})
    assert client_problems({"type": "input_audio_buffer.append", "audio": "not base64!"})


def test_two_output_modalities_are_reported() -> None:
    session = {**GA_UPDATE["session"], "output_modalities": ["audio", "text"]}
    assert client_problems({**GA_UPDATE, "session": session})


def test_server_session_created_allows_response_keys() -> None:
    event = {
        "type": "session.created",
        "event_id": "event_1",
        "session": {
            "type": "realtime",
            "id": "sess_1",
            "object": "realtime.session",
            "expires_at": 1_900_000_000,
            "model": "gpt-realtime-1.5",
            "output_modalities": ["audio"],
        },
    }
    assert server_problems(event) == []
    event["session"]["voice"] = "marin"  # beta location of the voice
    assert any("voice" in p for p in server_problems(event))
