"""Remote MCP servers end to end: the daemon on fake hardware, a spoken question, the
simulator's MCP server listing its tools and calling one, the speaker's policy
answering the approval request, and the spoken answer.

The server's token comes from a file (or a systemd credential directory); the
simulator lists the server's tools only when the session's tool carries exactly
that token, so a completed listing proves the token reached the session. It must
never reach the journal, the trace or a repr.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from device.app import Daemon
from device.cli import _reload
from device.config import load_config, with_overrides
from device.demo import shipped_question
from device.realtime.sim_options import McpCallScript, McpOptions
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from device.trace import Trace
from hw.factory import HardwareRequest, build_fake
from hw.fake import FakeDuplex
from tests.contract.oracle import client_problems, server_problems

Event = dict[str, Any]
TOKEN = "mcp-tok_" + "E" * 40
LIGHTS = McpCallScript("home", "lights_on", '{"room": "kitchen"}', output="kitchen lights on")
HOUSE_TOOLS = ("lights_on", "lights_off", "list_rooms")
SAFETY_TIMEOUT_S = 30.0  # bounds a hung test; nothing is asserted about time


@dataclass
class Run:
    daemon: Daemon
    sim: RealtimeSimulator
    trace_text: str
    log_text: str

    def received(self, kind: str) -> list[Event]:
        return [e for e in self.sim.received if e["type"] == kind]

    def sent(self, kind: str) -> list[Event]:
        return [e for e in self.sim.sent if e["type"] == kind]

    @property
    def said(self) -> list[str]:
        return [e["transcript"] for e in self.sent("response.output_audio_transcript.done")]


def run(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    server: dict[str, Any],
    *,
    token_on_file: str = TOKEN,
    authorization_file: str | None = None,
) -> Run:
    token_path = tmp_path / "mcp-home"
    token_path.write_text(token_on_file + "\n", encoding="utf-8")
    token_path.chmod(0o600)
    table = {"label": "home", "url": "https://mcp.example.com/mcp",
             "authorization_file": authorization_file or str(token_path), **server}  # fmt: skip
    caplog.set_level(logging.DEBUG)

    async def body() -> tuple[Daemon, RealtimeSimulator]:
        mcp = McpOptions(tools={"home": HOUSE_TOOLS}, tokens={"home": TOKEN}, call=LIGHTS)
        options = SimulatorOptions(voice_engine="tone", mcp=mcp)
        async with RealtimeSimulator(options) as sim:
            config = with_overrides(
                load_config(None),
                device={"hardware": "fake", "state_dir": str(tmp_path)},
                realtime={"url": sim.url},
                link={"disclosure": ""},  # the first reply answers the question
                listen={"mode": "always"},  # every word heard is a turn: no wake word needed
                mcp={"servers": [table]},
            )
            hardware = build_fake(HardwareRequest("fake"), speed=4.0)
            duplex = hardware.duplex
            assert isinstance(duplex, FakeDuplex)
            duplex.feed_wav(shipped_question(), at_s=0.5)
            trace = Trace(tmp_path / "trace.jsonl")
            daemon = Daemon(config, hardware, "sk-test-mcp", trace=trace,
                            today=lambda: "2026-11-24")  # fmt: skip
            stop = asyncio.Event()
            task = asyncio.create_task(daemon.run(stop))
            try:
                await asyncio.wait_for(daemon.wait_for_replies(1), SAFETY_TIMEOUT_S)
            finally:
                stop.set()
                await task
                trace.close()
                hardware.close()
            return daemon, sim

    daemon, sim = asyncio.run(body())
    result = Run(daemon, sim, (tmp_path / "trace.jsonl").read_text(encoding="utf-8"), caplog.text)
    assert [p for e in sim.sent for p in server_problems(e)] == []
    assert [p for e in sim.received for p in client_problems(e)] == []
    assert result.sent("error") == []
    (update,) = result.received("session.update")
    (tool,) = [t for t in update["session"]["tools"] if t["type"] == "mcp"]
    assert tool["authorization"] == token_on_file  # what the file held reached the session
    for shown in (result.trace_text, result.log_text, repr(daemon), repr(daemon.mcp)):
        assert token_on_file not in shown
    return result


def test_an_approved_call_is_made_and_its_result_spoken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = run(tmp_path, caplog, {"approve_tools": ["lights_on"]})
    assert r.sent("mcp_list_tools.completed")
    (request,) = [e["item"] for e in r.sent("conversation.item.done")
                  if e["item"]["type"] == "mcp_approval_request"]  # fmt: skip
    (answer,) = r.received("conversation.item.create")
    assert answer["previous_item_id"] == request["id"]
    assert answer["item"]["approval_request_id"] == request["id"]
    assert answer["item"]["approve"] is True
    assert len(r.received("response.create")) == 1  # the one that reads the answer
    assert r.sent("response.mcp_call.completed") and not r.sent("response.mcp_call.failed")
    assert [e["response"]["status"] for e in r.sent("response.done")] == ["completed"] * 2
    assert any("kitchen lights on" in said for said in r.said)
    assert 'MCP server "home" offers 3 tools: lights_on, lights_off, list_rooms' in r.log_text
    assert 'MCP server "home": approved a call of lights_on (listed in approve_tools)' in r.log_text
    assert 'MCP server "home": the call of lights_on returned 17 characters' in r.log_text


def test_a_call_the_policy_denies_is_refused_and_the_reply_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = run(tmp_path, caplog, {"approve_tools": ["list_rooms"], "deny_tools": ["lights_on"]})
    (answer,) = r.received("conversation.item.create")
    assert answer["item"]["approve"] is False
    assert "lights_on" in answer["item"]["reason"]
    assert r.sent("response.mcp_call.failed") and not r.sent("response.mcp_call.completed")
    assert not any("kitchen lights on" in said for said in r.said)
    assert any("not approved" in said for said in r.said)
    assert "refused a call of lights_on (listed in deny_tools)" in r.log_text
    assert "the call of lights_on failed (tool_execution_error: The call was not" in r.log_text


def test_without_approval_the_call_is_made_in_the_first_response(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))  # the token as a credential
    r = run(tmp_path, caplog, {"require_approval": "never"},
            authorization_file="$CREDENTIALS_DIRECTORY/mcp-home")  # fmt: skip
    (update,) = r.received("session.update")
    assert [t["require_approval"] for t in update["session"]["tools"] if t["type"] == "mcp"] == [
        "never"
    ]
    assert r.received("conversation.item.create") == []
    assert r.received("response.create") == []  # server VAD asked for the only response
    assert "mcp_approval_request" not in str(r.sim.sent)
    (done,) = r.sent("response.done")
    assert [o["type"] for o in done["response"]["output"]] == ["mcp_call", "message"]
    assert any("kitchen lights on" in said for said in r.said)


def test_a_wrong_token_fails_the_listing_and_no_tool_is_called(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = run(tmp_path, caplog, {"require_approval": "never"}, token_on_file="mcp-tok_wrong")
    assert r.sent("mcp_list_tools.failed") and not r.sent("mcp_list_tools.completed")
    assert "mcp_call" not in str(r.sim.sent)
    assert 'MCP server "home": the service could not list its tools' in r.log_text


def test_reload_rereads_the_token_and_a_bad_one_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_path = tmp_path / "mcp-home"
    token_path.write_text(TOKEN, encoding="utf-8")
    token_path.chmod(0o600)
    path = tmp_path / "edgevoice.toml"
    path.write_text(
        f'[device]\nhardware = "fake"\nstate_dir = "{tmp_path}"\n'
        f'[[mcp.servers]]\nlabel = "home"\nurl = "https://mcp.example.com/mcp"\n'
        f'authorization_file = "{token_path}"\n',
        encoding="utf-8",
    )
    daemon = Daemon(load_config(path), build_fake(HardwareRequest("fake")), "sk-test")
    restarts: list[bool] = []
    monkeypatch.setattr(daemon.link, "restart", lambda: restarts.append(True))
    _reload(daemon, path)
    assert restarts == []  # the same token: the session goes on
    token_path.write_text("mcp-tok_rotated", encoding="utf-8")
    _reload(daemon, path)
    assert restarts == [True]
    assert daemon.mcp.tokens["home"].reveal() == "mcp-tok_rotated"
    before = (daemon.config, daemon.mcp)
    token_path.write_text("", encoding="utf-8")
    _reload(daemon, path)
    assert (daemon.config, daemon.mcp) == before and restarts == [True]
    assert "config reload failed, keeping the running config" in caplog.text
    assert f"{path}: mcp.servers[0].authorization_file: {token_path} is empty" in caplog.text
    assert "mcp-tok_rotated" not in caplog.text and TOKEN not in caplog.text
