"""Function calling end to end: the model calls a device tool, the tool runs in its
own task, its output goes back, and the model answers it, in the order the service
demands (``response.create`` only after the calling response's ``response.done``).

The first part feeds scripted server events (each checked by the SDK oracle) into
the session and the conversation, so each timing can be chosen; the second runs
the real client against the local simulator on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from device.audio.playback import PlaybackBuffer
from device.conversation import Conversation, ReplyPlayer
from device.device_tools import DEVICE_TOOL_NAMES, MemoryControls, device_tools
from device.realtime.client import RealtimeClient, realtime_url
from device.realtime.events import ResponseDone
from device.realtime.session import RealtimeSession, SessionSettings
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from device.state import Event as StateEvent
from device.tools import Tool, ToolOutput, ToolRegistry
from tests.contract.oracle import client_problems, server_problems

Event = dict[str, Any]
RATE_HZ = 24_000
MODEL = "gpt-realtime-1.5"
SAFETY_TIMEOUT_S = 30.0  # bounds a hung test; nothing is asserted about time
SET_30 = '{"action": "set", "percent": 30}'


def sent(session: RealtimeSession) -> list[Event]:
    events = session.data_to_send()
    for event in events:
        assert client_problems(event) == [], event
    return events


async def settle() -> None:
    """Let started tool tasks run, and their done callbacks after them."""
    for _ in range(5):
        await asyncio.sleep(0)


def kinds(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


# -- scripted server events ---------------------------------------------------------------


def call_item(
    call_id: str, arguments: str, name: str = "volume", status: str = "completed"
) -> Event:
    return {
        "id": f"item_{call_id}",
        "object": "realtime.item",
        "type": "function_call",
        "status": status,
        "name": name,
        "call_id": call_id,
        "arguments": arguments,
    }


class Script:
    """One session and conversation fed server events by hand; the tools are gated."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self.controls = MemoryControls()
        self.gate = asyncio.Event()
        self.wakes = 0
        registry = ToolRegistry(tools if tools is not None else self._gated_tools(), timeout_s=5)
        self.session = RealtimeSession(SessionSettings(tools=tuple(registry.definitions())))
        player = ReplyPlayer(PlaybackBuffer(RATE_HZ), RATE_HZ)
        self.conversation = Conversation(self.session, player, tools=registry, on_send=self._wake)
        self.state_events: list[StateEvent] = []
        self._n = 0

    def _wake(self) -> None:
        self.wakes += 1

    def _gated_tools(self) -> list[Tool]:
        async def volume(arguments: dict[str, Any]) -> dict[str, Any]:
            await self.gate.wait()
            self.controls.set_volume(arguments.get("percent", self.controls.volume))
            return {"volume": self.controls.volume}

        async def leds(arguments: dict[str, Any]) -> dict[str, Any]:
            await self.gate.wait()
            return {"color": arguments["color"]}

        schema = {
            "type": "object",
            "properties": {
                "action": {"type": "string"},
                "percent": {"type": "integer", "maximum": 100},
                "color": {"type": "string"},
            },
        }
        return [
            Tool("volume", "Set the volume.", schema, volume),
            Tool("leds", "Light the LEDs.", schema, leds),
        ]

    def server(self, kind: str, **fields: Any) -> None:
        self._n += 1
        event = {"type": kind, "event_id": f"event_{self._n}", **fields}
        assert server_problems(event) == [], event
        for parsed in self.session.receive(json.dumps(event)):
            self.state_events += self.conversation.handle(parsed)

    def created(self, response_id: str) -> None:
        self.server(
            "response.created",
            response={
                "id": response_id,
                "object": "realtime.response",
                "status": "in_progress",
                "output": [],
            },
        )

    def call(self, response_id: str, item: Event, output_index: int = 0) -> None:
        ids = {
            "response_id": response_id,
            "item_id": item["id"],
            "output_index": output_index,
            "call_id": item["call_id"],
        }
        self.server(
            "response.function_call_arguments.done",
            **ids,
            name=item["name"],
            arguments=item["arguments"],
        )
        self.server(
            "response.output_item.done",
            response_id=response_id,
            output_index=output_index,
            item=item,
        )

    def done(self, response_id: str, output: list[Event], status: str = "completed") -> None:
        details = None if status == "completed" else {"type": status, "reason": "turn_detected"}
        self.server(
            "response.done",
            response={
                "id": response_id,
                "object": "realtime.response",
                "status": status,
                "status_details": details,
                "output": output,
            },
        )

    async def release(self) -> None:
        self.gate.set()
        for _ in range(5):  # the tool tasks and their done callbacks
            await settle()


def outputs(events: list[Event]) -> list[tuple[str, Any]]:
    return [
        (e["item"]["call_id"], json.loads(e["item"]["output"]))
        for e in events
        if e["type"] == "conversation.item.create"
    ]


def scripted(body: Callable[[Script], Awaitable[None]], tools: list[Tool] | None = None) -> None:
    async def main() -> None:
        script = Script(tools)
        sent(script.session)  # nothing from set-up matters here
        await asyncio.wait_for(body(script), SAFETY_TIMEOUT_S)

    asyncio.run(main())


def test_a_result_ready_before_response_done_waits_for_it() -> None:
    async def body(s: Script) -> None:
        item = call_item("call_1", SET_30)
        s.created("resp_1")
        s.call("resp_1", item)
        await s.release()
        assert s.controls.volume == 30
        assert sent(s.session) == [], "nothing may be sent while resp_1 runs"
        s.done("resp_1", [item])
        events = sent(s.session)
        assert kinds(events) == ["conversation.item.create", "response.create"]
        assert events[0]["item"] == {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": '{"volume": 30}',
        }
        assert s.wakes == 0, "queued while handling an event: the receiver wakes the sender"

    scripted(body)


def test_a_result_after_response_done_wakes_the_sender() -> None:
    async def body(s: Script) -> None:
        item = call_item("call_1", SET_30)
        s.created("resp_1")
        s.call("resp_1", item)
        s.done("resp_1", [item])
        assert sent(s.session) == []
        await s.release()
        assert s.wakes == 1
        assert kinds(sent(s.session)) == ["conversation.item.create", "response.create"]

    scripted(body)


def test_several_calls_in_one_response_get_one_response_create() -> None:
    async def body(s: Script) -> None:
        volume, leds = call_item("call_a", SET_30), call_item("call_b", '{"color": "red"}', "leds")
        s.created("resp_1")
        s.call("resp_1", volume, 0)
        s.call("resp_1", leds, 1)
        s.done("resp_1", [volume, leds])
        await s.release()
        events = sent(s.session)
        assert kinds(events) == ["conversation.item.create"] * 2 + ["response.create"]
        assert outputs(events) == [("call_a", {"volume": 30}), ("call_b", {"color": "red"})]

    scripted(body)


def test_each_call_runs_once_whichever_events_announce_it() -> None:
    ran: list[dict[str, Any]] = []
    tool = Tool("volume", "Set the volume.", {"type": "object"}, ran.append)

    async def body(s: Script) -> None:
        item = call_item("call_1", "{}")
        s.created("resp_1")
        s.call("resp_1", item)  # arguments.done, then output_item.done
        s.done("resp_1", [item])  # and response.done lists it once more
        await settle()
        assert s.conversation.tool_calls == 1 and len(ran) == 1
        assert kinds(sent(s.session)) == ["conversation.item.create", "response.create"]
        s.done("resp_2", [item])  # a call already answered is not run again
        await settle()
        assert len(ran) == 1 and sent(s.session) == []

    scripted(body, [tool])


def test_a_call_named_only_by_its_item_waits_for_the_item() -> None:
    ran: list[dict[str, Any]] = []
    tool = Tool("volume", "Set the volume.", {"type": "object"}, ran.append)

    async def body(s: Script) -> None:
        item = call_item("call_1", "{}")
        s.created("resp_1")
        # Services before the GA schema leave ``name`` out of arguments.done (the
        # oracle's schema requires it, so this frame goes in unchecked).
        frame = {
            "type": "response.function_call_arguments.done",
            "event_id": "e",
            "response_id": "resp_1",
            "item_id": item["id"],
            "output_index": 0,
            "call_id": "call_1",
            "arguments": "{}",
        }
        for parsed in s.session.receive(json.dumps(frame)):
            s.conversation.handle(parsed)
        assert s.conversation.tool_calls == 0
        s.server("response.output_item.done", response_id="resp_1", output_index=0, item=item)
        s.done("resp_1", [item])
        await settle()
        assert s.conversation.tool_calls == 1 and len(ran) == 1
        assert kinds(sent(s.session)) == ["conversation.item.create", "response.create"]

    scripted(body, [tool])


def test_response_create_waits_while_another_response_runs() -> None:
    async def body(s: Script) -> None:
        item = call_item("call_1", SET_30)
        s.created("resp_1")
        s.call("resp_1", item)
        s.done("resp_1", [item])
        s.created("resp_2")  # the user spoke: server VAD started a response
        await s.release()
        assert kinds(sent(s.session)) == ["conversation.item.create"]
        s.done("resp_2", [])
        assert kinds(sent(s.session)) == ["response.create"]

    scripted(body)


def test_a_refused_response_create_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    async def body(s: Script) -> None:
        item = call_item("call_1", SET_30)
        s.created("resp_1")
        s.call("resp_1", item)
        s.done("resp_1", [item])
        await s.release()
        create = sent(s.session)[-1]
        s.server(
            "error",
            error={
                "type": "invalid_request_error",
                "code": "conversation_already_has_active_response",
                "message": "Conversation already has an active response",
                "param": None,
                "event_id": create["event_id"],
            },
        )
        s.created("resp_2")
        s.done("resp_2", [])
        assert sent(s.session) == []
        assert StateEvent.REPLY_FINISHED in s.state_events

    with caplog.at_level(logging.DEBUG, logger="device.conversation"):
        scripted(body)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_reply_is_finished_only_after_the_answer_to_the_tool() -> None:
    async def body(s: Script) -> None:
        item = call_item("call_1", SET_30)
        s.created("resp_1")
        s.call("resp_1", item)
        s.done("resp_1", [item])
        await s.release()
        assert StateEvent.REPLY_FINISHED not in s.state_events
        sent(s.session)
        s.created("resp_2")
        assert StateEvent.REPLY_FINISHED not in s.state_events
        s.done("resp_2", [])
        assert s.state_events.count(StateEvent.REPLY_FINISHED) == 1

    scripted(body)


def test_a_cancelled_response_gets_outputs_but_no_new_response() -> None:
    async def body(s: Script) -> None:
        item = call_item("call_1", SET_30, status="incomplete")
        s.created("resp_1")
        s.call("resp_1", item)
        s.done("resp_1", [item], status="cancelled")
        await s.release()
        assert kinds(sent(s.session)) == ["conversation.item.create"]
        assert s.state_events.count(StateEvent.REPLY_FINISHED) == 1

    scripted(body)


def test_results_after_the_connection_closed_are_dropped() -> None:
    async def body(s: Script) -> None:
        item = call_item("call_1", SET_30)
        s.created("resp_1")
        s.call("resp_1", item)
        s.done("resp_1", [item])
        s.conversation.close()
        await s.release()
        assert sent(s.session) == [] and s.wakes == 0
        s.created("resp_2")
        s.call("resp_2", call_item("call_2", SET_30))
        assert s.conversation.tool_calls == 1, "a closed conversation starts no calls"

    scripted(body)


class BrokenRegistry(ToolRegistry):
    async def run(self, name: str, arguments_json: str) -> ToolOutput:
        raise RuntimeError("a bug in the registry")


@pytest.mark.parametrize(
    ("registry", "error"),
    [(None, "unknown tool 'volume'"), (BrokenRegistry([], timeout_s=1), "failed: RuntimeError")],
    ids=["no-tools", "broken-registry"],
)
def test_every_call_gets_an_output_even_without_working_tools(
    registry: ToolRegistry | None, error: str
) -> None:
    async def main() -> None:
        session = RealtimeSession(SessionSettings())
        player = ReplyPlayer(PlaybackBuffer(RATE_HZ), RATE_HZ)
        conversation = Conversation(session, player, tools=registry)
        item = call_item("call_1", "{}")
        frames = [
            {"type": "response.created", "response": {"id": "r", "status": "in_progress"}},
            {
                "type": "response.done",
                "response": {"id": "r", "status": "completed", "output": [item]},
            },
        ]
        for frame in frames:
            for parsed in session.receive(json.dumps({"event_id": "e", **frame})):
                conversation.handle(parsed)
        await settle()
        events = sent(session)
        assert kinds(events) == ["conversation.item.create", "response.create"]
        assert json.loads(events[0]["item"]["output"])["error"].startswith(error)

    asyncio.run(main())


# -- against the simulator ------------------------------------------------------------------


@dataclass
class Wire:
    """What crossed the socket, in order, as the device saw it."""

    log: list[tuple[str, Event]] = field(default_factory=list)

    def index(self, direction: str, kind: str, nth: int = 0, **match: Any) -> int:
        hits = [
            i
            for i, (d, e) in enumerate(self.log)
            if d == direction and e["type"] == kind and all(e.get(k) == v for k, v in match.items())
        ]
        return hits[nth]

    def events(self, direction: str, kind: str) -> list[Event]:
        return [e for d, e in self.log if d == direction and e["type"] == kind]


class Device:
    """The session, the conversation and the client, wired as the daemon wires them."""

    def __init__(self, url: str, registry: ToolRegistry, *, push_to_talk: bool) -> None:
        turn = None if push_to_talk else {"type": "server_vad", "silence_duration_ms": 500}
        settings = SessionSettings(turn_detection=turn, tools=tuple(registry.definitions()))
        self.session = RealtimeSession(settings)
        self.playback = PlaybackBuffer(RATE_HZ)
        self.send_wanted = asyncio.Event()
        self.conversation = Conversation(
            self.session,
            ReplyPlayer(self.playback, RATE_HZ),
            tools=registry,
            on_send=self.send_wanted.set,
        )
        self.client = RealtimeClient(realtime_url(url, MODEL), "sk-test-tools")
        self.wire = Wire()
        self.state_events: list[StateEvent] = []
        self.responses_done = 0
        self._progress = asyncio.Event()

    async def _sender(self) -> None:
        while True:
            await self.send_wanted.wait()
            self.send_wanted.clear()
            for event in self.session.data_to_send():
                self.wire.log.append(("sent", event))
                await self.client.send(event)

    async def _receiver(self) -> None:
        while True:
            frame = await self.client.recv()
            self.wire.log.append(("recv", json.loads(frame)))
            for event in self.session.receive(frame):
                self.state_events += self.conversation.handle(event)
                if isinstance(event, ResponseDone):
                    self.responses_done += 1
            self.send_wanted.set()
            self._progress.set()

    async def until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._progress.wait()
            self._progress.clear()

    def play_everything(self) -> None:
        """What the audio callback would do: play the queued reply to its end."""
        self.playback.read(self.playback.queued_frames + 1)
        for played in self.playback.take_events():
            self.state_events += self.conversation.on_playback(played, at_s=0.0)

    async def run(self, turn: Callable[[Device], Awaitable[None]]) -> None:
        await self.client.connect()
        tasks = [asyncio.create_task(self._sender()), asyncio.create_task(self._receiver())]
        try:
            self.session.configure()
            self.send_wanted.set()
            await self.until(lambda: self.session.configured)
            await turn(self)
        finally:
            self.conversation.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.client.close()

    def ask(self, text: str) -> None:
        self.session.create_item(
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        )
        self.session.create_response()
        self.send_wanted.set()

    def speak(self) -> None:
        rng = np.random.default_rng(3)
        burst = (rng.standard_normal(24 * 900) * 3000).astype("<i2").tobytes()
        speech = bytes(48 * 200) + burst + bytes(48 * 900)
        for start in range(0, len(speech), 48 * 40):
            self.session.append_audio(speech[start : start + 48 * 40])
        self.send_wanted.set()


def on_simulator(
    tool_call: tuple[str, str],
    registry: ToolRegistry,
    push_to_talk: bool,
    turn: Callable[[Device], Awaitable[None]],
) -> Device:
    options = SimulatorOptions(voice_engine="tone", tool_call=tool_call)

    async def main() -> tuple[Device, RealtimeSimulator]:
        async with RealtimeSimulator(options) as sim:
            device = Device(sim.url, registry, push_to_talk=push_to_talk)
            await asyncio.wait_for(device.run(turn), SAFETY_TIMEOUT_S)
        return device, sim

    device, sim = asyncio.run(main())
    assert sim.received == [e for d, e in device.wire.log if d == "sent"]
    problems = [p for e in sim.sent for p in server_problems(e)]
    problems += [p for d, e in device.wire.log if d == "sent" for p in client_problems(e)]
    assert problems == [], "\n".join(problems)
    return device


def device_registry(controls: MemoryControls) -> ToolRegistry:
    return ToolRegistry(device_tools(controls, DEVICE_TOOL_NAMES), timeout_s=5)


async def one_question(device: Device) -> None:
    device.ask("Set the volume to 30, please.")
    await device.until(lambda: device.responses_done >= 2)


@pytest.mark.parametrize("push_to_talk", [True, False], ids=["push-to-talk", "server-vad"])
def test_set_volume_round_trip_on_the_wire(push_to_talk: bool) -> None:
    controls = MemoryControls(volume=70)

    async def turn(device: Device) -> None:
        if push_to_talk:
            device.ask("Set the volume to 30, please.")
        else:
            device.speak()
        await device.until(lambda: device.responses_done >= 2)
        device.play_everything()

    device = on_simulator(("volume", SET_30), device_registry(controls), push_to_talk, turn)
    wire = device.wire
    assert controls.volume == 30
    [call] = [
        e["item"]
        for e in wire.events("recv", "response.output_item.done")
        if e["item"]["type"] == "function_call"
    ]
    assert (call["name"], call["arguments"]) == ("volume", SET_30)
    [output] = wire.events("sent", "conversation.item.create")[-1:]
    assert output["item"] == {
        "type": "function_call_output",
        "call_id": call["call_id"],
        "output": '{"volume": 30}',
    }
    first_done = wire.index("recv", "response.done")
    follow_up = wire.index("sent", "response.create", nth=0 if not push_to_talk else 1)
    assert wire.index("sent", "conversation.item.create", nth=-1) < follow_up
    assert first_done < follow_up, "response.create before the calling response was done"
    assert not [e for e in wire.events("recv", "error")], wire.events("recv", "error")
    second = wire.events("recv", "response.done")[1]["response"]
    assert second["status"] == "completed"
    assert second["output"][0]["content"][0]["transcript"] == 'The tool said: {"volume": 30}'
    assert wire.events("recv", "response.output_audio.delta")
    assert device.state_events.count(StateEvent.REPLY_FINISHED) == 1
    assert device.conversation.tool_calls == 1


def test_a_slow_tool_is_answered_when_it_finishes() -> None:
    controls = MemoryControls(volume=70)

    async def slow(arguments: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.05)  # long after the calling response is done
        controls.set_volume(arguments["percent"])
        return {"volume": controls.volume}

    schema = {
        "type": "object",
        "properties": {"action": {"type": "string"}, "percent": {"type": "integer"}},
    }
    registry = ToolRegistry([Tool("volume", "Set the volume.", schema, slow)], timeout_s=5)
    device = on_simulator(("volume", SET_30), registry, True, one_question)
    wire = device.wire
    assert controls.volume == 30
    assert wire.index("recv", "response.done") < wire.index("sent", "response.create", nth=1)
    assert wire.events("recv", "response.done")[1]["response"]["status"] == "completed"


def test_bad_arguments_get_an_error_output_and_the_conversation_goes_on() -> None:
    controls = MemoryControls(volume=70)

    async def turn(device: Device) -> None:
        await one_question(device)
        device.ask("Never mind. How are you?")
        await device.until(lambda: device.responses_done >= 3)

    bad = ("volume", '{"action": "set", "percent": 300}')
    device = on_simulator(bad, device_registry(controls), True, turn)
    wire = device.wire
    assert controls.volume == 70
    output = json.loads(wire.events("sent", "conversation.item.create")[1]["item"]["output"])
    assert output == {"error": "arguments.percent: 300 is above the maximum 100"}
    done = [e["response"] for e in wire.events("recv", "response.done")]
    assert [r["status"] for r in done] == ["completed"] * 3
    assert "arguments.percent" in done[1]["output"][0]["content"][0]["transcript"]
    assert done[2]["output"][0]["type"] == "message"
    assert not wire.events("recv", "error")
