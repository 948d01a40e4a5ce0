"""Tools the model may call: a registry that checks each call and runs it off the audio path.

The model names a tool and writes its arguments as a JSON string. The registry
answers every call with the JSON string to send back as the call's
``function_call_output``: the tool's result, or ``{"error": "..."}`` saying what
went wrong and where (unknown tool, arguments that are not JSON or break the
tool's schema, a tool that failed or took too long), so the model can tell the
user or try again instead of waiting forever. A tool may also add items to the
conversation after its output (``ToolResult``): a picture, for one, since a
``function_call_output`` carries text only.

Arguments are checked against each tool's JSON Schema with a small validator
for the subset the device's tools use: ``type`` (object, string, integer,
number, boolean), ``properties``, ``required``, ``enum``, ``minimum``,
``maximum``, ``additionalProperties`` (true or false) and ``description``. A
schema using anything else is refused when the tool is declared, so no check
is ever skipped silently.

Handlers run on the event loop inside the task that ``call`` becomes, so they
must be quick or asynchronous; a blocking handler is declared ``blocking`` and
runs in a worker thread. Either way the caller awaits ``call`` in its own task,
and the audio loop never waits on a tool.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any] | Any]
"""Takes the checked arguments; returns (or resolves to) a JSON-serialisable result."""

TIMED_OUT = "timed out"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what the service accepts as a function name
_TYPES = ("object", "string", "integer", "number", "boolean")
_KEYWORDS = frozenset({
    "type", "properties", "required", "enum", "minimum", "maximum",
    "additionalProperties", "description",
})  # fmt: skip
_MAX_SHOWN_CHARS = 40


class ToolArgumentError(ValueError):
    """Raised by a handler for arguments its schema cannot express a rule for.

    The message goes back to the model as the call's error, without a stack
    trace in the journal: the model asked for something impossible, nothing broke.
    """


# -- the schema subset ---------------------------------------------------------------


def check_schema(schema: Mapping[str, Any], where: str = "parameters") -> None:
    """Raise ValueError if ``schema`` uses more than the subset ``conform`` checks."""
    unknown = sorted(set(schema) - _KEYWORDS)
    if unknown:
        raise ValueError(f"{where}: unsupported JSON Schema keywords: {', '.join(unknown)}")
    kind = schema.get("type")
    if kind not in _TYPES:
        raise ValueError(f"{where}: type must be one of {', '.join(_TYPES)}, got {kind!r}")
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise ValueError(f"{where}: properties must be an object")
    if properties and kind != "object":
        raise ValueError(f"{where}: properties need type object")
    for name, sub in properties.items():
        if not isinstance(sub, Mapping):
            raise ValueError(f"{where}.{name}: must be a schema object")
        check_schema(sub, f"{where}.{name}")
    required = schema.get("required", [])
    if not isinstance(required, list) or any(name not in properties for name in required):
        raise ValueError(f"{where}: required must list declared properties")
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise ValueError(f"{where}: enum must be a non-empty array")
    if not isinstance(schema.get("additionalProperties", True), bool):
        raise ValueError(f"{where}: additionalProperties must be true or false")
    for bound in ("minimum", "maximum"):
        value = schema.get(bound, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: {bound} must be a number")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_SHOWN_CHARS else text[:_MAX_SHOWN_CHARS] + "…"


def _json_type(value: Any) -> str:
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
                       (str, "a string"), (list, "an array"), (dict, "an object")):  # fmt: skip
        if isinstance(value, kind):
            return name
    return "null"


def _typed(kind: str, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` is of JSON Schema type ``kind``, and the value as that type."""
    if isinstance(value, bool):
        return kind == "boolean", value
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            return True, int(value)  # JSON does not tell 30 from 30.0
        return isinstance(value, int), value
    if kind == "number":
        return isinstance(value, int | float), value
    expected = {"object": dict, "string": str, "boolean": bool}[kind]
    return isinstance(value, expected), value


def conform(schema: Mapping[str, Any], value: Any, where: str, problems: list[str]) -> Any:
    """Check ``value`` against ``schema``; append each problem found, naming where it is.

    Returns the value with integral numbers made ``int`` where an integer is expected.
    """
    kind = schema["type"]
    ok, value = _typed(kind, value)
    if not ok:
        article = "an" if kind[0] in "aeiou" else "a"
        problems.append(f"{where}: expected {article} {kind}, got {_json_type(value)}"
                        f" ({_show(value)})")  # fmt: skip
        return value
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_show(choice) for choice in schema["enum"])
        problems.append(f"{where}: {_show(value)} is not one of {allowed}")
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: {value} is above the maximum {schema['maximum']}")
    if kind == "object":
        return _conform_object(schema, value, where, problems)
    return value


def _conform_object(
    schema: Mapping[str, Any], value: dict[str, Any], where: str, problems: list[str]
) -> dict[str, Any]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            problems.append(f"{where}.{name}: is required")
    result: dict[str, Any] = {}
    for name, item in value.items():
        sub = properties.get(name)
        if sub is not None:
            result[name] = conform(sub, item, f"{where}.{name}", problems)
        elif schema.get("additionalProperties", True) is False:
            allowed = ", ".join(properties) or "none"
            problems.append(f"{where}.{name}: is not allowed; allowed: {allowed}")
        else:
            result[name] = item
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_arguments(schema: Mapping[str, Any], arguments_json: str) -> dict[str, Any]:
    """The call's arguments as checked values; raises ToolArgumentError saying what is wrong.

    An empty string counts as ``{}``: a tool without parameters may be called so.
    """
    text = arguments_json.strip() or "{}"
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ToolArgumentError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ToolArgumentError(f"arguments must be a JSON object, got {_json_type(value)}")
    problems: list[str] = []
    checked = conform(schema, value, "arguments", problems)
    if problems:
        raise ToolArgumentError("; ".join(problems))
    result: dict[str, Any] = checked
    return result


# -- tools and the registry ------------------------------------------------------------


@dataclass(frozen=True)
class ToolResult:
    """What a handler returns when its call also adds to the conversation.

    ``result`` becomes the call's output as any plain result does; ``items`` are
    conversation items (e.g. a user message holding a picture, which a
    ``function_call_output`` cannot carry) added right after that output.
    """

    result: Any
    items: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ToolOutput:
    """One call's ``function_call_output`` text and the items to add after it."""

    text: str
    items: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Tool:
    """One function the model may call, as the service is told of it, and its handler."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    handler: Handler = field(repr=False)
    blocking: bool = False  # True: a synchronous handler that may block; runs in a thread

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"tool name {self.name!r} must be 1..64 of A-Z a-z 0-9 _ -")
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name}: parameters must have type object")
        check_schema(self.parameters, f"{self.name}.parameters")

    def definition(self) -> dict[str, Any]:
        """The GA function tool for ``session.tools``."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": json.loads(json.dumps(self.parameters)),  # a deep, plain copy
        }


def _error(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


class ToolRegistry:
    """The tools of one device; ``call`` turns one function call into its output."""

    def __init__(self, tools: Iterable[Tool], *, timeout_s: float) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools are named {tool.name}")
            self._tools[tool.name] = tool
        self.timeout_s = timeout_s

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def definitions(self) -> list[dict[str, Any]]:
        """Every tool as a GA function tool, for ``session.tools``."""
        return [tool.definition() for tool in self._tools.values()]

    async def call(self, name: str, arguments_json: str) -> str:
        """Run one call; always returns the ``function_call_output`` text, never raises
        (except the caller's own cancellation)."""
        return (await self.run(name, arguments_json)).text

    async def run(self, name: str, arguments_json: str) -> ToolOutput:
        """``call``, with the conversation items the tool adds (a ``ToolResult``'s)."""
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            log.warning("the model called an unknown tool %r", name)
            return ToolOutput(_error(f"unknown tool {name!r}; known tools: {known}"))
        timeout = asyncio.timeout(self.timeout_s)
        try:
            arguments = parse_arguments(tool.parameters, arguments_json)
            async with timeout:
                result = await self._run(tool, arguments)
        except ToolArgumentError as exc:
            log.info("tool %s refused its arguments: %s", name, exc)
            return ToolOutput(_error(str(exc)))
        except Exception as exc:
            if isinstance(exc, TimeoutError) and timeout.expired():
                log.warning("tool %s took longer than %g s", name, self.timeout_s)
                return ToolOutput(_error(TIMED_OUT))
            log.exception("tool %s failed", name)
            return ToolOutput(_error(f"{name} failed: {type(exc).__name__}: {exc}"))
        items: tuple[Mapping[str, Any], ...] = ()
        if isinstance(result, ToolResult):
            result, items = result.result, result.items
        try:
            output = json.dumps(result, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            log.error("tool %s returned a result that is not JSON: %s", name, exc)
            return ToolOutput(_error(f"{name} returned a result that is not JSON"))
        added = f" (+{len(items)} conversation item(s))" if items else ""
        log.info("tool %s(%s) -> %s%s", name, arguments_json, output, added)
        return ToolOutput(output, items)

    @staticmethod
    async def _run(tool: Tool, arguments: dict[str, Any]) -> Any:
        if tool.blocking:
            return await asyncio.to_thread(tool.handler, arguments)
        result = tool.handler(arguments)
        if inspect.isawaitable(result):
            result = await result
        return result
