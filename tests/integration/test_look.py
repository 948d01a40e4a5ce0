"""The speaker looks: the simulator's model calls "look", the daemon on fake hardware takes
a picture with the fake camera, sends the call's output and then the picture as a user
message, and the model's spoken answer describes the picture it received."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

from device.app import Daemon
from device.audio.playback import PlaybackBuffer
from device.config import Config, load_config, with_overrides
from device.conversation import Conversation, ReplyPlayer
from device.realtime.session import RealtimeSession, SessionSettings
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from device.tools import Tool, ToolRegistry, ToolResult
from hw.camera import CameraRequest
from hw.camera_fake import FakeCamera
from hw.factory import HardwareRequest, build_fake
from tests.contract.oracle import client_problems, server_problems
from tests.integration.daemon_run import answer_the_question
from tests.pictures import decode, encode, gradient

Event = dict[str, Any]
RATE_HZ = 24_000


def camera_config(tmp_path: Path, pictures: Path, **camera: Any) -> Config:
    return with_overrides(
        load_config(None),
        device={"hardware": "fake", "state_dir": str(tmp_path / "state")},
        camera={"enabled": True, "image_path": str(pictures), **camera},
        # Every word is a turn and no AI disclosure is said: the one reply is the answer.
        listen={"mode": "always"},
        link={"disclosure": ""},
    )


def fake_hardware(config: Config) -> Any:
    camera = config.camera
    request = CameraRequest(camera.enabled, camera.image_path, camera.max_edge_px)
    return build_fake(HardwareRequest("fake", camera=request), speed=4.0)


def run_looking(config: Config, *, unplugged: bool = False) -> tuple[Daemon, RealtimeSimulator]:
    """A spoken question; the model's first response calls look; wait for the answer."""

    async def body() -> tuple[Daemon, RealtimeSimulator]:
        options = SimulatorOptions(voice_engine="tone", tool_call=("look", "{}"))
        async with RealtimeSimulator(options) as sim:
            hardware = fake_hardware(with_overrides(config, realtime={"url": sim.url}))
            if unplugged:
                assert isinstance(hardware.camera, FakeCamera)
                hardware.camera.unplug()
            live = with_overrides(config, realtime={"url": sim.url})
            daemon = Daemon(live, hardware, "sk-test-look", today=lambda: "2026-11-24")
            await answer_the_question(daemon, hardware)
            return daemon, sim

    daemon, sim = asyncio.run(body())
    assert [p for e in sim.sent for p in server_problems(e)] == []
    assert [p for e in sim.received for p in client_problems(e)] == []
    assert not [e for e in sim.sent if e["type"] == "error"]
    return daemon, sim


def created_items(sim: RealtimeSimulator) -> list[Event]:
    return [e["item"] for e in sim.received if e["type"] == "conversation.item.create"]


def answers(sim: RealtimeSimulator) -> list[Event]:
    return [e["response"] for e in sim.sent if e["type"] == "response.done"]


def test_the_model_looks_and_answers_from_the_picture(tmp_path: Path) -> None:
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "kitchen.png").write_bytes(encode(gradient(1600, 1200), "PNG"))
    config = camera_config(tmp_path, pictures, max_edge_px=800, max_bytes=80_000)
    daemon, sim = run_looking(config)

    update = next(e for e in sim.received if e["type"] == "session.update")
    assert "look" in [t["name"] for t in update["session"]["tools"]]
    output, picture = created_items(sim)
    assert output["type"] == "function_call_output"
    assert json.loads(output["output"])["picture"] == "taken"
    [part] = picture["content"]
    assert (picture["role"], part["type"], part["detail"]) == ("user", "input_image", "auto")
    jpeg = base64.b64decode(part["image_url"].removeprefix("data:image/jpeg;base64,"))
    assert decode(jpeg).size == (800, 600) and len(jpeg) <= 80_000
    # the output, then the picture, then one request for the answer
    kinds = [e["type"] for e in sim.received]
    last_create = len(kinds) - 1 - kinds[::-1].index("conversation.item.create")
    assert kinds[last_create + 1 :].count("response.create") == 1
    call, answer = answers(sim)
    assert call["output"][0]["type"] == "function_call"
    assert answer["status"] == "completed"
    assert answer["output"][0]["content"][0]["transcript"] == "I see a 800 by 600 image."
    assert answer["usage"]["input_token_details"]["image_tokens"] == 765  # 2x2 tiles
    assert isinstance(daemon.hw.camera, FakeCamera) and daemon.hw.camera.captures == 1


def test_an_unplugged_camera_is_answered_with_the_error(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(encode(gradient(64, 48)))
    _, sim = run_looking(camera_config(tmp_path, tmp_path / "a.jpg"), unplugged=True)
    [output] = created_items(sim)  # no picture follows
    assert "unplugged" in json.loads(output["output"])["error"]
    transcript = answers(sim)[1]["output"][0]["content"][0]["transcript"]
    assert transcript.startswith("The tool said:") and "could not take a picture" in transcript


def test_look_is_offered_only_while_the_camera_is_enabled(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(encode(gradient(64, 48)))
    enabled = camera_config(tmp_path, tmp_path / "a.jpg")
    disabled = with_overrides(enabled, camera={"enabled": False})

    async def build() -> None:
        hardware = fake_hardware(enabled)
        daemon = Daemon(enabled, hardware, "sk-test-look")
        assert "look" in daemon.tools.names
        assert daemon.reload(disabled) == []
        assert "look" not in daemon.tools.names  # no picture is taken while disabled
        assert daemon.reload(enabled) == []
        assert "look" in daemon.tools.names
        without = Daemon(disabled, fake_hardware(disabled), "sk-test-look")
        assert without.hw.camera is None and "look" not in without.tools.names
        assert without.reload(enabled) == ["camera.enabled"]  # no camera was opened
        assert "look" not in without.tools.names

    asyncio.run(build())


def test_a_tools_items_are_sent_after_its_output_before_the_answer() -> None:
    """Scripted server events: the order the service needs, whatever the timing."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}

    async def adds(arguments: dict[str, Any]) -> ToolResult:
        return ToolResult({"added": 1}, (item,))

    registry = ToolRegistry([Tool("adds", "Adds an item.", {"type": "object"}, adds)], timeout_s=5)

    async def main() -> list[Event]:
        session = RealtimeSession(SessionSettings(tools=tuple(registry.definitions())))
        conversation = Conversation(
            session, ReplyPlayer(PlaybackBuffer(RATE_HZ), RATE_HZ), tools=registry
        )
        call = {"type": "function_call", "id": "item_1", "status": "completed", "name": "adds",
                "call_id": "call_1", "arguments": "{}", "object": "realtime.item"}  # fmt: skip
        frames = [
            {"type": "response.created", "response": {"id": "r", "status": "in_progress"}},
            {"type": "response.done",
             "response": {"id": "r", "status": "completed", "output": [call]}},
        ]  # fmt: skip
        for frame in frames:
            assert server_problems({"event_id": "e", **frame}) == []
            for parsed in session.receive(json.dumps({"event_id": "e", **frame})):
                conversation.handle(parsed)
        for _ in range(5):
            await asyncio.sleep(0)  # the tool's task, then its done callback
        return session.data_to_send()

    sent = asyncio.run(main())
    assert [e["type"] for e in sent] == [
        "conversation.item.create", "conversation.item.create", "response.create",
    ]  # fmt: skip
    assert sent[0]["item"] == {"type": "function_call_output", "call_id": "call_1",
                               "output": '{"added": 1}'}  # fmt: skip
    assert sent[1]["item"] == item
    assert [p for e in sent for p in client_problems(e)] == []
