"""The session lifecycle end to end: the daemon on fake hardware against the simulator.

Client secrets from the simulator's ``POST /v1/realtime/client_secrets`` open the
sessions (and never reach a log or the trace); sessions are rotated before the
service's limit and re-seeded with the recent turns; an unplanned expiry is
carried over the same way; the AI disclosure is said once and remembered once
heard; a silent server is left by the keepalive; a spent rate limit holds the
device's ``response.create``. Every event on the wire goes through the SDK oracle.
``rand`` is pinned to 0, so the first backoff step is exactly 0.5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from device.app import Daemon
from device.config import load_config, with_overrides
from device.demo import LEAD_IN_S, shipped_question
from device.realtime.session import SessionSettings
from device.realtime.sim_faults import parse_fault
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from device.state import Event, State
from device.trace import Trace, read_trace
from hw.factory import HardwareRequest, build_fake
from hw.fake import FakeDuplex
from hw.panel_fake import FakeButtons
from tests.contract.oracle import client_problems, server_problems
from tests.contract.secrets_oracle import answer_problems, request_problems
from tests.integration.daemon_run import WAIT_S, until

SPEED = 6.0  # fake audio clock against wall time
CREDENTIAL = "device-credential-" + "K" * 24  # the device's own, for the token URL
KEY = "sk-test-lifecycle-" + "Q" * 24
REPLY = "Okay."
DISCLOSURE = "Just so you know, you are talking with an AI voice."
RECONNECTING = re.compile(r"reconnecting in ([0-9.]+) s")


@dataclass
class Run:
    daemon: Daemon
    sim: RealtimeSimulator
    duplex: FakeDuplex
    trace_path: Path
    caplog: pytest.LogCaptureFixture
    states: list[State]

    def delays_s(self) -> list[float]:
        return [
            float(match.group(1))
            for record in self.caplog.records
            if record.name == "device.link" and (match := RECONNECTING.search(record.getMessage()))
        ]

    def log_text(self) -> str:
        return "\n".join(record.getMessage() for record in self.caplog.records)

    def sent(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.sim.received if e.get("type") == kind]


@contextlib.asynccontextmanager
async def daemon_on(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    options: SimulatorOptions,
    *,
    realtime: dict[str, Any] | None = None,
    link: dict[str, Any] | None = None,
    question: bool = False,
    credential: str = KEY,
    settings: Callable[[Daemon], SessionSettings] | None = None,
) -> AsyncIterator[Run]:
    caplog.set_level(logging.INFO)
    async with RealtimeSimulator(options) as sim:
        token_url = {"token_url": sim.tokens.url} if sim.tokens is not None else {}
        config = with_overrides(
            load_config(None),
            device={"hardware": "fake", "state_dir": str(tmp_path / "state")},
            realtime={"url": sim.url, **token_url, **(realtime or {})},
            link={"disclosure": "", **(link or {})},
            listen={"mode": "always"},  # every word heard is a turn: no wake word needed
        )
        (tmp_path / "state").mkdir(exist_ok=True)
        hardware = build_fake(HardwareRequest("fake"), speed=SPEED)
        duplex = hardware.duplex
        assert isinstance(duplex, FakeDuplex)
        if question:
            duplex.feed_wav(shipped_question(), at_s=LEAD_IN_S)
        trace_path = tmp_path / "trace.jsonl"
        trace = Trace(trace_path)
        daemon = Daemon(config, hardware, credential, trace=trace, rand=lambda: 0.0)
        if settings is not None:
            daemon.link.settings = lambda: settings(daemon)  # type: ignore[method-assign]
        states: list[State] = []
        dispatch = daemon.dispatch

        def recording(event: Event) -> None:
            dispatch(event)
            if not states or states[-1] is not daemon.state:
                states.append(daemon.state)

        daemon.dispatch = recording  # type: ignore[method-assign]
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            yield Run(daemon, sim, duplex, trace_path, caplog, states)
            assert not task.done(), "the daemon stopped on its own"
        finally:
            stop.set()
            await asyncio.wait_for(task, WAIT_S)
            hardware.close()
            trace.close()
    problems = [p for event in sim.sent for p in server_problems(event)]
    problems += [p for event in sim.received for p in client_problems(event)]
    assert problems == [], "\n".join(problems)


def drive(body: Callable[[], Any]) -> None:
    asyncio.run(asyncio.wait_for(body(), 4 * WAIT_S))


def idle(run: Run) -> Callable[[], bool]:
    return lambda: run.daemon.state is State.IDLE and run.daemon.link.ready


# -- client secrets ------------------------------------------------------------------------


def test_client_secrets_open_the_sessions_and_never_reach_a_log_or_the_trace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = SimulatorOptions(voice_engine="tone", reply_text=REPLY, client_secrets=True)

    async def body() -> None:
        async with daemon_on(
            tmp_path, caplog, options, question=True, credential=CREDENTIAL
        ) as run:
            caplog.set_level(logging.DEBUG)
            # websockets logs every header at debug (whatever another test set its level to)
            caplog.set_level(logging.DEBUG, logger="websockets")
            await asyncio.wait_for(run.daemon.wait_for_replies(1), WAIT_S)
            run.daemon.link.restart()  # a second session: the same secret opens it
            await until(lambda: run.sim.connections == 2, "the second session")
            await until(idle(run), "the second session configured")
            tokens = run.sim.tokens
            assert tokens is not None
            assert len(tokens.service.minted) == 1, "a secret is reused while fresh"
            [request] = tokens.service.requests
            assert request_problems(request) == []
            assert request["session"] == {"type": "realtime", "model": "gpt-realtime-1.5"}
            [answer] = tokens.service.answers
            assert answer_problems(answer) == []
            secret = answer["value"]
            assert secret.startswith("ek_")
            text = run.log_text() + run.trace_path.read_text()
            assert secret not in text and CREDENTIAL not in text
            assert "Bearer ***" in run.log_text(), "the header was logged, hidden"

    drive(body)


@pytest.mark.parametrize(
    ("spec", "delay_s", "slow"),
    [("http:503", 0.5, False), ("http:429:retry-after=1", 1.0, False), ("http:401", None, True)],
)
def test_a_failing_token_url_is_retried_as_its_answer_says(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    spec: str,
    delay_s: float | None,
    slow: bool,
) -> None:
    options = SimulatorOptions(
        voice_engine="tone", client_secrets=True, token_faults=(parse_fault(spec),)
    )

    async def body() -> None:
        async with daemon_on(tmp_path, caplog, options, credential=CREDENTIAL) as run:
            await until(lambda: run.delays_s() != [], "the retry decision")
            [first] = run.delays_s()
            assert "the token URL 127.0.0.1 answered HTTP" in run.log_text()
            assert run.sim.handshakes == 0, "no WebSocket without a secret"
            if slow:
                assert first >= 150.0 and run.daemon.faults == {"service"}
                assert "refused the device's credential" in run.log_text()
                return
            assert first == delay_s
            await until(idle(run), "the session once the token URL answers")
            assert "service" not in run.daemon.faults

    drive(body)


def test_a_secret_the_service_refuses_is_replaced_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = SimulatorOptions(voice_engine="tone", client_secrets=True)

    async def body() -> None:
        async with daemon_on(tmp_path, caplog, options, credential=CREDENTIAL) as run:
            await until(idle(run), "the first session")
            tokens = run.sim.tokens
            assert tokens is not None
            # The service's clock runs ahead: to it, the secret the device holds expired.
            tokens.service.clock = lambda: 1e10
            run.daemon.link.restart()
            await until(lambda: run.sim.connections == 2, "a session with a new secret")
            await until(idle(run), "the new session configured")
            assert len(tokens.service.minted) == 2
            assert run.sim.handshakes == 3  # the refused one in between
            assert run.delays_s() == [0.0, 0.0], "no backoff, no fault"
            assert "service" not in run.daemon.faults

    drive(body)


# -- rotation and re-seeding ------------------------------------------------------------------


def transcribed(daemon: Daemon) -> SessionSettings:
    """The link's settings with input transcription, so user turns have text."""
    rt = daemon.config.realtime
    return SessionSettings(
        voice=rt.voice,
        instructions=rt.instructions,
        tools=tuple(daemon.tools.definitions()),
        transcription={"model": "gpt-4o-mini-transcribe"},
    )


def seeds(run: Run) -> list[tuple[str, str, str]]:
    return [
        (e["item"]["role"], e["item"]["content"][0]["type"], e["item"]["content"][0]["text"])
        for e in run.sent("conversation.item.create")
        if e["item"].get("type") == "message"
    ]


def test_a_session_is_rotated_in_a_quiet_moment_without_going_offline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 8 s sessions, rotated from 5 s before their end: the window opens after the
    # question has been asked (at 0.5 s of audio, 6 times faster than real time).
    options = SimulatorOptions(voice_engine="tone", reply_text=REPLY, session_lifetime_s=8)

    async def body() -> None:
        async with daemon_on(
            tmp_path, caplog, options, link={"rotate_before_s": 5.0}, question=True,
            settings=transcribed,
        ) as run:  # fmt: skip
            await asyncio.wait_for(run.daemon.wait_for_replies(1), WAIT_S)
            await until(lambda: run.daemon.link.rotations == 1, "the rotation")
            await until(lambda: run.sim.close_codes != [], "the old session closed")
            assert run.sim.connections == 2
            assert run.sim.close_codes[0] == 1000, "closed by the device, not expired"
            [(user_role, user_kind, heard), assistant] = seeds(run)
            assert (user_role, user_kind) == ("user", "input_text")
            assert heard.endswith("seconds of speech)")  # the simulator's transcript
            assert assistant == ("assistant", "output_text", REPLY)
            updates = run.sent("session.update")
            assert len(updates) == 2 and "instructions" in updates[1]["session"]
            # no gap: the device never went offline, and the reply was not cut
            first_idle = run.states.index(State.IDLE)
            assert State.OFFLINE not in run.states[first_idle:]
            assert run.daemon.replies_finished == 1
            assert run.delays_s() == []

    drive(body)


def test_a_next_session_that_cannot_be_opened_leaves_the_current_one_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = SimulatorOptions(
        voice_engine="tone", session_lifetime_s=8, faults=(parse_fault("http:503,conn=2"),)
    )

    async def body() -> None:
        async with daemon_on(tmp_path, caplog, options, link={"rotate_before_s": 5.0}) as run:
            await until(lambda: "could not open the next session" in run.log_text(), "a try")
            assert run.sim.handshakes == 2 and run.sim.connections == 1
            assert run.sim.close_codes == [], "the current session was kept"
            assert run.daemon.link.ready and run.daemon.link.rotations == 0
            assert run.delays_s() == [] and "service" not in run.daemon.faults

    drive(body)


def test_an_unplanned_expiry_reconnects_at_once_and_reseeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = SimulatorOptions(
        voice_engine="tone", reply_text=REPLY, faults=(parse_fault("expire@response.done"),)
    )

    async def body() -> None:
        async with daemon_on(
            tmp_path, caplog, options, link={"rotate_before_s": 0}, question=True
        ) as run:
            await until(lambda: run.sim.connections == 2, "the next session")
            await until(idle(run), "the next session configured")
            assert run.sim.close_codes[0] == 1001
            assert run.delays_s() == [0.0]
            assert seeds(run) == [("assistant", "output_text", REPLY)]
            [_, update] = run.sent("session.update")
            # the seeds follow the new session's update
            order = [e["type"] for e in run.sim.received]
            assert order.index("conversation.item.create") > run.sim.received.index(update)
            assert "service" not in run.daemon.faults

    drive(body)


# -- the AI disclosure -------------------------------------------------------------------------


def disclosures(run: Run) -> list[dict[str, Any]]:
    return [e for e in run.sent("response.create") if e.get("response", {}).get("metadata")]


def test_the_disclosure_is_said_once_and_remembered_once_heard(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = SimulatorOptions(voice_engine="tone", reply_text=REPLY)
    link = {"disclosure": DISCLOSURE}

    async def first_start() -> None:
        async with daemon_on(tmp_path, caplog, options, link=link) as run:
            await asyncio.wait_for(run.daemon.wait_for_replies(1), WAIT_S)
            await until(lambda: run.daemon.link.disclosure.heard, "the disclosure heard")
            [asked] = disclosures(run)
            assert asked["response"]["conversation"] == "none"
            [done] = [e for e in run.sim.sent if e["type"] == "response.done"]
            spoken = done["response"]["output"][0]["content"][0]["transcript"]
            assert spoken == DISCLOSURE  # out of band, and said word for word
            assert done["response"]["conversation_id"] is None
            assert run.duplex.played().any(), "it was played"

    async def next_start() -> None:
        async with daemon_on(tmp_path, caplog, options, link=link) as run:
            await until(idle(run), "the session")
            run.daemon.link.restart()
            await until(lambda: run.sim.connections == 2, "a second session")
            await until(idle(run), "the second session configured")
            assert disclosures(run) == []

    drive(first_start)
    assert (tmp_path / "state" / "disclosure.json").exists()
    drive(next_start)


def test_a_disclosure_cut_short_is_said_again_at_the_next_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Reply audio comes slower than the fake speaker plays it, so the disclosure is
    # still being generated when the talk button stops it.
    options = SimulatorOptions(voice_engine="tone", delta_ms=100, delta_interval_s=0.05)

    async def body() -> None:
        async with daemon_on(tmp_path, caplog, options, link={"disclosure": DISCLOSURE}) as run:
            await until(lambda: run.daemon.state is State.SPEAKING, "the disclosure playing")
            buttons = run.daemon.hw.buttons
            assert isinstance(buttons, FakeButtons)
            buttons.press("talk")  # stop the reply, as a person would
            await asyncio.wait_for(run.daemon.wait_for_replies(1), WAIT_S)
            await until(lambda: "cut short" in run.log_text(), "the speaker reporting the cut")
            assert not run.daemon.link.disclosure.heard
            # not in the conversation: cancelled, never truncated (it would not be found)
            assert run.sent("conversation.item.truncate") == []
            assert all(c["response_id"] == disclosures_id(run) for c in run.sent("response.cancel"))
            errors = [e["error"]["code"] for e in run.sim.sent if e["type"] == "error"]
            assert set(errors) <= {"response_cancel_not_active"}  # a routine race, if any
            run.daemon.link.restart()
            await until(lambda: len(disclosures(run)) == 2, "the disclosure asked again")
            await until(lambda: run.daemon.link.disclosure.heard, "the disclosure heard")

    drive(body)


def disclosures_id(run: Run) -> str:
    return next(
        e["response"]["id"]
        for e in run.sim.sent
        if e["type"] == "response.created" and e["response"].get("metadata")
    )


# -- keepalive ---------------------------------------------------------------------------------


def test_a_silent_server_is_left_within_the_keepalive_and_the_device_reconnects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The server goes silent for good once configured (longer than the whole test):
    # only the keepalive can notice it.
    options = SimulatorOptions(
        voice_engine="tone", faults=(parse_fault("stall:600@session.updated"),)
    )
    link = {"ping_interval_s": 0.2, "ping_timeout_s": 0.3}

    async def body() -> None:
        async with daemon_on(tmp_path, caplog, options, link=link) as run:
            await until(lambda: run.sim.connections == 2, "the second connection")
            await until(idle(run), "the new session")
            assert run.delays_s() == [0.5]
            assert "close 1011" in run.log_text()

    drive(body)


# -- rate limits -------------------------------------------------------------------------------


def test_a_spent_rate_limit_holds_the_response_create_until_it_resets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One response per 1.5 s, and the first one calls a tool: its answer needs a
    # response.create of the device's, which must wait for the reset.
    options = SimulatorOptions(
        voice_engine="tone",
        tool_call=("volume", '{"action": "set", "percent": 30}'),
        request_limit=1,
        request_window_s=1.5,
    )

    async def body() -> None:
        async with daemon_on(tmp_path, caplog, options, question=True) as run:
            await asyncio.wait_for(run.daemon.wait_for_replies(1), WAIT_S)
            assert run.daemon.controls.volume_percent == 30
            assert run.sim.limits.refused == 0, "nothing was sent into the spent limit"
            updates = [e for e in run.sim.sent if e["type"] == "rate_limits.updated"]
            assert len(updates) == 2  # the tool call, then its answer in the next window
            [follow_up] = run.sent("response.create")
            assert "response" not in follow_up
            text = run.log_text()
            assert "rate limit reached: no requests left" in text
            assert "a response waits" in text
            done = [e for e in run.sim.sent if e["type"] == "response.done"]
            assert done[-1]["response"]["status"] == "completed"

    drive(body)


def test_rate_limit_events_are_traced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    options = SimulatorOptions(voice_engine="tone", reply_text=REPLY)

    async def body() -> None:
        async with daemon_on(tmp_path, caplog, options, question=True) as run:
            await asyncio.wait_for(run.daemon.wait_for_replies(1), WAIT_S)
            assert run.daemon.link.limits.wait_s(0.0) == 0
            assert "rate limit" not in run.log_text()  # plenty left: nothing to say

    drive(body)
    recv = [line["event"]["type"] for line in read_trace(tmp_path / "trace.jsonl")]
    assert "rate_limits.updated" in recv
