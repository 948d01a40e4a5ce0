"""Faults armed while a connection runs (``RealtimeSimulator.inject``), as a raw client sees
them: ``#K`` counts from the moment the fault is armed, not from the connection's start."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosedError

from device.realtime.sim_faults import ConnectionFaults, parse_fault
from device.realtime.simulator import RealtimeSimulator
from tests.contract.test_sim_faults import (
    frames_until_closed,
    open_session,
    recv_until,
    run,
    types,
)

CREATE = json.dumps({"type": "response.create"})


def test_an_injected_fault_counts_its_events_from_when_it_was_armed() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        assert sim.open_connections == 0
        async with open_session(sim) as ws:
            await recv_until(ws, "session.created")
            assert sim.open_connections == 1
            await ws.send(CREATE)
            first = await recv_until(ws, "response.done")  # a whole reply: many deltas
            assert types(first).count("response.output_audio.delta") > 2
            assert sim.inject(parse_fault("drop@response.output_audio.delta#2")) == 1
            await ws.send(CREATE)
            frames, closed = await frames_until_closed(ws)
            assert isinstance(closed, ConnectionClosedError) and ws.close_code == 1006
            assert types(frames).count("response.output_audio.delta") == 2  # of this reply
            assert "response.done" not in types(frames)
        assert sim.faults_fired == ["drop@response.output_audio.delta#2"]

    run(scenario, delta_ms=100)


def test_an_injected_fault_fires_once_on_the_connection_it_was_armed_on() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim) as ws:
            await recv_until(ws, "session.created")
            sim.inject(parse_fault("unknown_event@response.created"))
            for _ in range(2):
                await ws.send(CREATE)
                await recv_until(ws, "response.done")
        async with open_session(sim) as ws:  # a new connection: nothing armed
            await recv_until(ws, "session.created")
            await ws.send(CREATE)
            await recv_until(ws, "response.done")
        assert sim.faults_fired == ["unknown_event@response.created"]

    run(scenario)


@pytest.mark.parametrize("spec", ["drop", "drop@open", "http:503"])
def test_a_fault_that_needs_a_new_connection_cannot_be_injected(spec: str) -> None:
    with pytest.raises(ValueError, match="cannot fire on an open connection"):
        ConnectionFaults((), 1).arm(parse_fault(spec))
