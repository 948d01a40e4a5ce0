"""Whatever an installer writes into the config file, the loader answers with a
``Config`` or with one ``ConfigError`` line naming the file and the key at fault,
and never shows a value that looks like an API key.

Documents are random TOML written by ``tomli_w``: known sections and keys with their
default or a random value, unknown sections and keys, tables where values belong and
values where tables belong, and API-key-like strings as values, key names and
section names. A config that loads survives the round trip through ``_as_dict``.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from device.config import Config, _as_dict, config_from_dict, load_config
from device.errors import ConfigError

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)

DEFAULTS: dict[str, dict[str, Any]] = _as_dict(load_config(None))
KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
LEAK = re.compile(r"\b(sk-|ek_)[A-Za-z0-9_-]{8,}")  # what the loader treats as a key

api_keys = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["sk-", "sk-proj-", "ek_"]),
    st.text(KEY_CHARS, min_size=16, max_size=48),
)
plausible = st.sampled_from([
    "", "fake", "real", "info", "debug", "auto", "none", "ours", "webrtc", "marin",
    "/var/lib/edgevoice", "relative/path", "wss://api.openai.com/v1/realtime",
    "ws://127.0.0.1:9/v1/realtime", "wss://user:pw@host/v1/realtime", "gpt-realtime",
])  # fmt: skip
scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.integers(min_value=-2, max_value=200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | plausible
    | api_keys
    | st.dates()
)
names = st.text(max_size=12) | api_keys | st.sampled_from(sorted(DEFAULTS))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A config document: mostly known keys, some with their default, some not."""
    doc: dict[str, Any] = {}
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        section = draw(st.sampled_from(sorted(DEFAULTS)) | names)
        if draw(st.integers(0, 9)) == 0:
            doc[section] = draw(scalars)  # a value where a table belongs
            continue
        table = doc.setdefault(section, {})
        if not isinstance(table, dict):
            continue
        known = DEFAULTS.get(section, {})
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            key = draw(st.sampled_from(sorted(known)) | names) if known else draw(names)
            keep_default = key in known and draw(st.integers(0, 9)) < 6
            table[key] = known[key] if keep_default else draw(values)
    return doc


def as_written(name: str) -> str:
    """A section or key name as a message shows it: bare, quoted, or withheld."""
    if LEAK.search(name):
        return "(a name that looks like an API key)"
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name, ensure_ascii=False)


def secrets_in(value: Any) -> list[str]:
    """Every API-key-like string anywhere in a document: values, keys, sections."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [*secrets_in(k), *secrets_in(v)]]
    if isinstance(value, list):
        return [s for item in value for s in secrets_in(item)]
    return [value] if isinstance(value, str) and LEAK.search(value) else []


def load_text(text: str | bytes) -> tuple[Path, Config | ConfigError]:
    """Write ``text`` to a file and load it: the Config, or the ConfigError raised."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "edgevoice.toml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        try:
            return path, load_config(path)
        except ConfigError as error:  # anything else fails the test with its traceback
            return path, error


def check_message(path: Path, error: ConfigError, secrets: list[str]) -> None:
    message = str(error)
    assert message.startswith(f"{path}: "), message  # the file
    assert "\n" not in message  # one journal line
    assert error.reason and error.reason in message  # what is wrong
    assert not LEAK.search(message), message
    for secret in secrets:
        assert secret not in message


@SETTINGS
@given(documents())
def test_a_document_loads_or_names_the_file_and_key(doc: dict[str, Any]) -> None:
    path, outcome = load_text(tomli_w.dumps(doc))
    if isinstance(outcome, ConfigError):
        check_message(path, outcome, secrets_in(doc))
        # Well-formed TOML: the fault is always one key's (or one section's), and the
        # key named is where it is: under a section the document has, as TOML writes it.
        sections = [as_written(name) for name in doc]
        assert any(outcome.key.startswith((s + ".", s + "[")) or outcome.key == s
                   for s in sections), (outcome.key, sections)  # fmt: skip
        return
    assert outcome.source == path
    for section, table in doc.items():
        for key, value in table.items():  # a loaded document's keys are all known
            assert key in DEFAULTS[section]
            if not isinstance(value, float) or math.isfinite(value):
                loaded = _as_dict(outcome)[section][key]
                assert loaded == value or isinstance(value, (int, float, list)), (key, value)


@SETTINGS
@given(documents())
def test_a_loaded_config_survives_the_round_trip(doc: dict[str, Any]) -> None:
    _, outcome = load_text(tomli_w.dumps(doc))
    if isinstance(outcome, Config):
        plain = _as_dict(outcome)
        again = config_from_dict(plain, "round trip")
        assert again == replace(outcome, source=None)
        assert _as_dict(again) == plain


@SETTINGS
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_any_file_content_loads_or_names_the_file(text: str | bytes) -> None:
    path, outcome = load_text(text)
    if isinstance(outcome, ConfigError):
        check_message(path, outcome, [])


@SETTINGS
@given(st.sampled_from(sorted(DEFAULTS)), api_keys, st.data())
def test_an_api_key_pasted_anywhere_is_never_shown(
    section: str, key_text: str, data: st.DataObject
) -> None:
    """The likeliest accident: the key pasted as a value, as a key or as a section."""
    known = sorted(DEFAULTS[section])
    where = data.draw(st.integers(0, 3))
    if where == 0:
        doc: dict[str, Any] = {section: {data.draw(st.sampled_from(known)): key_text}}
    elif where == 1:
        doc = {section: {data.draw(st.sampled_from(known)): [key_text]}}
    elif where == 2:
        doc = {section: {key_text: 1}}
    else:
        doc = {key_text: {}}
    path, outcome = load_text(tomli_w.dumps(doc))
    if isinstance(outcome, ConfigError):
        check_message(path, outcome, [key_text])
