"""Fault injection in the simulator: the spec grammar, and each fault as a raw client sees it.

Socket tests drive a raw ``websockets`` client on 127.0.0.1 and check exact close
codes, HTTP answers and frames. Every well-formed event the simulator sends in
every test (faults' own ``error`` events included) goes through the SDK oracle.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from device.realtime.sim_faults import (
    KINDS,
    OVERSIZED_BYTES,
    SERVER_EVENTS,
    SPEC_GRAMMAR,
    Fault,
    Trigger,
    parse_fault,
)
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from tests.contract.oracle import SENT_BY_SIMULATOR

Event = dict[str, Any]
Frame = str | bytes
MODEL = "gpt-realtime-1.5"
AUTH = {"Authorization": "Bearer sk-test"}
CLIENT_MAX_BYTES = 16 * 1024 * 1024  # the daemon's limit
SAFETY_TIMEOUT_S = 30.0  # only bounds a hung test; nothing is asserted about time
UPDATE = {"type": "session.update", "session": {"type": "realtime"}}


# -- the grammar -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("drop", Fault("drop")),
        ("drop@open", Fault("drop")),
        (
            "drop@response.output_audio.delta#3",
            Fault("drop", Trigger("response.output_audio.delta", 3)),
        ),
        ("close:1011@session.updated", Fault("close", Trigger("session.updated"), 1011)),
        ("close", Fault("close", value=1000)),
        ("http:429:retry-after=2", Fault("http_status", value=429, retry_after_s=2)),
        ("http:429:Retry-After=0", Fault("http_status", value=429, retry_after_s=0)),
        ("http:401", Fault("http_status", value=401)),
        ("http_status:503@handshake", Fault("http_status", value=503)),
        ("stall@response.created", Fault("stall", Trigger("response.created"))),
        ("stall:2.5@session.updated", Fault("stall", Trigger("session.updated"), 2.5)),
        ("garbage@session.updated", Fault("garbage", Trigger("session.updated"))),
        (
            "error:server_error@response.created",
            Fault("error", Trigger("response.created"), "server_error"),
        ),
        ("error@response.created", Fault("error", Trigger("response.created"), "server_error")),
        ("fatal_error@session.updated", Fault("fatal_error", Trigger("session.updated"))),
        ("expire@session.updated", Fault("expire", Trigger("session.updated"))),
        ("oversized", Fault("oversized", value=OVERSIZED_BYTES)),
        ("oversized:2048@session.created", Fault("oversized", Trigger("session.created"), 2048)),
        ("bad_field:-delta", Fault("bad_field", value="-delta")),
        (
            "unknown_event:response.output_audio.sparkle",
            Fault("unknown_event", value="response.output_audio.sparkle"),
        ),
        (
            "binary@session.created,conn=2,times=3",
            Fault("binary", Trigger("session.created", 1, 2), times=3),
        ),
        ("http:503,times=all", Fault("http_status", value=503, times=None)),
        (" non_object ", Fault("non_object")),
    ],
)
def test_specs_parse_to_faults_and_print_back(spec: str, fault: Fault) -> None:
    assert parse_fault(spec) == fault
    assert parse_fault(str(fault)) == fault


def test_canonical_specs_leave_out_defaults() -> None:
    assert str(parse_fault("close:1000@open,conn=1,times=1")) == "close"
    assert str(parse_fault("http_status:429:retry-after=2")) == "http:429:retry-after=2"
    assert str(parse_fault("stall:2@response.created#1")) == "stall:2@response.created"
    assert str(parse_fault("drop,times=all,conn=3")) == "drop,conn=3,times=all"


def test_conn_and_times_name_a_window_of_connections() -> None:
    window = parse_fault("drop,conn=2,times=3")
    assert [window.fires_on(n) for n in range(1, 7)] == [False, True, True, True, False, False]
    assert [parse_fault("drop").fires_on(n) for n in (1, 2)] == [True, False]
    assert all(parse_fault("http:503,conn=2,times=all").fires_on(n) for n in range(2, 50))


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "unknown kind ''"),
        ("explode@session.updated", "unknown kind 'explode'"),
        ("http", "http needs a status"),
        ("http:200", "HTTP error status 400-599"),
        ("http:499", "HTTP error status 400-599"),
        ("http:abc", "HTTP status must be a whole number"),
        ("http:503:retry=2", "http takes retry-after=SECONDS"),
        ("http:429:retry-after=soon", "retry-after must be a whole number"),
        ("http:401@session.updated", "http faults fire @handshake only"),
        ("drop@handshake", "http faults fire @handshake only"),
        ("close:1006", "use drop for 1006"),
        ("close:1015", "close code 1015 cannot be sent"),
        ("close:999", "cannot be sent"),
        ("close:1000:x", "at most one argument"),
        ("drop@response.audio.delta", "not a GA server event type (a beta name?)"),
        ("drop@session.updated#0", "count from 1"),
        ("drop@session.updated#x", "#K must be a whole number"),
        ("drop@", "@ needs open or a server event type"),
        ("drop,conn=0", "count from 1"),
        ("drop,times=0", "times must be at least 1"),
        ("drop,times=-1", "times must be a whole number"),
        ("drop,every=2", "use conn=N or times=N|all"),
        ("drop,conn=1,conn=2", "use conn=N or times=N|all"),
        ("drop:1", "drop takes no argument"),
        ("stall:0", "stall takes seconds > 0"),
        ("stall:nan", "stall takes seconds > 0"),
        ("stall:inf", "stall takes seconds > 0"),
        ("stall:soon", "stall takes seconds"),
        ("error:Bad-Code", "error takes an error code"),
        ("unknown_event:session.updated", "unknown_event needs a type the protocol lacks"),
        ("oversized:0", "oversized takes"),
        ("bad_field:a b", "bad_field takes a field name"),
    ],
)
def test_bad_specs_give_one_line_naming_the_reason_and_the_grammar(spec: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_fault(spec)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"bad fault {spec!r}: ")
    assert reason in message
    assert message.endswith(f"expected {SPEC_GRAMMAR}")


def test_faults_built_in_code_are_checked_too() -> None:
    with pytest.raises(ValueError, match="http faults fire at the handshake"):
        Fault("http_status", Trigger("session.updated"), 503)
    with pytest.raises(ValueError, match="retry-after"):
        Fault("close", retry_after_s=2)
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]


_KIND_ARGS: dict[str, st.SearchStrategy[str]] = {
    "close": st.sampled_from(["", ":1000", ":1001", ":1008", ":1011", ":1013", ":4000"]),
    "http_status": st.sampled_from([":401", ":403", ":429:retry-after=2", ":500", ":503"]),
    "stall": st.sampled_from(["", ":0.5", ":3"]),
    "error": st.sampled_from(["", ":server_error", ":invalid_value"]),
    "oversized": st.sampled_from(["", ":1", ":4096"]),
    "bad_field": st.sampled_from(["", ":delta", ":-item_id"]),
    "unknown_event": st.sampled_from(["", ":response.output_audio.sparkle"]),
}


@st.composite
def specs(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(KINDS))
    spec = ("http" if kind == "http_status" else kind) + draw(_KIND_ARGS.get(kind, st.just("")))
    if kind != "http_status":
        event = draw(st.sampled_from([None, *sorted(SERVER_EVENTS)]))
        nth = draw(st.sampled_from(["", "#1", "#7"]))
        spec += "" if event is None else f"@{event}{nth}"
    spec += draw(st.sampled_from(["", ",conn=3", ",times=2", ",conn=2,times=all"]))
    return spec


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs())
def test_every_spec_survives_a_print_and_parse_round_trip(spec: str) -> None:
    fault = parse_fault(spec)
    assert parse_fault(str(fault)) == fault


# -- on the wire -------------------------------------------------------------------------

Scenario = Callable[[RealtimeSimulator], Awaitable[None]]


def run(scenario: Scenario, *specs: str, **options: Any) -> RealtimeSimulator:
    """Run ``scenario`` against a simulator with these faults; keep its events for the oracle."""
    faults = tuple(parse_fault(spec) for spec in specs)
    sim = RealtimeSimulator(
        SimulatorOptions(voice_engine="tone", reply_text="Okay.", faults=faults, **options)
    )

    async def main() -> None:
        async with sim:
            try:
                await asyncio.wait_for(scenario(sim), SAFETY_TIMEOUT_S)
            finally:
                SENT_BY_SIMULATOR.extend(sim.sent)

    asyncio.run(main())
    return sim


def open_session(sim: RealtimeSimulator, **kwargs: Any) -> Any:
    return connect(f"{sim.url}?model={MODEL}", additional_headers=AUTH, **kwargs)


async def frames_until_closed(ws: ClientConnection) -> tuple[list[Frame], ConnectionClosed]:
    frames: list[Frame] = []
    while True:
        try:
            frames.append(await ws.recv())
        except ConnectionClosed as exc:
            return frames, exc


async def recv_until(ws: ClientConnection, kind: str) -> list[Frame]:
    """Frames up to and including the first event of type ``kind``."""
    frames: list[Frame] = []
    while not frames or _type(frames[-1]) != kind:
        frames.append(await ws.recv())
    return frames


def _type(frame: Frame) -> str | None:
    try:
        event = json.loads(frame)
    except ValueError:
        return None
    return event.get("type") if isinstance(event, dict) else None


def types(frames: list[Frame]) -> list[str | None]:
    return [_type(frame) for frame in frames]


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for the server side to catch up with what the client saw."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


def test_drop_mid_reply_aborts_without_a_close_frame() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim) as ws:
            await ws.send(json.dumps({"type": "response.create"}))
            frames, closed = await frames_until_closed(ws)
            assert isinstance(closed, ConnectionClosedError)
            assert closed.rcvd is None and closed.sent is None
            assert ws.close_code == 1006
            assert types(frames).count("response.output_audio.delta") == 2
            assert types(frames)[-1] == "response.output_audio.delta"
            assert "response.done" not in types(frames)
        await eventually(lambda: sim.close_codes == [1006])
        assert sim.faults_fired == ["drop@response.output_audio.delta#2"]

    run(scenario, "drop@response.output_audio.delta#2", delta_ms=20)


def test_drop_at_open_sends_nothing_at_all() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim) as ws:
            frames, closed = await frames_until_closed(ws)
            assert frames == [] and closed.rcvd is None and ws.close_code == 1006

    run(scenario, "drop")


def test_stall_goes_silent_and_a_keepalive_client_gives_up_with_1011() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim, ping_interval=0.05, ping_timeout=0.2, close_timeout=0.2) as ws:
            assert types(await recv_until(ws, "session.created")) == ["session.created"]
            await ws.send(json.dumps(UPDATE))
            assert types(await recv_until(ws, "session.updated")) == ["session.updated"]
            await ws.send(json.dumps({"type": "response.create"}))
            frames, closed = await frames_until_closed(ws)
            assert frames == []  # not even the answer to response.create
            assert closed.sent is not None and closed.sent.code == 1011
            assert closed.sent.reason == "keepalive ping timeout"
            assert closed.rcvd is None  # the server never answered the close either
        assert [e["type"] for e in sim.received] == ["session.update"]  # nothing read since

    sim = run(scenario, "stall@session.updated")
    assert sim.faults_fired == ["stall@session.updated"]
    assert sim.close_codes == [1006]  # stopping the simulator dropped the stalled link


def test_a_timed_stall_is_a_slow_server_that_then_carries_on() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim, ping_interval=None) as ws:
            await recv_until(ws, "session.created")
            pong = await ws.ping()
            await ws.send(json.dumps({"type": "response.create"}))
            frames = await recv_until(ws, "response.done")
            assert types(frames)[0] == "response.created"
            await asyncio.wait_for(pong, 5)  # answered once the stall ended
        assert [e["type"] for e in sim.received] == ["response.create"]

    sim = run(scenario, "stall:0.3@session.created")
    assert sim.faults_fired == ["stall:0.3@session.created"]


@pytest.mark.parametrize(
    ("spec", "check"),
    [
        ("garbage", lambda frame: isinstance(frame, str) and _not_json(frame)),
        ("non_object", lambda frame: isinstance(json.loads(frame), list)),
        ("binary", lambda frame: isinstance(frame, bytes) and len(frame) == 480),
        (
            "unknown_event",
            lambda frame: (
                json.loads(frame)["type"] not in SERVER_EVENTS
                and json.loads(frame)["event_id"].startswith("event_")
            ),
        ),
        (
            "unknown_event:response.output_audio.sparkle",
            lambda frame: json.loads(frame)["type"] == "response.output_audio.sparkle",
        ),
    ],
)
def test_bad_frames_arrive_and_the_session_goes_on(
    spec: str, check: Callable[[Frame], bool]
) -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim) as ws:
            first, bad = await ws.recv(), await ws.recv()
            assert _type(first) == "session.created"
            assert check(bad), bad
            await ws.send(json.dumps({"type": "response.create"}))
            frames = await recv_until(ws, "response.done")
            assert json.loads(frames[-1])["response"]["status"] == "completed"
        assert sim.connections == 1

    sim = run(scenario, f"{spec}@session.created")
    assert sim.faults_fired == [f"{spec}@session.created"]


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize(
    ("spec", "field", "expected"),
    [
        ("bad_field@response.output_audio.delta", "delta", 5),
        ("bad_field:output_index@response.output_audio.delta#2", "output_index", "0"),
        ("bad_field:-delta@response.output_audio.delta", "delta", None),
        ("bad_field@response.created", "response", 5),
    ],
)
def test_bad_field_repeats_the_event_with_one_field_wrong(
    spec: str, field: str, expected: Any
) -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim) as ws:
            await ws.send(json.dumps({"type": "response.create"}))
            frames = await recv_until(ws, "response.done")
        events = [json.loads(frame) for frame in frames]
        kind = spec.split("@")[1].split("#")[0]
        nth = int(spec.split("#")[1]) if "#" in spec else 1
        at = [i for i, e in enumerate(events) if e["type"] == kind][nth - 1]
        good, bad = events[at], events[at + 1]
        assert bad["type"] == good["type"] and bad["event_id"] != good["event_id"]
        assert bad.get(field) == expected and (field in bad) == (expected is not None)
        rest = {k: v for k, v in bad.items() if k not in (field, "event_id")}
        assert rest == {k: v for k, v in good.items() if k not in (field, "event_id")}
        assert events[-1]["response"]["status"] == "completed"

    run(scenario, spec, delta_ms=200)


def test_oversized_frame_is_one_byte_over_the_clients_limit() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim, max_size=None) as ws:
            await recv_until(ws, "session.created")
            frame = await ws.recv()
            assert isinstance(frame, str) and len(frame.encode()) == OVERSIZED_BYTES
            assert json.loads(frame)["type"] == "conversation.item.retrieved"
        async with open_session(sim, max_size=CLIENT_MAX_BYTES) as ws:
            await recv_until(ws, "session.created")
            _, closed = await frames_until_closed(ws)
            assert closed.sent is not None and closed.sent.code == 1009
        await eventually(lambda: len(sim.close_codes) == 2)
        assert sim.close_codes[1] == 1009

    run(scenario, "oversized@session.created,times=2")


def test_recoverable_error_keeps_the_socket_open() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim) as ws:
            await ws.send(json.dumps({"type": "response.create"}))
            frames = await recv_until(ws, "response.done")
            events = [json.loads(frame) for frame in frames]
            assert types(frames)[1:3] == ["response.created", "error"]
            assert events[2]["error"]["type"] == "server_error"
            assert events[2]["error"]["code"] == "server_error"
            assert events[-1]["response"]["status"] == "completed"
        await eventually(lambda: sim.close_codes == [1000])
        assert sim.connections == 1

    run(scenario, "error@response.created")


@pytest.mark.parametrize(
    ("spec", "code", "error_code"),
    [
        ("fatal_error@session.updated", 4000, "beta_api_shape_disabled"),
        ("expire@session.updated", 1001, "session_expired"),
    ],
)
def test_fatal_error_and_expiry_send_the_error_then_close(
    spec: str, code: int, error_code: str
) -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim) as ws:
            await ws.send(json.dumps(UPDATE))
            frames, closed = await frames_until_closed(ws)
            assert types(frames) == ["session.created", "session.updated", "error"]
            error = json.loads(frames[-1])["error"]
            assert (error["type"], error["code"]) == ("invalid_request_error", error_code)
            assert closed.rcvd is not None and closed.rcvd.code == code
            assert closed.rcvd.reason == error_code

    run(scenario, spec)


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1011, 1012, 1013, 4000])
def test_close_with_the_chosen_code(code: int) -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim) as ws:
            await ws.send(json.dumps(UPDATE))
            frames, closed = await frames_until_closed(ws)
            assert types(frames) == ["session.created", "session.updated"]
            assert closed.rcvd is not None and closed.rcvd.code == code
            assert ws.close_code == code
        await eventually(lambda: sim.close_codes == [code])

    run(scenario, f"close:{code}@session.updated")


@pytest.mark.parametrize(
    ("spec", "status", "retry_after", "code"),
    [
        ("http:401", 401, None, "invalid_api_key"),
        ("http:403", 403, None, "unsupported_country_region_territory"),
        ("http:429:retry-after=2", 429, "2", "rate_limit_exceeded"),
        ("http:429", 429, None, "rate_limit_exceeded"),
        ("http:500", 500, None, None),
        ("http:503", 503, None, None),
    ],
)
def test_handshake_answered_with_the_chosen_status_then_the_next_one_upgrades(
    spec: str, status: int, retry_after: str | None, code: str | None
) -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        with pytest.raises(InvalidStatus) as caught:
            await open_session(sim)
        response = caught.value.response
        assert response.status_code == status
        assert response.headers.get("Retry-After") == retry_after
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.body)["error"]["code"] == code
        assert (sim.handshakes, sim.connections) == (1, 0)
        async with open_session(sim) as ws:
            assert types(await recv_until(ws, "session.created")) == ["session.created"]
        assert (sim.handshakes, sim.connections) == (2, 1)

    sim = run(scenario, spec)
    assert sim.faults_fired == [spec]


def test_conn_and_times_pick_the_connections_a_fault_fires_on() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        for _ in range(2):
            with pytest.raises(InvalidStatus):
                await open_session(sim)
        for expected in ([], [1012], [1012], []):
            async with open_session(sim) as ws:
                await recv_until(ws, "session.created")
                await ws.send(json.dumps(UPDATE))
                await recv_until(ws, "session.updated")
                if expected:
                    _, closed = await frames_until_closed(ws)
                    assert closed.rcvd is not None and [closed.rcvd.code] == expected
        await eventually(lambda: len(sim.close_codes) == 4)
        assert sim.close_codes == [1000, 1012, 1012, 1000]

    sim = run(scenario, "http:503,times=2", "close:1012@session.updated,conn=4,times=2")
    closes = "close:1012@session.updated,conn=4,times=2"
    assert sim.faults_fired == ["http:503,times=2"] * 2 + [closes] * 2


def test_several_faults_on_one_connection_fire_in_event_order() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        async with open_session(sim) as ws:
            await ws.send(json.dumps(UPDATE))
            frames, closed = await frames_until_closed(ws)
            assert types(frames) == [
                None,
                "session.created",
                "error",
                "session.updated",
                None,
                None,
            ]
            assert isinstance(frames[4], bytes) and closed.rcvd is not None
            assert closed.rcvd.code == 1013

    sim = run(
        scenario,
        "garbage",
        "error:invalid_value@session.created",
        "binary@session.updated",
        "non_object@session.updated",
        "close:1013@session.updated",
    )
    assert len(sim.faults_fired) == 5


def test_stopping_the_simulator_releases_a_client_stuck_on_a_stall() -> None:
    async def scenario(sim: RealtimeSimulator) -> None:
        ws = await open_session(sim, ping_interval=None, close_timeout=0.1)
        await recv_until(ws, "session.created")
        await asyncio.wait_for(sim.stop(), 5)
        _, closed = await frames_until_closed(ws)
        assert closed.rcvd is None

    run(scenario, "stall@session.created")
