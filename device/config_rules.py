"""The rules that check one config value each: a raw TOML value in, a typed value out.

A rule raises ``_Invalid`` with a reason that says what is wrong and what is allowed;
``device.config`` adds the file and the key. A value that looks like an API key is
never echoed back into a reason. The names keep their leading underscore: they serve
``device.config`` and nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_LOOKS_LIKE_KEY = re.compile(r"\b(sk-|ek_)[A-Za-z0-9_-]{8,}")

_Rule = Callable[[Any], Any]
"""Takes a raw TOML value and returns the typed value, or raises _Invalid."""


class _Invalid(ValueError):
    """A value breaks its key's rule; the message is the reason."""


def _type_name(value: object) -> str:
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"),
                       (str, "a string"), (list, "an array"), (Mapping, "a table")):  # fmt: skip
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def _show(value: object) -> str:
    """Render a value for an error message: short, TOML-like, never a key."""
    if isinstance(value, str):
        if _LOOKS_LIKE_KEY.search(value):
            return "(a value that looks like an API key, not shown)"
        return json.dumps(value if len(value) <= 40 else value[:40] + "…", ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _expected(what: str, value: object) -> _Invalid:
    return _Invalid(f"expected {what}, got {_type_name(value)} ({_show(value)})")


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _expected("a string", value)
    return value


def _integer(value: Any) -> int:
    # bool is a subclass of int in Python but a different type in TOML.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _expected("an integer", value)
    return value


def _choice(kind: _Rule, noun: str, allowed: tuple[Any, ...]) -> _Rule:
    def rule(value: Any) -> Any:
        typed = kind(value)
        if typed not in allowed:
            listed = ", ".join(map(str, allowed))
            raise _Invalid(f"{_show(typed)} is not a {noun}; allowed: {listed}")
        return typed

    return rule


def _int_range(low: int, high: int, step: int = 1, *, minus_one: str = "") -> _Rule:
    """Integers in low..high on a grid of ``step``; ``minus_one`` describes an extra -1."""
    allowed = f"{low}..{high}" + (f" in steps of {step}" if step > 1 else "")
    allowed = f"-1 ({minus_one}) or {allowed}" if minus_one else allowed

    def rule(value: Any) -> int:
        number = _integer(value)
        if minus_one and number == -1:
            return number
        if not low <= number <= high:
            raise _Invalid(f"{number} is out of range; allowed: {allowed}")
        if number % step:
            raise _Invalid(f"{number} is not a multiple of {step}; allowed: {allowed}")
        return number

    return rule


def _float_range(low: float, high: float) -> _Rule:
    def rule(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _expected("a number", value)
        if not low <= value <= high:  # also false for nan and inf
            raise _Invalid(f"{_show(value)} is out of range; allowed: {low:g}..{high:g}")
        return float(value)

    return rule


def _text(max_chars: int, pattern: str = "", allowed: str = "") -> _Rule:
    """A string up to ``max_chars``; with ``pattern``, a name made of what it allows."""
    compiled = re.compile(pattern) if pattern else None

    def rule(value: Any) -> str:
        text = _string(value)
        if len(text) > max_chars:
            raise _Invalid(f"has {len(text)} characters; allowed: at most {max_chars}")
        if compiled and not compiled.fullmatch(text):
            raise _Invalid(f"{_show(text)} is not a valid name; allowed: {allowed}")
        return text

    return rule


def _abs_path(*, optional: bool) -> _Rule:
    def rule(value: Any) -> Path | None:
        text = str(value) if isinstance(value, Path) else _string(value)  # Path: from overrides
        if optional and text == "":
            return None
        if "\0" in text or not text.startswith("/"):
            if _LOOKS_LIKE_KEY.search(text):
                raise _Invalid("holds what looks like an API key; put it in a file, name the file")
            allowed = '"" for none, or an absolute path' if optional else "an absolute path"
            raise _Invalid(f"{_show(text)} is not an absolute path; allowed: {allowed}")
        return Path(text)

    return rule


def _ws_url(value: Any) -> str:
    text = _string(value)
    if not text or any(char.isspace() for char in text):
        raise _Invalid(f"{_show(text)} is not a URL; allowed: wss://host/path or ws://host/path")
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # a malformed [IPv6] host
        raise _Invalid(f"is not a valid URL ({exc})") from None
    if "@" in parts.netloc:  # checked first: a password must not be echoed below
        raise _Invalid("must not hold a user name or password; the key comes from a credential")
    try:
        _ = parts.port  # raises ValueError for a port that is not a number in 0..65535
    except ValueError as exc:
        raise _Invalid(f"{_show(text)} is not a valid URL ({exc})") from None
    if parts.scheme not in ("ws", "wss"):
        raise _Invalid(f"{_show(text)} must start with wss:// (or ws:// for a local simulator)")
    if not parts.hostname:
        raise _Invalid(f"{_show(text)} has no host")
    if "?" in text or "#" in text:
        raise _Invalid(f"{_show(text)} must not have a query string or fragment; "
                       "the model is added from realtime.model")  # fmt: skip
    return text


def _key(default: Any, rule: _Rule) -> Any:
    """Declare a key: its default and the rule that checks a value from TOML."""
    return field(default=default, metadata={"rule": rule})
