"""The session keys of [realtime] and the [turn] section: their rules, the settings
built from them, and the session.update those settings send (checked by the SDK oracle)."""

from __future__ import annotations

from typing import Any

import pytest

from device.config import Config, config_from_dict, config_warnings, describe, with_overrides
from device.config_session import StringTable
from device.errors import ConfigError, LocalProtocolError
from device.realtime.session import RealtimeSession, SessionSettings
from device.session_settings import (
    SEMANTIC_MAX_WAIT_MS,
    STREAM_MARGIN_MS,
    idle_listen_ms,
    session_settings,
    stream_tail_ms,
    turn_detection,
)
from tests.contract.oracle import client_problems

SOURCE = "/etc/edgevoice/edgevoice.toml"
# The talk button that ends a push-to-talk turn must open it too ([listen] mode).
LISTEN = {"server_vad": "always", "semantic_vad": "always", "push_to_talk": "push_to_talk"}
VOLUME = {"type": "function", "name": "volume", "description": "Set the volume.",
          "parameters": {"type": "object", "properties": {}}}  # fmt: skip


def problem(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, SOURCE)
    return str(caught.value)


def update_for(config: Config, tools: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """The session of the session.update a new session sends; GA-valid or the test fails."""
    session = RealtimeSession(session_settings(config, tools))
    session.configure()
    [event] = session.data_to_send()
    assert client_problems(event) == [], client_problems(event)
    body: dict[str, Any] = event["session"]
    return body


# -- config rules --------------------------------------------------------------------


def test_defaults_suit_a_room_speaker() -> None:
    config = Config()
    assert config.realtime.speed == 1.0 and config.realtime.output_modality == "audio"
    assert config.realtime.max_output_tokens == "inf" and config.realtime.truncation == "auto"
    assert config.realtime.noise_reduction == "far_field"
    assert config.realtime.transcription_model == "" and config.realtime.prompt_id == ""
    assert config.turn.mode == "server_vad" and config.turn.idle_timeout_ms == 0


def test_a_full_set_of_session_keys_gives_typed_values() -> None:
    config = config_from_dict(
        {
            "realtime": {
                "speed": 1.25, "output_modality": "text", "max_output_tokens": 300,
                "truncation": 0.75, "truncation_post_instructions_tokens": 8000,
                "prompt_id": "pmpt_abc123", "prompt_version": "4",
                "prompt_variables": {"city": "Lisbon", "unit": "metric"},
                "noise_reduction": "near_field", "transcription_model": "whisper-1",
                "transcription_language": "pt",
            },
            "turn": {"mode": "server_vad", "threshold": 0.7, "prefix_padding_ms": 200,
                     "silence_duration_ms": 900, "idle_timeout_ms": 8000},
        },
        SOURCE,
    )  # fmt: skip
    rt, turn = config.realtime, config.turn
    assert (rt.speed, rt.output_modality, rt.max_output_tokens) == (1.25, "text", 300)
    assert (rt.truncation, rt.truncation_post_instructions_tokens) == (0.75, 8000)
    assert rt.prompt_variables == {"city": "Lisbon", "unit": "metric"}
    assert isinstance(rt.prompt_variables, StringTable)
    assert hash(config) == hash(with_overrides(config))  # frozen all the way down
    assert (turn.threshold, turn.silence_duration_ms, turn.idle_timeout_ms) == (0.7, 900, 8000)


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("realtime", "speed", 2.0, "realtime.speed: 2.0 is out of range; allowed: 0.25..1.5"),
        ("realtime", "output_modality", "both", 'realtime.output_modality: "both" is not a reply '
         "modality; allowed: audio, text"),
        ("realtime", "max_output_tokens", 5000, "realtime.max_output_tokens: 5000 is out of "
         'range; allowed: 1..4096 or "inf"'),
        ("realtime", "max_output_tokens", "infinite", 'realtime.max_output_tokens: "infinite" '
         'is not allowed; allowed: 1..4096 or "inf"'),
        ("realtime", "max_output_tokens", 1.5, "realtime.max_output_tokens: expected an "
         'integer 1..4096 or "inf", got a float (1.5)'),
        ("realtime", "truncation", 1.5, "realtime.truncation: 1.5 is out of range; allowed: "
         "a retention ratio 0..1"),
        ("realtime", "truncation", "smart", 'realtime.truncation: "smart" is not allowed; '
         'allowed: "auto", "disabled" or a retention ratio 0..1 such as 0.8'),
        ("realtime", "prompt_id", "prompt-1", 'realtime.prompt_id: "prompt-1" is not allowed; '
         'allowed: "" for none, or a prompt id such as "pmpt_123abc"'),
        ("realtime", "noise_reduction", "room", 'realtime.noise_reduction: "room" is not a '
         "noise reduction; allowed: off, near_field, far_field"),
        ("realtime", "transcription_language", "English", 'realtime.transcription_language: '
         '"English" is not allowed; allowed: "" for none, or an ISO-639-1 language code '
         'such as "en"'),
        ("turn", "mode", "vad", 'turn.mode: "vad" is not a turn mode; allowed: server_vad, '
         "semantic_vad, push_to_talk"),
        ("turn", "idle_timeout_ms", 1000, "turn.idle_timeout_ms: 1000 is out of range; "
         "allowed: 0 (off) or 5000..30000"),
        ("turn", "silence_duration_ms", 50, "turn.silence_duration_ms: 50 is out of range; "
         "allowed: 100..5000"),
        ("turn", "eagerness", "eager", 'turn.eagerness: "eager" is not a level of eagerness; '
         "allowed: auto, low, medium, high"),
    ],
)  # fmt: skip
def test_a_bad_value_names_the_file_the_key_and_what_is_allowed(
    section: str, key: str, value: Any, expected: str
) -> None:
    assert problem({section: {key: value}}) == f"{SOURCE}: {expected}"


def test_a_bad_prompt_variable_is_named() -> None:
    assert problem({"realtime": {"prompt_id": "pmpt_1", "prompt_variables": {"n": 3}}}) == (
        f"{SOURCE}: realtime.prompt_variables.n: expected a string, got an integer (3)"
    )
    assert "not a variable name" in problem(
        {"realtime": {"prompt_id": "pmpt_1", "prompt_variables": {"2x": "a"}}}
    )


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"realtime": {"prompt_version": "3"}}, "realtime.prompt_version", "needs a prompt"),
        ({"realtime": {"prompt_variables": {"a": "b"}}}, "realtime.prompt_variables",
         "needs a prompt"),
        ({"realtime": {"transcription_language": "en"}}, "realtime.transcription_language",
         "needs transcription on"),
        ({"realtime": {"truncation_post_instructions_tokens": 100}},
         "realtime.truncation_post_instructions_tokens", "only applies with a retention ratio"),
        ({"turn": {"mode": "push_to_talk", "silence_duration_ms": 800},
          "listen": {"mode": "push_to_talk"}},
         "turn.silence_duration_ms", 'only applies with turn.mode = "server_vad"'),
        ({"turn": {"mode": "server_vad", "eagerness": "low"}}, "turn.eagerness",
         'only applies with turn.mode = "semantic_vad"'),
    ],
)  # fmt: skip
def test_keys_that_need_another_key_say_which(data: dict[str, Any], key: str, reason: str) -> None:
    message = problem(data)
    assert message.startswith(f"{SOURCE}: {key}: {reason}"), message


def test_describe_shows_how_turns_end_and_how_replies_come() -> None:
    config = with_overrides(
        Config(),
        realtime={"transcription_model": "gpt-4o-mini-transcribe", "prompt_id": "pmpt_x1"},
        turn={"mode": "semantic_vad", "eagerness": "low"},
    )
    line = next(ln for ln in describe(config).splitlines() if ln.startswith("session:"))
    assert "semantic_vad (eagerness low)" in line
    assert "transcription gpt-4o-mini-transcribe" in line and "prompt pmpt_x1" in line


# -- the settings and the update they send ---------------------------------------------


def test_the_defaults_are_sent_explicitly() -> None:
    body = update_for(Config(), (VOLUME,))
    assert body["audio"]["input"]["turn_detection"] == {
        "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
        "silence_duration_ms": 500, "create_response": True, "interrupt_response": True,
    }  # fmt: skip
    assert body["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    assert "transcription" not in body["audio"]["input"]  # off: the service default
    assert body["audio"]["output"]["speed"] == 1.0
    assert body["output_modalities"] == ["audio"]
    assert (body["max_output_tokens"], body["truncation"]) == ("inf", "auto")
    assert "prompt" not in body
    assert body["instructions"] == Config().realtime.instructions
    assert [tool["name"] for tool in body["tools"]] == ["volume"]


def test_every_session_key_reaches_the_update() -> None:
    config = with_overrides(
        Config(),
        realtime={
            "speed": 0.8, "output_modality": "text", "max_output_tokens": 256,
            "truncation": 0.5, "truncation_post_instructions_tokens": 4000,
            "prompt_id": "pmpt_abc", "prompt_version": "2",
            "prompt_variables": {"city": "Porto"}, "noise_reduction": "off",
            "transcription_model": "gpt-4o-mini-transcribe", "transcription_language": "pt",
        },
        turn={"threshold": 0.65, "prefix_padding_ms": 250, "silence_duration_ms": 700,
              "idle_timeout_ms": 12000},
    )  # fmt: skip
    body = update_for(config)
    audio_in = body["audio"]["input"]
    assert audio_in["noise_reduction"] is None  # "off" is sent as null: it turns it off
    assert audio_in["transcription"] == {"model": "gpt-4o-mini-transcribe", "language": "pt"}
    assert audio_in["turn_detection"]["threshold"] == 0.65
    assert audio_in["turn_detection"]["idle_timeout_ms"] == 12000
    assert body["audio"]["output"]["speed"] == 0.8
    assert body["output_modalities"] == ["text"]
    assert body["max_output_tokens"] == 256
    assert body["truncation"] == {"type": "retention_ratio", "retention_ratio": 0.5,
                                  "token_limits": {"post_instructions": 4000}}  # fmt: skip
    assert body["prompt"] == {"id": "pmpt_abc", "version": "2", "variables": {"city": "Porto"}}
    # The built-in instructions would override the prompt's own: they are left out.
    assert "instructions" not in body


def test_own_instructions_are_sent_with_a_prompt() -> None:
    config = with_overrides(
        Config(), realtime={"prompt_id": "pmpt_abc", "instructions": "Speak like a pirate."}
    )
    assert update_for(config)["instructions"] == "Speak like a pirate."


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        ({"mode": "semantic_vad", "eagerness": "high"},
         {"type": "semantic_vad", "eagerness": "high", "create_response": True,
          "interrupt_response": True}),
        ({"mode": "push_to_talk"}, None),
    ],
)  # fmt: skip
def test_turn_modes_become_turn_detection(turn: dict[str, Any], expected: Any) -> None:
    config = with_overrides(Config(), turn=turn, listen={"mode": LISTEN[turn["mode"]]})
    assert turn_detection(config.turn) == expected
    body = update_for(config)
    assert "turn_detection" in body["audio"]["input"]
    assert body["audio"]["input"]["turn_detection"] == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"speed": 2.0},
        {"speed": float("nan")},
        {"max_output_tokens": 0},
        {"max_output_tokens": "all"},
        {"truncation": "smart"},
        {"truncation": {"type": "retention_ratio", "retention_ratio": 1.5}},
        {"truncation": {"type": "retention_ratio", "retention_ratio": 0.5,
                        "token_limits": {"pre_instructions": 1}}},
        {"prompt": {"id": "prompt_1"}},
        {"prompt": {"id": "pmpt_1", "variables": {"a": 1}}},
        {"noise_reduction": "room"},
        {"transcription": {"model": ""}},
        {"transcription": {"model": "whisper-1", "language": 3}},
        {"turn_detection": {"type": "server_vad", "eagerness": "low"}},
        {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 1000}},
        {"turn_detection": {"type": "server_vad", "threshold": 2}},
        {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}},
        {"turn_detection": {"type": "semantic_vad", "create_response": "yes"}},
    ],
)  # fmt: skip
def test_settings_the_service_would_refuse_fail_at_once(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        SessionSettings(**kwargs)


# -- what the device streams for the service -------------------------------------------


def test_the_stream_tail_covers_what_the_service_waits_for() -> None:
    default = Config()  # 500 ms silence against an 800 ms hangover: nothing to add
    assert stream_tail_ms(default) == 0
    slow = with_overrides(default, turn={"silence_duration_ms": 1500})
    assert stream_tail_ms(slow) == 1500 + STREAM_MARGIN_MS - 800
    semantic = with_overrides(default, turn={"mode": "semantic_vad", "eagerness": "low"})
    assert stream_tail_ms(semantic) == SEMANTIC_MAX_WAIT_MS["low"] + STREAM_MARGIN_MS - 800
    talk = with_overrides(default, turn={"mode": "push_to_talk"}, listen={"mode": "push_to_talk"})
    assert stream_tail_ms(talk) == 0


def test_idle_listening_covers_the_reply_and_the_timeout() -> None:
    idle = turn_detection(with_overrides(Config(), turn={"idle_timeout_ms": 6000}).turn)
    assert idle_listen_ms(idle, 1500.4) == 1500 + 6000 + STREAM_MARGIN_MS
    assert idle_listen_ms(turn_detection(Config().turn), 1500) == 0
    assert idle_listen_ms(None, 1500) == 0


def test_an_idle_timeout_longer_than_the_follow_up_is_warned_about() -> None:
    config = with_overrides(Config(), turn={"idle_timeout_ms": 8000})
    [warning] = [w for w in config_warnings(config) if w.startswith("turn.idle_timeout_ms")]
    assert "listen.follow_up_s" in warning
    always = with_overrides(config, listen={"mode": "always"})
    assert not [w for w in config_warnings(always) if w.startswith("turn.")]
