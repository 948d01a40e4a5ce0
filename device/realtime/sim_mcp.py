"""Remote MCP tools in the simulator: listing, approval, the call, and the spoken result.

The service connects to the MCP servers a session names; the simulator pretends
to, from ``McpOptions``:

* A ``session.update`` with ``mcp`` tools lists each server's tools
  (``conversation.item.added`` of an ``mcp_list_tools`` item,
  ``mcp_list_tools.in_progress``, then ``.completed`` and ``conversation.item.done``
  with the tools, or ``.failed`` for a server that is ``unreachable`` or whose
  ``authorization`` is not the token ``tokens`` requires).
* With ``call`` set, the first response that may call that tool does. If the
  server's ``require_approval`` asks for it, that response ends with an
  ``mcp_approval_request`` item, and the call waits for the client's
  ``mcp_approval_response`` and the ``response.create`` after it (the service
  does not start that response by itself). The response that calls runs the
  ``mcp_call`` item (arguments, ``in_progress``, ``completed`` or ``failed`` when
  refused or failing) and then speaks about the result.

A tool's ``authorization`` is checked and then left out of the session the
simulator stores and echoes, so no token comes back in ``session.updated``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from device.realtime.sim_conversation import StoredItem
from device.realtime.sim_options import DEFAULT_MCP_TOOLS, McpCallScript, McpOptions
from device.realtime.sim_response import Event, ResponsePlan, SimResponse
from device.realtime.sim_schema import SimError

if TYPE_CHECKING:
    from device.realtime.sim_session import SimulatorSession

MCP_REPLY = "The {tool} tool on {server} said: {output}"
MCP_FAILED_REPLY = "I could not use {tool} on {server}: {error}"
ARGUMENT_CHUNK_CHARS = 16


def _tool_schema(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"The simulated {name} tool.",
        "input_schema": {"type": "object", "properties": {}},
    }


def _allowed(name: str, allowed: Any) -> bool:
    if isinstance(allowed, list):
        return name in allowed
    if isinstance(allowed, dict) and "tool_names" in allowed:
        return name in allowed["tool_names"]
    return True


def _needs_approval(name: str, policy: Any) -> bool:
    """``require_approval`` as the service reads it; unset means "always"."""
    if policy == "never":
        return False
    if isinstance(policy, dict):
        never = policy.get("never") or {}
        always = policy.get("always") or {}
        return name in always.get("tool_names", []) or name not in never.get("tool_names", [])
    return True


class SimApprovalRequest(SimResponse):
    """A response whose one output item asks the client to approve an MCP call; like a
    function call it is over as it starts."""

    def __init__(self, plan: ResponsePlan, session: SimulatorSession, script: McpCallScript):
        super().__init__(plan, session.new_id)
        self.script = script

    def item(self) -> dict[str, Any]:
        script = self.script
        return {"id": self.plan.item_id, "type": "mcp_approval_request",
                "server_label": script.server_label, "name": script.name,
                "arguments": script.arguments}  # fmt: skip

    def opening(self) -> list[Event]:
        events = self._head(reserved=len(self.script.arguments))
        self.status = "completed"
        return events + self._tail()


class SimMcpCall(SimResponse):
    """A response that calls an MCP tool (output 0), then speaks about it (output 1)."""

    def __init__(
        self,
        plan: ResponsePlan,
        session: SimulatorSession,
        call: dict[str, Any],
        before: str | None,
    ) -> None:
        super().__init__(plan, session.new_id)
        self.output_index = 1
        self.earlier_output = [call]
        self._session = session
        self._call = call
        self._before = before  # the item the call follows in the conversation

    def opening(self) -> list[Event]:
        """The call's events slot in between ``rate_limits.updated`` and the message's."""
        head = super().opening()
        cut = next(i for i, e in enumerate(head) if e["type"] == "response.output_item.added")
        return head[:cut] + self._call_events() + head[cut:]

    def _call_events(self) -> list[Event]:
        event, call = self._session.event, self._call
        ids = {"item_id": call["id"], "output_index": 0}
        response = {"response_id": self.plan.response_id, "output_index": 0}
        started = {k: v for k, v in call.items() if k not in ("output", "error")}
        started["arguments"] = ""
        before = self._before
        events = [event("response.output_item.added", **response, item=started)]
        events.append(event("conversation.item.added", previous_item_id=before, item=started))
        arguments = call["arguments"]
        for start in range(0, len(arguments), ARGUMENT_CHUNK_CHARS):
            delta = arguments[start : start + ARGUMENT_CHUNK_CHARS]
            events.append(event("response.mcp_call_arguments.delta", **response,
                                item_id=call["id"], delta=delta))  # fmt: skip
        events.append(event("response.mcp_call_arguments.done", **response, item_id=call["id"],
                            arguments=arguments))  # fmt: skip
        events.append(event("response.mcp_call.in_progress", **ids))
        outcome = "failed" if "error" in call else "completed"
        events.append(event(f"response.mcp_call.{outcome}", **ids))
        events.append(event("response.output_item.done", **response, item=call))
        events.append(event("conversation.item.done", previous_item_id=before, item=call))
        return events


class SimMcp:
    """One simulated session's MCP servers: what they list, what was asked and answered."""

    def __init__(
        self, session: SimulatorSession, create_item: Callable[[dict[str, Any]], list[Event]]
    ) -> None:
        self._session = session
        self._create_item = create_item  # every item that is not an approval answer
        self._options: McpOptions = session.options.mcp
        self.listed: dict[str, tuple[str, ...] | None] = {}  # label -> tools; None: failed
        self.request_id: str | None = None  # the approval request waiting for its answer
        self.answer: dict[str, Any] | None = None  # the client's mcp_approval_response
        self.called = False

    # -- listing ---------------------------------------------------------------------

    def configure(self, update: dict[str, Any]) -> list[Event]:
        """Check each MCP tool's token and list its tools; the update keeps no token.

        Returns the listing events, sent after ``session.updated``.
        """
        tools = update.get("tools")
        if not isinstance(tools, list):
            return []
        update["tools"] = [
            {k: v for k, v in tool.items() if k != "authorization"} for tool in tools
        ]
        self.listed = {}
        events: list[Event] = []
        for tool in tools:
            if tool.get("type") == "mcp":
                events += self._list(tool)
        return events

    def _list(self, tool: dict[str, Any]) -> list[Event]:
        session, label = self._session, tool["server_label"]
        required = self._options.tokens.get(label)
        reachable = label not in self._options.unreachable
        authorized = required is None or tool.get("authorization") == required
        names = [
            name
            for name in self._options.tools.get(label, DEFAULT_MCP_TOOLS)
            if _allowed(name, tool.get("allowed_tools"))
        ]
        item: dict[str, Any] = {"id": session.new_id("mcpl"), "type": "mcp_list_tools",
                                "server_label": label, "tools": []}  # fmt: skip
        stored = StoredItem(item)
        previous = session.conversation.insert(stored)
        events = [
            session.event("conversation.item.added", previous_item_id=previous, item=item),
            session.event("mcp_list_tools.in_progress", item_id=item["id"]),
        ]
        if not (reachable and authorized):
            self.listed[label] = None
            return [*events, session.event("mcp_list_tools.failed", item_id=item["id"])]
        self.listed[label] = tuple(names)
        stored.data = {**item, "tools": [_tool_schema(name) for name in names]}
        return [
            *events,
            session.event("mcp_list_tools.completed", item_id=item["id"]),
            session.event("conversation.item.done", previous_item_id=previous, item=stored.data),
        ]

    # -- responses -------------------------------------------------------------------

    def respond(
        self, plan: ResponsePlan, params: dict[str, Any]
    ) -> list[Event] | SimResponse | None:
        """What a starting response does about the scripted call, if it may make it:
        the events of an approval request (over at once), the response that calls
        (to stream), or None (an ordinary reply)."""
        script = self._options.call
        tool = self._callable(script, params)
        if script is None or tool is None or plan.conversation_id is None:
            return None
        conversation = self._session.conversation
        if _needs_approval(script.name, tool.get("require_approval")) and self.answer is None:
            if self.request_id is not None:
                return None  # still waiting for the answer
            request = SimApprovalRequest(plan, self._session, script)
            self.request_id = plan.item_id
            events = request.opening()
            conversation.insert(StoredItem(request.item()))
            return events
        self.called = True
        call = self._call_item(script)
        before = conversation.insert(StoredItem(call))
        if "error" in call:
            reply = MCP_FAILED_REPLY.format(tool=script.name, server=script.server_label,
                                            error=call["error"]["message"])  # fmt: skip
        else:
            reply = MCP_REPLY.format(tool=script.name, server=script.server_label,
                                     output=call["output"])  # fmt: skip
        return SimMcpCall(replace(plan, text=reply, previous_item_id=call["id"]), self._session,
                          call, before)  # fmt: skip

    def _callable(
        self, script: McpCallScript | None, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The session's tool for the scripted server, if its tool may be called now."""
        if script is None or self.called:
            return None
        session = self._session.session
        if params.get("tool_choice", session["tool_choice"]) == "none":
            return None
        listed = self.listed.get(script.server_label)
        if listed is None or script.name not in listed:
            return None
        tools = params.get("tools", session["tools"])
        return next((t for t in tools if t.get("type") == "mcp"
                     and t.get("server_label") == script.server_label), None)  # fmt: skip

    def _call_item(self, script: McpCallScript) -> dict[str, Any]:
        call: dict[str, Any] = {"id": self._session.new_id("mcp"), "type": "mcp_call",
                                "server_label": script.server_label, "name": script.name,
                                "arguments": script.arguments}  # fmt: skip
        answer = self.answer
        if answer is not None:
            call["approval_request_id"] = answer["approval_request_id"]
        if answer is not None and not answer["approve"]:
            why = answer.get("reason") or "no reason given"
            message = f"The call was not approved: {why}"
            call["error"] = {"type": "tool_execution_error", "message": message}
        elif script.error:
            call["error"] = {"type": "tool_execution_error", "message": script.error}
        else:
            call["output"] = script.output
        return call

    # -- the client's answer ---------------------------------------------------------

    def create_item(self, event: dict[str, Any]) -> list[Event]:
        """``conversation.item.create``: approval answers here, every other item as usual."""
        item = event["item"]
        if item.get("type") != "mcp_approval_response":
            return self._create_item(event)
        session, conversation = self._session, self._session.conversation
        request = item["approval_request_id"]
        if request != self.request_id or self.answer is not None:
            raise SimError("invalid_value", f"No approval request '{request}' is waiting for an "
                           "answer.", "item.approval_request_id")  # fmt: skip
        if conversation.find(item["id"]) is not None:
            raise SimError(
                "invalid_value", f"Item with id '{item['id']}' already exists.", "item.id"
            )
        previous = event.get("previous_item_id")
        if previous is not None and conversation.find(previous) is None:
            raise SimError("item_not_found", f"Item with item_id '{previous}' not found in the "
                           "conversation.", "previous_item_id")  # fmt: skip
        data = copy.deepcopy(item)
        before = conversation.insert(StoredItem(data), after=previous)
        self.answer = data
        return [
            session.event("conversation.item.added", previous_item_id=before, item=data),
            session.event("conversation.item.done", previous_item_id=before, item=data),
        ]
