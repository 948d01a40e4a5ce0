"""Remote MCP servers on the speaker's side: tokens, tool definitions, the approval
policy, and the answers and log lines for one session's MCP traffic.

Server events are scripted (each checked by the SDK oracle) and fed through the real
sans-I/O session and conversation; what the session queues is checked the same way.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from device.audio.playback import PlaybackBuffer
from device.config import Config, load_config, with_overrides
from device.conversation import Conversation, ReplyPlayer
from device.errors import CredentialError
from device.mcp import APPROVAL_ID_PREFIX, MAX_TOKEN_BYTES, McpServers, load_mcp
from device.realtime.client import encode
from device.realtime.parse import parse_server_event
from device.realtime.session import MAX_ID_CHARS, RealtimeSession, SessionSettings
from device.state import Event as StateEvent
from device.trace import Trace, read_trace
from tests.contract.oracle import client_problems, server_problems

Event = dict[str, Any]
TOKEN = "mcp-tok_" + "T" * 40
SOURCE = Path("/etc/edgevoice/edgevoice.toml")
HOME: dict[str, Any] = {"label": "home", "url": "https://mcp.example.com/mcp"}


def config(*tables: dict[str, Any]) -> Config:
    return replace(with_overrides(load_config(None), mcp={"servers": list(tables)}), source=SOURCE)


def token_file(tmp_path: Path, text: str | bytes = TOKEN, mode: int = 0o600) -> Path:
    path = tmp_path / "home.token"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def with_token(path: Path | str, **more: Any) -> Config:
    return config({**HOME, "authorization_file": str(path), **more})


def load_error(cfg: Config, env: dict[str, str] | None = None) -> str:
    with pytest.raises(CredentialError) as caught:
        load_mcp(cfg, env or {})
    return str(caught.value)


# -- tokens ------------------------------------------------------------------------------


def test_a_token_file_is_read_once_into_a_secret(tmp_path: Path) -> None:
    servers = load_mcp(with_token(token_file(tmp_path, f"\ufeff{TOKEN}\n")), {})
    assert servers.tokens["home"].reveal() == TOKEN
    assert servers.warnings == ()


@pytest.mark.parametrize(
    "form", ["$CREDENTIALS_DIRECTORY/mcp-home", "${CREDENTIALS_DIRECTORY}/mcp-home"]
)
def test_a_systemd_credential_is_read_from_the_credentials_directory(
    tmp_path: Path, form: str
) -> None:
    (tmp_path / "mcp-home").write_text(TOKEN, encoding="utf-8")
    servers = load_mcp(with_token(form), {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert servers.tokens["home"].reveal() == TOKEN


def test_without_a_credentials_directory_the_error_says_how_to_load_one() -> None:
    text = load_error(with_token("$CREDENTIALS_DIRECTORY/mcp-home"))
    assert text.startswith(f"{SOURCE}: mcp.servers[0].authorization_file: $CREDENTIALS_DIRECTORY")
    assert "LoadCredential=mcp-home:" in text


def test_a_credential_the_unit_does_not_load_is_named(tmp_path: Path) -> None:
    text = load_error(with_token("$CREDENTIALS_DIRECTORY/mcp-home"),
                      {"CREDENTIALS_DIRECTORY": str(tmp_path)})  # fmt: skip
    assert text == (f"{SOURCE}: mcp.servers[0].authorization_file: the unit loads no "
                    "credential mcp-home (LoadCredential=mcp-home:...)")  # fmt: skip


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "is empty; write the server's token into it"),
        ("  \n", "is empty"),
        (f"Bearer {TOKEN}", 'holds "Bearer <token>"; write the token alone'),
        (f"{TOKEN}\n{TOKEN}", "holds more than one word or line"),
        (f"{TOKEN}\x07", "holds characters a token cannot have"),
        (b"\xff\xfe" + TOKEN.encode(), "is not UTF-8 text"),
        ("x" * (MAX_TOKEN_BYTES + 1), f"is larger than {MAX_TOKEN_BYTES} bytes"),
    ],
)
def test_a_bad_token_file_is_refused_without_showing_it(
    tmp_path: Path, content: str | bytes, reason: str
) -> None:
    path = token_file(tmp_path, content)
    text = load_error(with_token(path))
    assert text.startswith(f"{SOURCE}: mcp.servers[0].authorization_file: {path} ")
    assert reason in text
    assert TOKEN not in text


def test_a_missing_token_file_says_what_to_do(tmp_path: Path) -> None:
    text = load_error(with_token(tmp_path / "nope.token"))
    assert text == (f"{SOURCE}: mcp.servers[0].authorization_file: {tmp_path / 'nope.token'} "
                    "does not exist; write the server's token into it (chmod 600), or fix the "
                    "path")  # fmt: skip


def test_a_directory_is_not_a_token_file(tmp_path: Path) -> None:
    assert "is a directory, not a file holding a token" in load_error(with_token(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a file whatever its mode")
def test_an_unreadable_token_file_names_the_permission(tmp_path: Path) -> None:
    path = token_file(tmp_path, mode=0o000)
    assert "cannot be read (permission denied)" in load_error(with_token(path))


def test_a_world_readable_token_file_is_a_warning(tmp_path: Path) -> None:
    path = token_file(tmp_path, mode=0o644)
    servers = load_mcp(with_token(path), {})
    assert servers.warnings == (
        f"mcp.servers[0].authorization_file: {path} is readable by every user; chmod 600 it, "
        "or install the token as a systemd credential",
    )


def test_the_second_server_is_named_in_its_error(tmp_path: Path) -> None:
    cfg = config(HOME, {"label": "b", "url": "https://b.example.com",
                        "authorization_file": str(tmp_path / "b.token")})  # fmt: skip
    assert "mcp.servers[1].authorization_file" in load_error(cfg)


# -- tool definitions --------------------------------------------------------------------


def update_for(servers: McpServers) -> Event:
    """The session.update as it goes on the wire (and as the service reads it)."""
    session = RealtimeSession(SessionSettings(tools=servers.tools()))
    session.configure()
    (update,) = session.data_to_send()
    wire: Event = json.loads(encode(update))
    assert client_problems(wire) == []
    return wire


def test_tools_are_ga_mcp_tools_with_the_token_only_on_the_wire(tmp_path: Path) -> None:
    cfg = with_token(token_file(tmp_path), allowed_tools=["search", "fetch"],
                     approve_tools=["search"], description="Search the house notes.")  # fmt: skip
    servers = load_mcp(cfg, {})
    (tool,) = update_for(servers)["session"]["tools"]
    assert tool == {
        "type": "mcp",
        "server_label": "home",
        "server_url": "https://mcp.example.com/mcp",
        "require_approval": "always",
        "allowed_tools": ["search", "fetch"],
        "server_description": "Search the house notes.",
        "authorization": TOKEN,
    }
    settings = SessionSettings(tools=servers.tools())
    for shown in (repr(servers), repr(settings), str(servers.tools()), repr(cfg)):
        assert TOKEN not in shown


def test_a_server_without_a_token_sends_none() -> None:
    (tool,) = update_for(load_mcp(config({**HOME, "require_approval": "never"}), {}))["session"][
        "tools"
    ]
    assert tool == {
        "type": "mcp",
        "server_label": "home",
        "server_url": "https://mcp.example.com/mcp",
        "require_approval": "never",
    }


def test_the_trace_shows_the_token_as_stars(tmp_path: Path) -> None:
    servers = load_mcp(with_token(token_file(tmp_path)), {})
    session = RealtimeSession(SessionSettings(tools=servers.tools()))
    session.configure()
    trace = Trace(tmp_path / "trace.jsonl")
    (update,) = session.data_to_send()
    trace.record("sent", update)
    echoed = {"type": "session.updated", "event_id": "event_1",
              "session": {"type": "realtime", "tools": [json.loads(encode(update))["session"]
                                                        ["tools"][0]]}}  # fmt: skip
    trace.record_frame("recv", json.dumps(echoed))
    trace.close()
    text = (tmp_path / "trace.jsonl").read_text(encoding="utf-8")
    assert TOKEN not in text
    sent, received = read_trace(tmp_path / "trace.jsonl")
    assert sent["event"]["session"]["tools"][0]["authorization"] == "***"
    assert received["event"]["session"]["tools"][0]["authorization"] == "***"
    assert update["session"]["tools"][0]["authorization"].reveal() == TOKEN  # still sendable


def test_an_echoed_token_does_not_live_on_in_the_parsed_event() -> None:
    tool = {"type": "mcp", "server_label": "home", "authorization": TOKEN}
    session = {"type": "realtime", "tools": [tool]}
    frame = json.dumps({"type": "session.updated", "event_id": "event_1", "session": session})
    event = parse_server_event(frame)
    assert TOKEN not in repr(event) and TOKEN not in repr(event.raw)
    assert event.raw["session"]["tools"][0]["authorization"] == "***"


# -- the approval policy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "tool", "approve", "why"),
    [
        ({"approve_tools": ["search"]}, "search", True, "listed in approve_tools"),
        (
            {"approve_tools": ["search"], "deny_tools": ["fetch"]},
            "fetch",
            False,
            "listed in deny_tools",
        ),
        ({"approve_tools": ["search"]}, "fetch", False, "not in approve_tools"),
        ({}, "search", False, "not in approve_tools, and nobody is at hand to approve it"),
        ({"require_approval": "never"}, "search", True, 'require_approval is "never"'),
    ],
)
def test_the_policy_answers_each_request(
    server: dict[str, Any], tool: str, approve: bool, why: str
) -> None:
    decision = load_mcp(config({**HOME, **server}), {}).decide("home", tool)
    assert decision.approve is approve
    assert decision.why.startswith(why)


def test_a_request_for_an_unknown_server_is_refused() -> None:
    decision = load_mcp(config({**HOME, "approve_tools": ["search"]}), {}).decide("work", "search")
    assert not decision.approve and "no such server" in decision.why


# -- one session's MCP traffic ------------------------------------------------------------


def approval_request(tool: str = "search", request_id: str = "mcpr_1") -> Event:
    return {"id": request_id, "type": "mcp_approval_request", "server_label": "home",
            "name": tool, "arguments": '{"q": "lights"}'}  # fmt: skip


class Script:
    """One session and conversation, with the configured servers, fed server events."""

    def __init__(self, **server: Any) -> None:
        self.servers = load_mcp(config({**HOME, "approve_tools": ["search"], **server}), {})
        self.session = RealtimeSession(SessionSettings(tools=self.servers.tools()))
        player = ReplyPlayer(PlaybackBuffer(24_000), 24_000)
        self.conversation = Conversation(self.session, player, mcp=self.servers)
        self.state_events: list[StateEvent] = []
        self._n = 0

    def server(self, kind: str, **fields: Any) -> None:
        self._n += 1
        event = {"type": kind, "event_id": f"event_{self._n}", **fields}
        assert server_problems(event) == [], event
        for parsed in self.session.receive(json.dumps(event)):
            self.state_events += self.conversation.handle(parsed)

    def sent(self) -> list[Event]:
        events = self.session.data_to_send()
        for event in events:
            assert client_problems(event) == [], event
        return events

    def created(self, response_id: str) -> None:
        response = {"id": response_id, "object": "realtime.response", "status": "in_progress",
                    "output": []}  # fmt: skip
        self.server("response.created", response=response)

    def response(self, response_id: str, item: Event, status: str = "completed") -> None:
        """A response whose one output item is ``item``, from created to done."""
        self.created(response_id)
        self.server("response.output_item.added", response_id=response_id, output_index=0,
                    item=item)  # fmt: skip
        self.server("conversation.item.added", previous_item_id=None, item=item)
        self.server("response.output_item.done", response_id=response_id, output_index=0,
                    item=item)  # fmt: skip
        self.server("conversation.item.done", previous_item_id=None, item=item)
        self.pending_sent = self.sent()
        details = None if status == "completed" else {"type": status, "reason": "turn_detected"}
        self.server("response.done", response={"id": response_id, "object": "realtime.response",
                                               "status": status, "status_details": details,
                                               "output": [item]})  # fmt: skip


def kinds(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def test_an_approved_request_is_answered_then_a_response_is_asked_for_once_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="device.mcp")
    s = Script()
    s.response("resp_1", approval_request("search"))
    (answer,) = s.pending_sent  # while the response runs: the answer, no response.create
    assert answer["type"] == "conversation.item.create"
    assert answer["previous_item_id"] == "mcpr_1"
    item = answer["item"]
    assert item["type"] == "mcp_approval_response" and item["approve"] is True
    assert item["approval_request_id"] == "mcpr_1" and "reason" not in item
    assert item["id"].startswith(APPROVAL_ID_PREFIX) and len(item["id"]) <= MAX_ID_CHARS
    assert kinds(s.sent()) == ["response.create"]
    assert StateEvent.REPLY_FINISHED not in s.state_events  # the answer is still owed
    assert s.conversation.mcp.answer_owed
    assert 'MCP server "home": approved a call of search (listed in approve_tools)' in caplog.text
    s.created("resp_2")
    assert not s.conversation.mcp.answer_owed


@pytest.mark.parametrize(
    ("server", "level", "why"),
    [
        ({"deny_tools": ["fetch"]}, logging.INFO, "listed in deny_tools"),
        ({}, logging.WARNING, "not in approve_tools, and nobody is at hand to approve it"),
    ],
)
def test_a_refused_request_says_why_to_the_model_and_the_journal(
    caplog: pytest.LogCaptureFixture, server: dict[str, Any], level: int, why: str
) -> None:
    caplog.set_level(logging.INFO, logger="device.mcp")
    s = Script(**server)
    s.response("resp_1", approval_request("fetch"))
    (answer,) = s.pending_sent
    assert answer["item"]["approve"] is False
    assert answer["item"]["reason"] == f"The owner of this speaker does not allow fetch ({why})."
    assert kinds(s.sent()) == ["response.create"]
    (record,) = [r for r in caplog.records if "refused" in r.getMessage()]
    assert record.levelno == level
    assert record.getMessage() == f'MCP server "home": refused a call of fetch ({why})'
    assert s.conversation.mcp.approvals == [("home", "fetch", s.servers.decide("home", "fetch"))]


def test_a_request_is_answered_once_whichever_events_show_it() -> None:
    s = Script()
    s.response("resp_1", approval_request())
    assert len(s.pending_sent) == 1
    assert kinds(s.sent()) == ["response.create"]  # response.done's copy is not answered again


def test_a_request_seen_only_in_response_done_is_answered_at_once() -> None:
    s = Script()
    s.created("resp_1")
    done = {"id": "resp_1", "object": "realtime.response", "status": "completed",
            "output": [approval_request()]}  # fmt: skip
    s.server("response.done", response=done)
    assert kinds(s.sent()) == ["conversation.item.create", "response.create"]


def test_a_request_in_a_response_the_user_cut_short_gets_no_response_of_its_own() -> None:
    s = Script()
    s.response("resp_1", approval_request(), status="cancelled")
    assert kinds(s.pending_sent) == ["conversation.item.create"]
    assert s.sent() == []
    assert not s.conversation.mcp.answer_owed


def test_a_refused_follow_up_is_not_retried_and_reaches_no_one_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = Script()
    s.response("resp_1", approval_request())
    (create,) = s.sent()
    s.server("error", error={"type": "invalid_request_error",
                             "code": "conversation_already_has_active_response",
                             "message": "Conversation already has an active response",
                             "param": None, "event_id": create["event_id"]})  # fmt: skip
    assert s.sent() == []
    assert not s.conversation.mcp.answer_owed
    assert "service error" not in caplog.text


def test_listings_and_calls_are_logged_with_server_tool_and_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="device.mcp")
    s = Script()
    listing = {"id": "mcpl_1", "type": "mcp_list_tools", "server_label": "home", "tools": []}
    s.server("conversation.item.added", previous_item_id=None, item=listing)
    s.server("mcp_list_tools.in_progress", item_id="mcpl_1")
    s.server("mcp_list_tools.completed", item_id="mcpl_1")
    tools = [{"name": n, "input_schema": {"type": "object"}} for n in ("search", "fetch")]
    s.server("conversation.item.done", previous_item_id=None, item={**listing, "tools": tools})
    failed = {**listing, "id": "mcpl_2", "server_label": "work"}
    s.server("conversation.item.added", previous_item_id=None, item=failed)
    s.server("mcp_list_tools.failed", item_id="mcpl_2")
    call = {"id": "mcp_1", "type": "mcp_call", "server_label": "home", "name": "fetch",
            "arguments": "{}"}  # fmt: skip
    s.server("response.mcp_call.failed", item_id="mcp_1", output_index=0)
    s.server("response.output_item.done", response_id="resp_1", output_index=0,
             item={**call, "error": {"type": "http_error", "code": 502,
                                     "message": "Bad gateway"}})  # fmt: skip
    ok = {**call, "id": "mcp_2", "name": "search", "output": "sunny"}
    s.server("response.mcp_call.completed", item_id="mcp_2", output_index=0)
    s.server("response.output_item.done", response_id="resp_1", output_index=0, item=ok)
    s.server("conversation.item.done", previous_item_id=None, item=ok)  # logged once
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert lines == [
        (logging.INFO, 'MCP server "home" offers 2 tools: search, fetch'),
        (logging.WARNING, 'MCP server "work": the service could not list its tools (unreachable, '
                          "or it refused the token); they cannot be used in this session"),
        (logging.WARNING, 'MCP server "home": the call of fetch failed (http_error: Bad gateway)'),
        (logging.INFO, 'MCP server "home": the call of search returned 5 characters'),
    ]  # fmt: skip
    assert s.sent() == [] and s.state_events == []


def test_without_servers_every_request_is_refused() -> None:
    session = RealtimeSession(SessionSettings())
    conversation = Conversation(session, ReplyPlayer(PlaybackBuffer(24_000), 24_000))
    event = {"type": "conversation.item.done", "event_id": "event_1", "previous_item_id": None,
             "item": approval_request()}  # fmt: skip
    for parsed in session.receive(json.dumps(event)):
        conversation.handle(parsed)
    answer, create = session.data_to_send()
    assert answer["item"]["approve"] is False and create["type"] == "response.create"


def test_a_request_seen_first_as_a_conversation_item_still_belongs_to_its_response() -> None:
    s = Script()
    s.created("resp_1")
    s.server("conversation.item.done", previous_item_id=None, item=approval_request())
    assert kinds(s.sent()) == ["conversation.item.create"]
    done = {"id": "resp_1", "object": "realtime.response", "status": "cancelled",
            "status_details": {"type": "cancelled", "reason": "turn_detected"},
            "output": [approval_request()]}  # fmt: skip
    s.server("response.done", response=done)
    assert s.sent() == []  # cut short by the user: no response of its own
