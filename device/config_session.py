"""Config for what the Realtime session is asked to do: the rules of the session keys
in [realtime], and the [turn] section (how the device and the service take turns).

Kept apart from ``device.config`` so that file stays a readable list of sections.
Every rule takes a raw TOML value (or its own typed value, from ``with_overrides``)
and returns the typed value or raises ``_Invalid``; the checks across keys return
(key, reason) so ``device.config`` can name the file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from device.config_rules import (
    _choice,
    _expected,
    _float_range,
    _integer,
    _Invalid,
    _key,
    _Rule,
    _show,
    _string,
)
from device.frozen import FrozenTable

OUTPUT_MODALITIES = ("audio", "text")
NOISE_REDUCTIONS = ("off", "near_field", "far_field")
TURN_MODES = ("server_vad", "semantic_vad", "push_to_talk")
EAGERNESS = ("auto", "low", "medium", "high")
TRUNCATIONS = ("auto", "disabled")
MAX_OUTPUT_TOKENS = 4096
IDLE_TIMEOUT_MS = (5000, 30000)  # the service's range for server_vad idle_timeout_ms
MAX_PROMPT_VARIABLES = 64
MAX_PROMPT_VALUE_CHARS = 4096
_PROMPT_ID = re.compile(r"pmpt_[A-Za-z0-9]{1,100}")
_PROMPT_VERSION = re.compile(r"[A-Za-z0-9._-]{1,32}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_TRANSCRIPTION_MODEL = re.compile(r"[A-Za-z0-9._-]{1,64}")
_LANGUAGE = re.compile(r"[a-z]{2,3}")


class StringTable(FrozenTable[str]):
    """An immutable, hashable name -> text table, so a frozen config can hold it."""


def _speed(value: Any) -> float:
    return float(_float_range(0.25, 1.5)(value))


def _max_output_tokens(value: Any) -> int | str:
    """An integer 1..4096, or "inf" for the service's own limit."""
    allowed = f'allowed: 1..{MAX_OUTPUT_TOKENS} or "inf"'
    if value == "inf":
        return "inf"
    if isinstance(value, str):
        raise _Invalid(f"{_show(value)} is not allowed; {allowed}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _expected(f'an integer 1..{MAX_OUTPUT_TOKENS} or "inf"', value)
    if not 1 <= value <= MAX_OUTPUT_TOKENS:
        raise _Invalid(f"{value} is out of range; {allowed}")
    return value


def _truncation(value: Any) -> str | float:
    """Either "auto", "disabled", or a retention ratio 0..1 (a number)."""
    if isinstance(value, str):
        if value not in TRUNCATIONS:
            raise _Invalid(f'{_show(value)} is not allowed; allowed: "auto", "disabled" or a '
                           "retention ratio 0..1 such as 0.8")  # fmt: skip
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _expected('"auto", "disabled" or a number 0..1', value)
    if not 0 <= value <= 1:
        raise _Invalid(f"{_show(value)} is out of range; allowed: a retention ratio 0..1")
    return float(value)


def _non_negative_int(limit: int) -> _Rule:
    def rule(value: Any) -> int:
        number = _integer(value)
        if not 0 <= number <= limit:
            raise _Invalid(f"{number} is out of range; allowed: 0 (none) or 1..{limit}")
        return number

    return rule


def _pattern(pattern: re.Pattern[str], allowed: str) -> _Rule:
    """A string that is "" (none) or matches ``pattern``."""

    def rule(value: Any) -> str:
        text = _string(value)
        if text and not pattern.fullmatch(text):
            raise _Invalid(f'{_show(text)} is not allowed; allowed: "" for none, or {allowed}')
        return text

    return rule


def _prompt_variables(value: Any) -> StringTable:
    """A table of variable name -> text, substituted into the reusable prompt."""
    if not isinstance(value, Mapping):
        raise _expected('a table such as { city = "Lisbon" }', value)
    if len(value) > MAX_PROMPT_VARIABLES:
        raise _Invalid(f"has {len(value)} variables; allowed: at most {MAX_PROMPT_VARIABLES}")
    entries: dict[str, str] = {}
    for raw_name, text in value.items():
        name = str(raw_name)
        if not _VARIABLE_NAME.fullmatch(name):
            raise _Invalid("is not a variable name; allowed: letters, digits and _, "
                           "not starting with a digit", f".{_show(name)}")  # fmt: skip
        if not isinstance(text, str):
            raise _Invalid(str(_expected("a string", text)), f".{name}")
        if len(text) > MAX_PROMPT_VALUE_CHARS:
            raise _Invalid(f"has {len(text)} characters; allowed: at most "
                           f"{MAX_PROMPT_VALUE_CHARS}", f".{name}")  # fmt: skip
        entries[name] = text
    return StringTable(entries)


def _idle_timeout_ms(value: Any) -> int:
    low, high = IDLE_TIMEOUT_MS
    number = _integer(value)
    if number != 0 and not low <= number <= high:
        raise _Invalid(f"{number} is out of range; allowed: 0 (off) or {low}..{high}")
    return number


def _ms(low: int, high: int) -> _Rule:
    def rule(value: Any) -> int:
        number = _integer(value)
        if not low <= number <= high:
            raise _Invalid(f"{number} is out of range; allowed: {low}..{high}")
        return number

    return rule


# The [realtime] session keys, declared in RealtimeConfig with these rules.
SPEED = _speed
OUTPUT_MODALITY = _choice(_string, "reply modality", OUTPUT_MODALITIES)
MAX_TOKENS = _max_output_tokens
TRUNCATION = _truncation
TRUNCATION_TOKENS = _non_negative_int(1_000_000)
PROMPT_ID = _pattern(_PROMPT_ID, 'a prompt id such as "pmpt_123abc"')
PROMPT_VERSION = _pattern(_PROMPT_VERSION, 'a version such as "3" (letters, digits, . _ -)')
PROMPT_VARIABLES = _prompt_variables
NOISE_REDUCTION = _choice(_string, "noise reduction", NOISE_REDUCTIONS)
TRANSCRIPTION_MODEL = _pattern(
    _TRANSCRIPTION_MODEL, 'a transcription model such as "gpt-4o-mini-transcribe"'
)
TRANSCRIPTION_LANGUAGE = _pattern(_LANGUAGE, 'an ISO-639-1 language code such as "en"')


def realtime_problem(realtime: Any) -> tuple[str, str] | None:
    """Keys of [realtime] that only mean something together with another one."""
    if realtime.truncation_post_instructions_tokens and not isinstance(realtime.truncation, float):
        return ("truncation_post_instructions_tokens",
                "only applies with a retention ratio; set truncation to a number 0..1 "
                "such as 0.8, or this key to 0")  # fmt: skip
    if not realtime.prompt_id and (realtime.prompt_version or realtime.prompt_variables):
        key = "prompt_version" if realtime.prompt_version else "prompt_variables"
        return key, 'needs a prompt; set realtime.prompt_id (such as "pmpt_123abc")'
    if realtime.transcription_language and not realtime.transcription_model:
        return ("transcription_language",
                'needs transcription on; set realtime.transcription_model (such as '
                '"gpt-4o-mini-transcribe")')  # fmt: skip
    return None


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """[turn]: how the device and the service decide that the user finished speaking."""

    mode: str = _key("server_vad", _choice(_string, "turn mode", TURN_MODES))
    """"server_vad": the service ends the turn after a silence; "semantic_vad": after
    what sounds like the end of a sentence; "push_to_talk": the talk button does."""
    threshold: float = _key(0.5, _float_range(0.0, 1.0))
    """server_vad: how loud speech must be, 0..1; higher ignores more room noise."""
    prefix_padding_ms: int = _key(300, _ms(0, 2000))
    """server_vad: audio kept from before the detected start of speech."""
    silence_duration_ms: int = _key(500, _ms(100, 5000))
    """server_vad: silence that ends the turn; longer lets people pause for thought."""
    idle_timeout_ms: int = _key(0, _idle_timeout_ms)
    """server_vad: 0 is off; else after a reply and this much silence the assistant
    speaks again (asks whether anyone is still there)."""
    eagerness: str = _key("auto", _choice(_string, "level of eagerness", EAGERNESS))
    """semantic_vad: how soon to answer; "low" lets people finish, "high" answers fast."""


def turn_problem(turn: TurnConfig) -> tuple[str, str] | None:
    """Keys of [turn] set away from their default for a mode that ignores them."""
    defaults = TurnConfig()
    owners = {"eagerness": ("semantic_vad",)}
    for name in ("threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"):
        owners[name] = ("server_vad",)
    for name, modes in owners.items():
        if turn.mode not in modes and getattr(turn, name) != getattr(defaults, name):
            return name, (f"only applies with turn.mode = \"{modes[0]}\" (the mode is "
                          f"\"{turn.mode}\"); remove it or change the mode")  # fmt: skip
    return None


TURN_KEYS = tuple(f.name for f in fields(TurnConfig))


def describe_session(realtime: Any, turn: TurnConfig) -> str:
    """One line for ``edgevoice config check``: how turns end and how the reply comes."""
    if turn.mode == "server_vad":
        idle = f", idle {turn.idle_timeout_ms} ms" if turn.idle_timeout_ms else ""
        how = f"server_vad (silence {turn.silence_duration_ms} ms{idle})"
    elif turn.mode == "semantic_vad":
        how = f"semantic_vad (eagerness {turn.eagerness})"
    else:
        how = "push_to_talk"
    extras = [f"{realtime.output_modality} replies", f"speed {realtime.speed:g}"]
    extras.append(f"noise reduction {realtime.noise_reduction}")
    if realtime.transcription_model:
        extras.append(f"transcription {realtime.transcription_model}")
    if realtime.prompt_id:
        extras.append(f"prompt {realtime.prompt_id}")
    return f"{how}, {', '.join(extras)}"


def turn_warnings(turn: TurnConfig, listen: Any) -> list[str]:
    """Turn settings that work only as far as [listen] lets the microphone stream."""
    if turn.mode == "server_vad" and turn.idle_timeout_ms and listen.mode == "wake_word":
        follow_up_ms = round(listen.follow_up_s * 1000)
        if follow_up_ms < turn.idle_timeout_ms:
            return [
                f"turn.idle_timeout_ms is {turn.idle_timeout_ms} ms but listen.follow_up_s "
                f"keeps the microphone open only {follow_up_ms} ms after a reply: the service "
                "cannot hear that long a silence; raise listen.follow_up_s above the reply "
                'length plus the timeout, or set listen.mode = "always"'
            ]
    return []
