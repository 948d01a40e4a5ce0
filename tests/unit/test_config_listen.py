"""[listen]: the keys, their checks, and how they go with [turn]."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.config import config_from_dict, describe, load_config
from device.config_listen import ListenConfig
from device.errors import ConfigError

SOURCE = "/etc/edgevoice/edgevoice.toml"


def problem(data: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, SOURCE)
    return str(caught.value)


def test_the_defaults_listen_for_the_wake_word() -> None:
    listen = load_config(None).listen
    assert listen == ListenConfig()
    assert (listen.mode, listen.wake_word, listen.wake_word_model) == (
        "wake_word",
        "okay_nabu",
        None,
    )
    assert listen.follow_up_s > 0 and listen.barge_in


def test_every_key_is_read() -> None:
    listen = config_from_dict(
        {
            "listen": {
                "mode": "always",
                "wake_word": "alexa",
                "wake_word_model": "/etc/edgevoice/wake/mine.json",
                "refractory_s": 3,
                "listen_timeout_s": 5.5,
                "follow_up_s": 0,
                "barge_in": False,
                "barge_in_min_speech_ms": 200,
                "barge_in_echo_margin_db": 15,
            }
        },
        SOURCE,
    ).listen
    assert listen.wake_word_model == Path("/etc/edgevoice/wake/mine.json")
    assert (listen.refractory_s, listen.follow_up_s, listen.barge_in) == (3.0, 0.0, False)


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"mode": "sometimes"}, "listen.mode", "wake_word"),
        ({"wake_word": "hey_google"}, "listen.wake_word", "okay_nabu"),
        ({"wake_word_model": "mine.json"}, "listen.wake_word_model", "absolute"),
        ({"follow_up_s": -1}, "listen.follow_up_s", "0..60"),
        ({"barge_in_min_speech_ms": 65}, "listen.barge_in_min_speech_ms", "multiple of 10"),
        ({"barge_in": "yes"}, "listen.barge_in", "true or false"),
    ],
)
def test_bad_values_name_the_file_and_key(table: dict[str, object], key: str, words: str) -> None:
    message = problem({"listen": table})
    assert message.startswith(f"{SOURCE}: {key}: ")
    assert words in message


def test_push_to_talk_needs_both_sections() -> None:
    message = problem({"listen": {"mode": "push_to_talk"}})
    assert message.startswith(f"{SOURCE}: listen.mode: ")
    assert 'turn.mode = "push_to_talk"' in message
    message = problem({"turn": {"mode": "push_to_talk"}})
    assert message.startswith(f"{SOURCE}: turn.mode: ")
    assert 'listen.mode = "push_to_talk"' in message
    both = {"listen": {"mode": "push_to_talk"}, "turn": {"mode": "push_to_talk"}}
    assert config_from_dict(both, SOURCE).listen.mode == "push_to_talk"


def test_config_check_shows_how_the_speaker_listens() -> None:
    assert "listen:   wake word okay_nabu, follow-up 5 s, barge-in after 30 ms" in describe(
        load_config(None)
    )
    always = config_from_dict({"listen": {"mode": "always", "barge_in": False}}, SOURCE)
    assert "listen:   always, no barge-in by voice" in describe(always)
