"""The fault matrix: the real daemon on fake hardware against the simulator's faults.

For each fault: the daemon survives (its run task keeps running), reconnects where
it should and how soon it should, counts bad frames and keeps the session, and
goes to FAULT with a slow retry when the service refuses the key. ``rand`` is
pinned to 0 so every backoff is exactly half its base (0.5 s for the first retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from device.app import Daemon
from device.config import load_config, with_overrides
from device.demo import LEAD_IN_S, shipped_question
from device.realtime.sim_faults import parse_fault
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from hw.factory import HardwareRequest, build_fake
from hw.fake import FakeDuplex
from tests.contract.oracle import server_problems
from tests.integration.daemon_run import WAIT_S, until

SPEED = 6.0  # fake audio clock against wall time
FIRST_RETRY_S = 0.5  # BACKOFF_BASE_S * 2**0 * (0.5 + 0.5 * rand()) with rand() == 0
SLOW_RETRY_MIN_S = 150.0  # SLOW_RETRY_S * 0.5
RECONNECTING = re.compile(r"reconnecting in ([0-9.]+) s")


@dataclass
class Run:
    daemon: Daemon
    sim: RealtimeSimulator
    task: asyncio.Task[None]
    caplog: pytest.LogCaptureFixture

    def delays_s(self) -> list[float]:
        return [
            float(match.group(1))
            for record in self.caplog.records
            if (match := RECONNECTING.search(record.getMessage()))
        ]

    def log_text(self) -> str:
        return "\n".join(record.getMessage() for record in self.caplog.records)


@contextlib.asynccontextmanager
async def daemon_against(
    caplog: pytest.LogCaptureFixture,
    *specs: str,
    question: bool = False,
    link: dict[str, Any] | None = None,
) -> AsyncIterator[Run]:
    caplog.set_level(logging.INFO)
    faults = tuple(parse_fault(spec) for spec in specs)
    options = SimulatorOptions(voice_engine="tone", reply_text="Okay.", faults=faults)
    async with RealtimeSimulator(options) as sim:
        config = with_overrides(
            load_config(None),
            device={"hardware": "fake"},
            realtime={"url": sim.url},
            # No AI disclosure: the first response is the answer the faults aim at.
            link={"disclosure": "", **(link or {})},
            listen={"mode": "always"},  # the question is a turn without a wake word
        )
        hardware = build_fake(HardwareRequest("fake"), speed=SPEED)
        duplex = hardware.duplex
        assert isinstance(duplex, FakeDuplex)
        if question:
            duplex.feed_wav(shipped_question(), at_s=LEAD_IN_S)
        daemon = Daemon(config, hardware, "sk-test-fault-matrix", rand=lambda: 0.0)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            yield Run(daemon, sim, task, caplog)
            assert not task.done(), "the daemon stopped on its own"
        finally:
            stop.set()
            await asyncio.wait_for(task, WAIT_S)
            hardware.close()
        problems = [p for event in sim.sent for p in server_problems(event)]
        assert problems == [], "\n".join(problems)
        assert sim.faults_fired == [str(fault) for fault in faults]


def drive(body: Callable[[], Any]) -> None:
    asyncio.run(asyncio.wait_for(body(), 4 * WAIT_S))


async def reply_played(run: Run) -> None:
    await asyncio.wait_for(run.daemon.wait_for_replies(1), WAIT_S)


# -- bad input: counted, ignored, and the conversation goes on ------------------------


@pytest.mark.parametrize(
    ("spec", "bad_frames"),
    [
        ("garbage@session.updated", 1),
        ("non_object@session.updated", 1),
        ("binary@session.updated", 1),
        ("bad_field@response.output_audio.delta", 1),  # "delta": 5
        ("bad_field:-item_id@response.output_audio.delta#2", 1),  # a field missing
        ("bad_field@response.created", 1),  # "response": 5
        ("unknown_event@session.updated", 0),  # an Unknown event, not a bad frame
        ("error@response.created", 0),  # recoverable server_error
        ("error:invalid_value@session.updated", 0),
    ],
)
def test_bad_input_is_counted_and_the_reply_still_plays(
    caplog: pytest.LogCaptureFixture, spec: str, bad_frames: int
) -> None:
    async def body() -> None:
        async with daemon_against(caplog, spec, question=True) as run:
            await reply_played(run)
            assert run.daemon.stats.bad_frames == bad_frames
            assert run.sim.connections == 1 and run.delays_s() == []
            assert run.daemon.state.value == "idle"

    drive(body)


# -- the link breaks: reconnect at once (first backoff step) --------------------------


@pytest.mark.parametrize(
    ("spec", "close_code"),
    [
        ("drop@session.updated", 1006),
        # expire: reconnects at once, re-seeded (tests/integration/test_session_lifecycle.py)
        ("close:1000@session.updated", 1000),
        ("close:1001@session.updated", 1001),
        ("close:1011@session.updated", 1011),
        ("close:1012@session.updated", 1012),
        ("close:1013@session.updated", 1013),
        # 16 MiB + 1 against the client's 16 MiB limit: the client closes with 1009.
        ("oversized@session.updated", 1009),
    ],
)
def test_a_broken_link_reconnects_after_the_first_backoff_step(
    caplog: pytest.LogCaptureFixture, spec: str, close_code: int
) -> None:
    async def body() -> None:
        async with daemon_against(caplog, spec) as run:
            await until(lambda: run.sim.connections == 2, "the second connection")
            await until(lambda: run.daemon.state.value == "idle", "the new session")
            assert run.delays_s() == [FIRST_RETRY_S]
            assert run.sim.close_codes[0] == close_code
            assert "service" not in run.daemon.faults

    drive(body)


def test_a_drop_in_the_middle_of_a_reply_reconnects_and_ends_idle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body() -> None:
        async with daemon_against(
            caplog, "drop@response.output_audio.delta#2", question=True
        ) as run:
            await until(lambda: run.sim.connections == 2, "the second connection")
            await until(lambda: run.daemon.state.value == "idle", "the new session")
            assert run.delays_s() == [FIRST_RETRY_S]
            assert "connection lost" in run.log_text()

    drive(body)


def test_a_stalled_server_is_caught_by_the_keepalive_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The daemon pings every 20 s by default; here it pings fast ([link] ping_interval_s,
    # ping_timeout_s) so the stall is seen in a moment.
    link = {"ping_interval_s": 0.1, "ping_timeout_s": 0.2}

    async def body() -> None:
        # The stall ends after 1 s so the server reads the client's close frame and
        # hangs up; a stall for good costs the client its 2 s close timeout as well.
        async with daemon_against(caplog, "stall:1@session.updated", link=link) as run:
            await until(lambda: run.sim.connections == 2, "the second connection")
            assert run.delays_s() == [FIRST_RETRY_S]
            assert "close 1011" in run.log_text()
            assert run.sim.close_codes[0] == 1011

    drive(body)


# -- the handshake is refused -----------------------------------------------------------


@pytest.mark.parametrize("spec", ["http:500", "http:503", "http:429"])
def test_a_refused_handshake_is_retried_after_the_first_backoff_step(
    caplog: pytest.LogCaptureFixture, spec: str
) -> None:
    async def body() -> None:
        async with daemon_against(caplog, spec) as run:
            await until(lambda: run.sim.connections == 1, "the upgraded connection")
            await until(lambda: run.daemon.state.value == "idle", "the session")
            assert run.sim.handshakes == 2
            assert run.delays_s() == [FIRST_RETRY_S]
            assert "service" not in run.daemon.faults

    drive(body)


def test_429_with_retry_after_waits_that_long(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with daemon_against(caplog, "http:429:retry-after=2") as run:
            await until(lambda: run.delays_s() != [], "the reconnect decision")
            assert run.delays_s() == [2.0]

    drive(body)


@pytest.mark.parametrize(
    ("spec", "log_words"),
    [
        ("http:401", "HTTP 401: the API key was refused"),
        ("http:403", "HTTP 403: the API key was refused"),
        ("fatal_error@session.updated", "close 4000"),
        ("close:4000@session.updated", "close 4000"),
        ("close:1008@session.updated", "close 1008"),
    ],
)
def test_a_refusal_means_fault_and_a_slow_retry(
    caplog: pytest.LogCaptureFixture, spec: str, log_words: str
) -> None:
    async def body() -> None:
        async with daemon_against(caplog, spec) as run:
            await until(lambda: run.delays_s() != [], "the reconnect decision")
            assert run.daemon.faults == {"service"}
            assert run.daemon.state.value == "fault"
            [delay_s] = run.delays_s()
            assert delay_s >= SLOW_RETRY_MIN_S
            assert log_words in run.log_text()
            assert run.sim.handshakes == 1  # no quick second try

    drive(body)
