"""The simulator's remote MCP servers: listing, approval, the call and the spoken result.

Driven on the sans-I/O core; every event it sends goes to the SDK oracle (the
contract conftest checks ``SENT_BY_SIMULATOR`` after each test), and every event
sent to it here is checked as a client event first.
"""

from __future__ import annotations

from typing import Any

import pytest

from device.realtime.sim_options import (
    DEFAULT_MCP_TOOLS,
    McpCallScript,
    McpOptions,
    SimulatorOptions,
)
from device.realtime.sim_session import SimulatorSession
from device.realtime.sim_voice import synthesize
from tests.contract.oracle import SENT_BY_SIMULATOR, client_problems

Event = dict[str, Any]
TOKEN = "mcp-tok_" + "S" * 32
URL = "https://mcp.example.com/mcp"


class Core:
    """The simulator's protocol core; what it sends is kept for the oracle."""

    def __init__(self, mcp: McpOptions) -> None:
        options = SimulatorOptions(voice_engine="tone", mcp=mcp)
        self.session = SimulatorSession(options, "gpt-realtime-1.5", now_s=1000.0)
        SENT_BY_SIMULATOR.extend(self.session.created())

    def send(self, event: Event) -> list[Event]:
        assert client_problems(event) == [], event
        events = self.session.handle(event)
        SENT_BY_SIMULATOR.extend(events)
        return events

    def tools(self, *tools: Event) -> list[Event]:
        return self.send({"type": "session.update",
                          "session": {"type": "realtime", "tools": list(tools)}})  # fmt: skip

    def respond(self) -> list[Event]:
        """``response.create``, streamed to its end."""
        events = self.send({"type": "response.create"})
        for response in self.session.take_started():
            pcm = synthesize(response.plan.text, "tone")
            self.session.attach_audio(response.plan.response_id, pcm)
            while self.session.is_streaming(response.plan.response_id):
                step = self.session.step(response.plan.response_id)
                SENT_BY_SIMULATOR.extend(step)
                events += step
        return events

    def answer(self, request_id: str, approve: bool, **more: Any) -> list[Event]:
        item = {"type": "mcp_approval_response", "id": f"ok_{request_id}"[:32],
                "approval_request_id": request_id, "approve": approve, **more}  # fmt: skip
        return self.send({"type": "conversation.item.create", "previous_item_id": request_id,
                          "item": item})  # fmt: skip


def mcp_tool(label: str = "home", **more: Any) -> Event:
    return {"type": "mcp", "server_label": label, "server_url": URL, **more}


def types(events: list[Event]) -> list[str]:
    return [e["type"] for e in events if not e["type"].endswith(".delta")]


def only(events: list[Event], kind: str) -> Event:
    found = [e for e in events if e["type"] == kind]
    assert len(found) == 1, types(events)
    return found[0]


def listed(events: list[Event]) -> dict[str, list[str]]:
    """Server label -> tool names, from each completed listing's conversation.item.done."""
    return {
        e["item"]["server_label"]: [t["name"] for t in e["item"]["tools"]]
        for e in events
        if e["type"] == "conversation.item.done" and e["item"]["type"] == "mcp_list_tools"
    }


def spoken(events: list[Event]) -> str:
    transcript: str = only(events, "response.output_audio_transcript.done")["transcript"]
    return transcript


SEARCH = McpCallScript("home", "search", '{"query": "weather in Lyon"}', output="Sunny, 24 C")


# -- listing ---------------------------------------------------------------------------------


def test_each_server_lists_its_tools_after_session_updated() -> None:
    core = Core(McpOptions(tools={"docs": ("read", "write", "delete")}))
    events = core.tools(mcp_tool(), mcp_tool("docs", allowed_tools=["read", "delete"]),
                        mcp_tool("wiki", allowed_tools={"tool_names": ["fetch"]}))  # fmt: skip
    assert types(events) == ["session.updated"] + [
        "conversation.item.added", "mcp_list_tools.in_progress", "mcp_list_tools.completed",
        "conversation.item.done",
    ] * 3  # fmt: skip
    assert listed(events) == {"home": list(DEFAULT_MCP_TOOLS), "docs": ["read", "delete"],
                              "wiki": ["fetch"]}  # fmt: skip
    added = [e for e in events if e["type"] == "conversation.item.added"]
    progress = [e for e in events if e["type"].startswith("mcp_list_tools.")]
    assert [e["item_id"] for e in progress] == [a["item"]["id"] for a in added for _ in (1, 2)]


def test_an_unreachable_server_fails_its_listing() -> None:
    core = Core(McpOptions(unreachable=("home",)))
    events = core.tools(mcp_tool())
    assert types(events) == ["session.updated", "conversation.item.added",
                             "mcp_list_tools.in_progress", "mcp_list_tools.failed"]  # fmt: skip
    assert listed(events) == {}


@pytest.mark.parametrize(("given", "lists"), [(None, False), ("wrong", False), (TOKEN, True)])
def test_a_server_that_needs_a_token_checks_the_one_the_tool_carries(
    given: str | None, lists: bool
) -> None:
    core = Core(McpOptions(tokens={"home": TOKEN}))
    tool = mcp_tool() if given is None else mcp_tool(authorization=given)
    events = core.tools(tool)
    assert ("mcp_list_tools.completed" in types(events)) is lists
    assert ("mcp_list_tools.failed" in types(events)) is not lists
    echoed = only(events, "session.updated")["session"]["tools"]
    assert echoed == [mcp_tool()]  # checked, then kept out of what is stored and echoed
    assert TOKEN not in str(events)


# -- approval and the call ---------------------------------------------------------------------


def test_an_approved_call_runs_in_the_next_response_and_is_spoken_about() -> None:
    core = Core(McpOptions(tokens={"home": TOKEN}, call=SEARCH))
    core.tools(mcp_tool(authorization=TOKEN, require_approval="always"))
    asked = core.respond()
    assert types(asked) == ["response.created", "rate_limits.updated",
                            "response.output_item.added", "conversation.item.added",
                            "response.output_item.done", "conversation.item.done",
                            "response.done"]  # fmt: skip
    request = only(asked, "conversation.item.done")["item"]
    assert request == {"id": request["id"], "type": "mcp_approval_request",
                       "server_label": "home", "name": "search",
                       "arguments": '{"query": "weather in Lyon"}'}  # fmt: skip
    assert only(asked, "response.done")["response"]["output"] == [request]
    answered = core.answer(request["id"], True)
    assert types(answered) == ["conversation.item.added", "conversation.item.done"]
    assert answered[1]["previous_item_id"] == request["id"]

    events = core.respond()
    assert types(events)[:11] == [
        "response.created", "rate_limits.updated",
        "response.output_item.added", "conversation.item.added",
        "response.mcp_call_arguments.done", "response.mcp_call.in_progress",
        "response.mcp_call.completed", "response.output_item.done", "conversation.item.done",
        "response.output_item.added", "conversation.item.added",
    ]  # fmt: skip
    arguments = "".join(e["delta"] for e in events
                        if e["type"] == "response.mcp_call_arguments.delta")  # fmt: skip
    assert arguments == SEARCH.arguments
    call = only(events, "response.done")["response"]["output"][0]
    assert call == {"id": call["id"], "type": "mcp_call", "server_label": "home",
                    "name": "search", "arguments": SEARCH.arguments,
                    "approval_request_id": request["id"], "output": "Sunny, 24 C"}  # fmt: skip
    message = only(events, "response.done")["response"]["output"][1]
    assert message["type"] == "message"
    assert only(events, "response.content_part.added")["output_index"] == 1
    assert "Sunny, 24 C" in spoken(events)
    later = core.respond()
    assert "Sunny" not in spoken(later) and "mcp_call" not in str(later)  # the call happens once


def test_a_refused_call_fails_and_the_reply_says_why() -> None:
    core = Core(McpOptions(call=SEARCH))
    core.tools(mcp_tool())  # require_approval unset: the service asks
    request = only(core.respond(), "conversation.item.done")["item"]
    core.answer(request["id"], False, reason="Not on this speaker.")
    events = core.respond()
    assert "response.mcp_call.failed" in types(events)
    call = only(events, "response.done")["response"]["output"][0]
    message = "The call was not approved: Not on this speaker."
    assert call["error"] == {"type": "tool_execution_error", "message": message}
    assert "output" not in call
    assert "Not on this speaker" in spoken(events)


@pytest.mark.parametrize("policy", ["never", {"never": {"tool_names": ["search"]}}])
def test_without_approval_the_first_response_calls_at_once(policy: Any) -> None:
    core = Core(McpOptions(call=SEARCH))
    core.tools(mcp_tool(require_approval=policy))
    events = core.respond()
    assert "mcp_approval_request" not in str(events)
    call = only(events, "response.done")["response"]["output"][0]
    assert call["output"] == "Sunny, 24 C" and "approval_request_id" not in call
    assert "Sunny, 24 C" in spoken(events)


def test_a_failing_tool_fails_its_call() -> None:
    core = Core(McpOptions(call=McpCallScript("home", "search", error="Index is rebuilding")))
    core.tools(mcp_tool(require_approval="never"))
    events = core.respond()
    assert "response.mcp_call.failed" in types(events)
    assert "Index is rebuilding" in spoken(events)


@pytest.mark.parametrize(
    ("tool", "mcp"),
    [
        (mcp_tool(require_approval="never", allowed_tools=["fetch"]), McpOptions(call=SEARCH)),
        (mcp_tool(require_approval="never"), McpOptions(call=SEARCH, unreachable=("home",))),
        (mcp_tool("docs", require_approval="never"), McpOptions(call=SEARCH)),
    ],
)
def test_a_tool_the_model_cannot_see_is_not_called(tool: Event, mcp: McpOptions) -> None:
    core = Core(mcp)
    core.tools(tool)
    events = core.respond()
    assert [o["type"] for o in only(events, "response.done")["response"]["output"]] == ["message"]


def test_until_the_answer_comes_responses_are_ordinary_and_ask_once() -> None:
    core = Core(McpOptions(call=SEARCH))
    core.tools(mcp_tool())
    core.respond()
    events = core.respond()
    assert [o["type"] for o in only(events, "response.done")["response"]["output"]] == ["message"]


def test_answers_that_do_not_fit_a_waiting_request_are_errors() -> None:
    core = Core(McpOptions(call=SEARCH))
    core.tools(mcp_tool())
    request = only(core.respond(), "conversation.item.done")["item"]
    error = only(core.answer("mcpr_unknown", True), "error")["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "item.approval_request_id")
    answer = {"type": "mcp_approval_response", "id": "ok_1",
              "approval_request_id": request["id"], "approve": True}  # fmt: skip
    stray = core.send({"type": "conversation.item.create", "previous_item_id": "item_nope",
                       "item": answer})  # fmt: skip
    assert only(stray, "error")["error"]["code"] == "item_not_found"
    assert types(core.answer(request["id"], True)) == ["conversation.item.added",
                                                       "conversation.item.done"]  # fmt: skip
    again = only(core.answer(request["id"], False), "error")["error"]
    assert again["code"] == "invalid_value"
