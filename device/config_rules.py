"""The rules that check one config value each: a raw TOML value in, a typed value out.

A rule raises ``_Invalid`` with a reason that says what is wrong and what is allowed;
``device.config`` adds the file and the key. A value that looks like an API key is
never echoed back into a reason. The names keep their leading underscore: they serve
``device.config`` and nothing else.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from device.cost import DEFAULT_PRICES, PRICE_KEYS, Prices, PriceTable

_LOOKS_LIKE_KEY = re.compile(r"\b(sk-|ek_)[A-Za-z0-9_-]{8,}")

_Rule = Callable[[Any], Any]
"""Takes a raw TOML value and returns the typed value, or raises _Invalid."""


class _Invalid(ValueError):
    """A value breaks its key's rule; the message is the reason.

    ``where`` continues the key's name into a table value (``."gpt-realtime".text_in_per_mtok``).
    """

    def __init__(self, reason: str, where: str = "") -> None:
        super().__init__(reason)
        self.where = where


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
    if _LOOKS_LIKE_KEY.search(text):  # a key inside an array or a table
        return "(a value holding what looks like an API key, not shown)"
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


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _expected("true or false", value)
    return value


def _choice(kind: _Rule, noun: str, allowed: tuple[Any, ...]) -> _Rule:
    def rule(value: Any) -> Any:
        typed = kind(value)
        if typed not in allowed:
            listed = ", ".join(map(str, allowed))
            raise _Invalid(f"{_show(typed)} is not a {noun}; allowed: {listed}")
        return typed

    return rule


def _no_api_key(rule: _Rule) -> _Rule:
    """``rule`` for a name that is logged and sent (a model): a pasted API key is
    refused before anything could echo it."""

    def checked(value: Any) -> Any:
        if isinstance(value, str) and _LOOKS_LIKE_KEY.search(value):
            raise _Invalid(
                "holds what looks like an API key; the key belongs in the systemd "
                "credential or realtime.api_key_file, never in the config"
            )
        return rule(value)

    return checked


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


def _name_list(noun: str, allowed: tuple[str, ...]) -> _Rule:
    """An array of distinct names from ``allowed``; ``[]`` is allowed (none of them)."""
    listed = ", ".join(allowed)

    def rule(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):  # a tuple: from with_overrides
            raise _expected(f"an array of {noun} names", value)
        names: list[str] = []
        for index, name in enumerate(value):
            if not isinstance(name, str):
                raise _Invalid(str(_expected(f"a {noun} name", name)), f"[{index}]")
            if name not in allowed:
                raise _Invalid(f"{_show(name)} is not a {noun}; allowed: {listed}", f"[{index}]")
            if name in names:
                raise _Invalid(f"{_show(name)} is listed twice", f"[{index}]")
            names.append(name)
        return tuple(names)

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


def _non_negative(value: Any) -> float:
    """A finite number >= 0 (an amount of money); an integer becomes a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _expected("a number", value)
    if not (math.isfinite(value) and value >= 0):
        raise _Invalid(f"{_show(value)} is out of range; allowed: a finite number >= 0")
    return float(value)


def _currency(value: Any) -> str:
    text = _string(value)
    if not re.fullmatch(r"[A-Z]{3}", text):
        raise _Invalid(f"{_show(text)} is not a currency code; allowed: three capital letters, "
                       "such as USD or EUR")  # fmt: skip
    return text


MODEL_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


def _toml_key(key: str) -> str:
    """``key`` as written in TOML: bare when it can be, else quoted."""
    if _LOOKS_LIKE_KEY.search(key):
        return "(a name that looks like an API key)"
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _model_prices(model: str, table: Any) -> Prices:
    """One model's [cost.prices."model"] table over its built-in prices, if any."""
    if _LOOKS_LIKE_KEY.search(model):
        raise _Invalid("names a model with what looks like an API key (not shown)")
    where = f".{json.dumps(model, ensure_ascii=False)}"
    if not MODEL_NAME.fullmatch(model):
        raise _Invalid("is not a model name; allowed: 1..128 letters, digits, . _ -", where)
    if not isinstance(table, Mapping):
        raise _Invalid(str(_expected(f"a table [cost.prices{where}]", table)), where)
    values: dict[str, float] = {}
    for raw_key, raw_value in table.items():
        key = str(raw_key)
        if key not in PRICE_KEYS:
            close = difflib.get_close_matches(key, PRICE_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(PRICE_KEYS)}"
            raise _Invalid(f"unknown key; {hint}", f"{where}.{_toml_key(key)}")
        try:
            values[key] = _non_negative(raw_value)
        except _Invalid as problem:
            raise _Invalid(str(problem), f"{where}.{key}") from None
    built_in = DEFAULT_PRICES.get(model)
    if built_in is not None:
        return replace(built_in, **values)
    missing = [key for key in PRICE_KEYS if key not in values]
    if missing:
        raise _Invalid(f"has no built-in prices, so it needs all eight; missing: "
                       f"{', '.join(missing)}", where)  # fmt: skip
    return Prices(**values)


def _price_table(value: Any) -> PriceTable:
    """[cost.prices]: per-model tables that override or add to the built-in prices."""
    if isinstance(value, PriceTable):  # from with_overrides
        value = value.as_dict()
    if not isinstance(value, Mapping):
        raise _expected('a table of models, such as [cost.prices."gpt-realtime"]', value)
    table = dict(DEFAULT_PRICES)
    for raw_model, prices in value.items():
        table[str(raw_model)] = _model_prices(str(raw_model), prices)
    return PriceTable(table)


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


def is_loopback(host: str) -> bool:
    """A host name of this machine (where a local simulator or proxy listens)."""
    return host in ("localhost", "::1") or host.startswith("127.")


def _secret_url(text: str, *, allowed: str, secret_from: str, crossing: str) -> str:
    """``text``, a URL a secret is sent to: https://, or http:// to this machine.

    ``secret_from`` says where the secret belongs instead of the URL's user part;
    ``crossing`` what would cross the network unencrypted over http://.
    """
    if not text or any(char.isspace() for char in text):
        raise _Invalid(f"{_show(text)} is not a URL; allowed: {allowed}")
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError for a port that is not a number in 0..65535
    except ValueError as exc:
        raise _Invalid(f"is not a valid URL ({exc})") from None
    if "@" in parts.netloc:  # checked first: a password must not be echoed below
        raise _Invalid(f"must not hold a user name or password; {secret_from}")
    host = parts.hostname or ""
    if parts.scheme == "http" and not is_loopback(host):
        raise _Invalid(f"{_show(text)} uses http:// to another machine: {crossing} would "
                       "cross the network unencrypted; use https://")  # fmt: skip
    if parts.scheme not in ("http", "https") or not host:
        raise _Invalid(f"{_show(text)} is not a URL; allowed: {allowed}")
    if parts.fragment:
        raise _Invalid(f"{_show(text)} must not have a fragment")
    return text


def _key(default: Any, rule: _Rule) -> Any:
    """Declare a key: its default and the rule that checks a value from TOML."""
    return field(default=default, metadata={"rule": rule})
