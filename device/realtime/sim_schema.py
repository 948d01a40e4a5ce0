"""Strict value checks for the simulator, in the words the service uses.

The real service rejects a whole client event when one key is unknown or one
value is out of range, and answers with an ``error`` event naming the parameter
(``Unknown parameter: 'session.temperature'.``). A client that still speaks the
beta shape therefore fails silently against the service; the simulator must fail
it just as loudly. The checks are small composable functions (a check takes the
value and its dotted path, returns the normalised value or raises ``SimError``)
so the GA shapes in ``sim_shapes`` read like the reference tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Check = Callable[[Any, str], Any]


class SimError(Exception):
    """A client mistake the simulator answers with an ``error`` event.

    Raised by checks and handlers; the session turns it into the event and keeps
    the socket open, as the service does for recoverable errors.
    """

    def __init__(
        self,
        code: str | None,
        message: str,
        param: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.error_type = error_type


def join(path: str, key: str) -> str:
    """Dotted parameter path as the service prints it (``session.audio.input``)."""
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    """JSON type name with an article, for ``Invalid type`` messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _type_error(path: str, expected: str, value: Any) -> SimError:
    return SimError(
        "invalid_type",
        f"Invalid type for '{path}': expected {expected}, but got {describe(value)} instead.",
        path,
    )


def string(max_len: int | None = None) -> Check:
    def check(value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise _type_error(path, "a string", value)
        if max_len is not None and len(value) > max_len:
            raise SimError(
                "string_above_max_length",
                f"Invalid '{path}': string too long. Expected a string with maximum length "
                f"{max_len}, but got a string with length {len(value)} instead.",
                path,
            )
        return value

    return check


def boolean() -> Check:
    def check(value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            raise _type_error(path, "a boolean", value)
        return value

    return check


def _bounded(value: float, path: str, kind: str, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise SimError(
            f"{kind}_below_min_value",
            f"Invalid '{path}': {kind} below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            path,
        )
    if high is not None and value > high:
        raise SimError(
            f"{kind}_above_max_value",
            f"Invalid '{path}': {kind} above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            path,
        )


def integer(low: int | None = None, high: int | None = None) -> Check:
    def check(value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(path, "an integer", value)
        _bounded(value, path, "integer", low, high)
        return value

    return check


def number(low: float | None = None, high: float | None = None) -> Check:
    def check(value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(path, "a decimal", value)
        _bounded(value, path, "decimal", low, high)
        return float(value)

    return check


def enum(*allowed: Any) -> Check:
    def check(value: Any, path: str) -> Any:
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            supported = ", ".join(repr(a) for a in allowed)
            raise SimError(
                "invalid_value",
                f"Invalid value: {value!r}. Supported values are: {supported}.",
                path,
            )
        return value

    return check


def anything() -> Check:
    """Free-form JSON such as a tool's JSON Schema or tracing metadata."""

    def check(value: Any, path: str) -> Any:
        return value

    return check


def nullable(inner: Check) -> Check:
    def check(value: Any, path: str) -> Any:
        return None if value is None else inner(value, path)

    return check


def array(inner: Check, min_items: int = 0, max_items: int | None = None) -> Check:
    def check(value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise _type_error(path, "an array", value)
        if len(value) < min_items or (max_items is not None and len(value) > max_items):
            bounds = f"at least {min_items}" if len(value) < min_items else f"at most {max_items}"
            raise SimError(
                "invalid_value",
                f"Invalid '{path}': expected an array with {bounds} items, "
                f"but got {len(value)} items instead.",
                path,
            )
        return [inner(item, f"{path}[{i}]") for i, item in enumerate(value)]

    return check


def str_map(max_items: int | None = None, max_value_len: int | None = None) -> Check:
    value_check = string(max_value_len)

    def check(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _type_error(path, "an object", value)
        if max_items is not None and len(value) > max_items:
            raise SimError(
                "invalid_value", f"Invalid '{path}': at most {max_items} pairs allowed.", path
            )
        return {str(k): value_check(v, join(path, str(k))) for k, v in value.items()}

    return check


def obj(fields: Mapping[str, Check], required: Sequence[str] = ()) -> Check:
    """An object with exactly these keys: the first unknown key rejects it whole."""

    def check(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _type_error(path, "an object", value)
        for key in value:
            if key not in fields:
                raise SimError(
                    "unknown_parameter", f"Unknown parameter: '{join(path, key)}'.", join(path, key)
                )
        for key in required:
            if key not in value:
                raise SimError(
                    "missing_required_parameter",
                    f"Missing required parameter: '{join(path, key)}'.",
                    join(path, key),
                )
        return {key: fields[key](item, join(path, key)) for key, item in value.items()}

    return check


def tagged(variants: Mapping[str, Check], tag: str = "type") -> Check:
    """A union told apart by its ``type`` (formats, turn detection, tools)."""
    tag_check = enum(*variants)

    def check(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _type_error(path, "an object", value)
        if tag not in value:
            raise SimError(
                "missing_required_parameter",
                f"Missing required parameter: '{join(path, tag)}'.",
                join(path, tag),
            )
        return variants[tag_check(value[tag], join(path, tag))](value, path)

    return check


def by_kind(
    expected: str,
    *,
    text: Check | None = None,
    number_: Check | None = None,
    mapping: Check | None = None,
    sequence: Check | None = None,
) -> Check:
    """Unions of differently typed JSON values (``"auto"`` or an object, ``"inf"`` or int)."""

    def check(value: Any, path: str) -> Any:
        if isinstance(value, str) and text is not None:
            return text(value, path)
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and number_ is not None:
            return number_(value, path)
        if isinstance(value, dict) and mapping is not None:
            return mapping(value, path)
        if isinstance(value, list) and sequence is not None:
            return sequence(value, path)
        raise _type_error(path, expected, value)

    return check
