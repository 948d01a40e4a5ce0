"""The tool registry: every call gets an output, arguments are checked, tools never hang."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from device.tools import (
    TIMED_OUT,
    Tool,
    ToolArgumentError,
    ToolRegistry,
    check_schema,
    conform,
    parse_arguments,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["get", "set"]},
        "percent": {"type": "integer", "minimum": 0, "maximum": 100},
        "level": {"type": "number", "minimum": 0, "maximum": 1},
        "on": {"type": "boolean"},
        "inner": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": False,
        },
    },
    "required": ["action"],
    "additionalProperties": False,
}


def problems_of(schema: dict[str, Any], value: Any) -> list[str]:
    problems: list[str] = []
    conform(schema, value, "arguments", problems)
    return problems


def echo_tool(
    name: str = "echo", handler: Callable[[dict[str, Any]], Any] | None = None, **kwargs: Any
) -> Tool:
    return Tool(name, "Says back what it was given.", SCHEMA, handler or (lambda a: a), **kwargs)


def call(registry: ToolRegistry, name: str, arguments: str) -> Any:
    return json.loads(asyncio.run(registry.call(name, arguments)))


# -- the schema subset ------------------------------------------------------------------


def test_valid_arguments_pass_unchanged() -> None:
    value = {"action": "set", "percent": 30, "level": 0.5, "on": True, "inner": {"name": "x"}}
    assert problems_of(SCHEMA, value) == []
    assert parse_arguments(SCHEMA, json.dumps(value)) == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({}, "arguments.action: is required"),
        ({"action": "jump"}, 'arguments.action: "jump" is not one of "get", "set"'),
        ({"action": 1}, "arguments.action: expected a string, got an integer (1)"),
        ({"action": "set", "percent": 101}, "arguments.percent: 101 is above the maximum 100"),
        ({"action": "set", "percent": -1}, "arguments.percent: -1 is below the minimum 0"),
        (
            {"action": "set", "percent": "30"},
            'arguments.percent: expected an integer, got a string ("30")',
        ),
        (
            {"action": "set", "percent": 30.5},
            "arguments.percent: expected an integer, got a number (30.5)",
        ),
        (
            {"action": "set", "percent": True},
            "arguments.percent: expected an integer, got a boolean (true)",
        ),
        ({"action": "set", "level": 1.5}, "arguments.level: 1.5 is above the maximum 1"),
        ({"action": "set", "level": None}, "arguments.level: expected a number, got null (null)"),
        ({"action": "set", "on": "yes"}, 'arguments.on: expected a boolean, got a string ("yes")'),
        (
            {"action": "set", "extra": 1},
            "arguments.extra: is not allowed; allowed: action, percent, level, on, inner",
        ),
        ({"action": "set", "inner": {}}, "arguments.inner.name: is required"),
        (
            {"action": "set", "inner": {"name": "x", "more": 1}},
            "arguments.inner.more: is not allowed; allowed: name",
        ),
        ({"action": "set", "inner": []}, "arguments.inner: expected an object, got an array ([])"),
    ],
)
def test_each_problem_says_what_and_where(value: dict[str, Any], problem: str) -> None:
    assert problems_of(SCHEMA, value) == [problem]


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(SCHEMA, {"percent": 500, "on": 1})
    assert problems == [
        "arguments.action: is required",
        "arguments.percent: 500 is above the maximum 100",
        "arguments.on: expected a boolean, got an integer (1)",
    ]
    with pytest.raises(ToolArgumentError, match="; "):
        parse_arguments(SCHEMA, '{"percent": 500, "on": 1}')


def test_an_integral_number_counts_as_an_integer_and_becomes_one() -> None:
    checked = parse_arguments(SCHEMA, '{"action": "set", "percent": 30.0}')
    assert checked["percent"] == 30 and isinstance(checked["percent"], int)


def test_additional_properties_are_kept_unless_forbidden() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert parse_arguments(schema, '{"a": "x", "b": 2}') == {"a": "x", "b": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "arguments are not valid JSON: Expecting property name"),
        ('{"action": NaN}', "arguments are not valid JSON: NaN is not a JSON number"),
        ("[1, 2]", "arguments must be a JSON object, got an array"),
        ('"set"', "arguments must be a JSON object, got a string"),
        ("null", "arguments must be a JSON object, got null"),
    ],
)
def test_arguments_must_be_a_json_object(text: str, message: str) -> None:
    with pytest.raises(ToolArgumentError) as caught:
        parse_arguments(SCHEMA, text)
    assert str(caught.value).startswith(message)


def test_empty_arguments_mean_an_empty_object() -> None:
    assert parse_arguments({"type": "object", "properties": {}}, "  ") == {}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "pattern": "x"}, "unsupported JSON Schema keywords: pattern"),
        ({"type": "array"}, "type must be one of"),
        (
            {"type": "object", "properties": {"a": {"type": "string", "format": "date"}}},
            "p.a: unsupported JSON Schema keywords: format",
        ),
        ({"type": "object", "required": ["a"]}, "required must list declared properties"),
        ({"type": "string", "enum": []}, "enum must be a non-empty array"),
        ({"type": "object", "additionalProperties": {}}, "additionalProperties must be"),
        ({"type": "integer", "minimum": "0"}, "minimum must be a number"),
        ({"type": "string", "properties": {"a": {"type": "string"}}}, "properties need type"),
    ],
)
def test_a_schema_outside_the_subset_is_refused(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_schema(schema, "p")


# -- tools --------------------------------------------------------------------------------


def test_definition_is_the_ga_function_tool_shape() -> None:
    tool = echo_tool()
    definition = tool.definition()
    assert definition == {
        "type": "function",
        "name": "echo",
        "description": "Says back what it was given.",
        "parameters": SCHEMA,
    }
    definition["parameters"]["properties"].clear()
    assert SCHEMA["properties"], "the definition is a copy"


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "dot.ted"])
def test_tool_names_follow_the_service_rule(name: str) -> None:
    with pytest.raises(ValueError, match="tool name"):
        echo_tool(name)


def test_parameters_must_be_an_object_schema() -> None:
    with pytest.raises(ValueError, match="type object"):
        Tool("t", "d", {"type": "string"}, lambda a: a)


def test_registry_refuses_duplicates_and_bad_timeouts() -> None:
    with pytest.raises(ValueError, match="two tools"):
        ToolRegistry([echo_tool(), echo_tool()], timeout_s=1)
    for timeout_s in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout_s"):
            ToolRegistry([], timeout_s=timeout_s)


def test_registry_lists_its_tools() -> None:
    registry = ToolRegistry([echo_tool("a"), echo_tool("b")], timeout_s=1)
    assert registry.names == ("a", "b") and len(registry) == 2 and "a" in registry
    assert [d["name"] for d in registry.definitions()] == ["a", "b"]


# -- calls --------------------------------------------------------------------------------


def test_a_call_returns_the_result_as_json() -> None:
    registry = ToolRegistry([echo_tool()], timeout_s=1)
    assert call(registry, "echo", '{"action": "get"}') == {"action": "get"}


def test_an_async_handler_is_awaited() -> None:
    async def handler(arguments: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"got": arguments["action"]}

    registry = ToolRegistry([echo_tool(handler=handler)], timeout_s=1)
    assert call(registry, "echo", '{"action": "set"}') == {"got": "set"}


def test_a_blocking_handler_runs_off_the_event_loop() -> None:
    loop_thread: list[int] = []

    def handler(arguments: dict[str, Any]) -> int:
        return threading.get_ident()

    async def main() -> str:
        loop_thread.append(threading.get_ident())
        return await registry.call("echo", '{"action": "get"}')

    registry = ToolRegistry([echo_tool(handler=handler, blocking=True)], timeout_s=1)
    assert json.loads(asyncio.run(main())) != loop_thread[0]


def test_unknown_tool_is_an_error_output() -> None:
    registry = ToolRegistry([echo_tool()], timeout_s=1)
    assert call(registry, "launch", "{}") == {"error": "unknown tool 'launch'; known tools: echo"}
    assert call(ToolRegistry([], timeout_s=1), "x", "{}") == {
        "error": "unknown tool 'x'; known tools: none"
    }


def test_bad_arguments_are_an_error_output_and_the_handler_never_runs() -> None:
    ran: list[dict[str, Any]] = []
    registry = ToolRegistry([echo_tool(handler=ran.append)], timeout_s=1)
    assert call(registry, "echo", '{"action": "set", "percent": 300}') == {
        "error": "arguments.percent: 300 is above the maximum 100"
    }
    assert "not valid JSON" in call(registry, "echo", "{action")["error"]
    assert ran == []


def test_a_handler_refusing_its_arguments_is_an_error_output(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(arguments: dict[str, Any]) -> None:
        raise ToolArgumentError("arguments.action: not now")

    registry = ToolRegistry([echo_tool(handler=handler)], timeout_s=1)
    with caplog.at_level(logging.INFO, logger="device.tools"):
        assert call(registry, "echo", '{"action": "get"}') == {"error": "arguments.action: not now"}
    assert all(record.exc_info is None for record in caplog.records)


def test_a_failing_handler_is_an_error_output_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(arguments: dict[str, Any]) -> None:
        raise OSError("mixer is gone")

    registry = ToolRegistry([echo_tool(handler=handler)], timeout_s=1)
    with caplog.at_level(logging.ERROR, logger="device.tools"):
        assert call(registry, "echo", '{"action": "get"}') == {
            "error": "echo failed: OSError: mixer is gone"
        }
    assert any(record.exc_info for record in caplog.records)


def test_a_handler_raising_timeout_itself_is_a_failure_not_our_timeout() -> None:
    def handler(arguments: dict[str, Any]) -> None:
        raise TimeoutError("the bus did not answer")

    registry = ToolRegistry([echo_tool(handler=handler)], timeout_s=1)
    assert call(registry, "echo", '{"action": "get"}')["error"].startswith("echo failed")


def test_a_slow_tool_times_out() -> None:
    async def handler(arguments: dict[str, Any]) -> None:
        await asyncio.Event().wait()  # never set

    registry = ToolRegistry([echo_tool(handler=handler)], timeout_s=0.01)
    assert call(registry, "echo", '{"action": "get"}') == {"error": TIMED_OUT}


def test_a_result_that_is_not_json_is_an_error_output() -> None:
    registry = ToolRegistry(
        [echo_tool("obj", handler=lambda a: object()), echo_tool("nan", handler=lambda a: 1e999)],
        timeout_s=1,
    )
    assert call(registry, "obj", '{"action": "get"}') == {
        "error": "obj returned a result that is not JSON"
    }
    assert call(registry, "nan", '{"action": "get"}') == {
        "error": "nan returned a result that is not JSON"
    }


def test_the_caller_can_cancel_a_call() -> None:
    async def handler(arguments: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.create_task(registry.call("echo", '{"action": "get"}'))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    registry = ToolRegistry([echo_tool(handler=handler)], timeout_s=10)
    asyncio.run(main())
