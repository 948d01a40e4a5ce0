"""The "look" tool: a picture from the camera becomes a user message, its output says so,
and a camera or picture that fails becomes an error the model can tell the user about."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from pathlib import Path

from device.device_tools import DEVICE_TOOL_NAMES, MemoryControls, device_tools
from device.images import ImageLimits
from device.look import CameraSetup, look_tool
from device.tools import ToolOutput, ToolRegistry
from hw.camera_fake import FakeCamera
from hw.ports import Still
from tests.contract.oracle import client_problems
from tests.pictures import decode, encode, gradient

LIMITS = ImageLimits(max_edge_px=512, max_bytes=60_000, detail="low")


def look(setup: CameraSetup) -> ToolOutput:
    registry = ToolRegistry([look_tool(setup)], timeout_s=10)
    return asyncio.run(registry.run("look", "{}"))


def test_the_picture_follows_the_output_as_a_user_message(tmp_path: Path) -> None:
    (tmp_path / "desk.png").write_bytes(encode(gradient(1600, 1200), "PNG"))
    camera = FakeCamera(tmp_path / "desk.png")
    output = look(CameraSetup(camera, LIMITS))
    assert json.loads(output.text) == {
        "picture": "taken",
        "width": 512,
        "height": 384,
        "note": "The picture follows as the next user message; answer from what it shows.",
    }
    [item] = output.items
    assert (item["type"], item["role"]) == ("message", "user")
    [part] = item["content"]
    assert (part["type"], part["detail"]) == ("input_image", "low")
    prefix = "data:image/jpeg;base64,"
    jpeg = base64.b64decode(part["image_url"].removeprefix(prefix), validate=True)
    assert len(jpeg) <= LIMITS.max_bytes
    assert decode(jpeg).size == (512, 384)
    assert client_problems({"type": "conversation.item.create", "item": dict(item)}) == []
    assert camera.captures == 1


def test_call_gives_the_output_text_alone(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(encode(gradient(64, 48)))
    registry = ToolRegistry([look_tool(CameraSetup(FakeCamera(tmp_path), LIMITS))], timeout_s=10)
    assert json.loads(asyncio.run(registry.call("look", "{}")))["picture"] == "taken"


def test_a_camera_that_fails_is_an_error_output_and_no_picture(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(encode(gradient(64, 48)))
    camera = FakeCamera(tmp_path)
    camera.unplug()
    output = look(CameraSetup(camera, LIMITS))
    error = json.loads(output.text)["error"]
    assert error.startswith("the camera could not take a picture: ")
    assert "unplugged" in error
    assert output.items == ()


def test_a_damaged_picture_is_an_error_output_naming_the_camera(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"garbage" * 10)
    output = look(CameraSetup(FakeCamera(tmp_path / "broken.jpg"), LIMITS))
    error = json.loads(output.text)["error"]
    assert "the picture from the fake camera" in error
    assert output.items == ()


def test_look_is_offered_only_with_a_camera_and_when_enabled(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(encode(gradient(64, 48)))
    setup = CameraSetup(FakeCamera(tmp_path), LIMITS)
    names = [t.name for t in device_tools(MemoryControls(), DEVICE_TOOL_NAMES, camera=setup)]
    assert names == list(DEVICE_TOOL_NAMES)
    assert names[-1] == "look"
    without = device_tools(MemoryControls(), ["time", "look"], camera=None)
    assert [t.name for t in without] == ["time"]
    not_enabled = device_tools(MemoryControls(), ["time"], camera=setup)
    assert [t.name for t in not_enabled] == ["time"]


class OneAtATime:
    """A camera that records whether two pictures were ever taken at once."""

    name = "slow camera"

    def __init__(self) -> None:
        self.busy = threading.Lock()
        self.overlapped = False
        self.captures = 0

    def capture(self) -> Still:
        if not self.busy.acquire(blocking=False):
            self.overlapped = True
            self.busy.acquire()
        try:
            time.sleep(0.02)  # long enough for a second call to arrive meanwhile
            self.captures += 1
            return Still(encode(gradient(64, 48)), "image/jpeg")
        finally:
            self.busy.release()

    def close(self) -> None:
        return None


def test_two_looks_at_once_take_their_pictures_one_after_the_other() -> None:
    camera = OneAtATime()
    registry = ToolRegistry([look_tool(CameraSetup(camera, LIMITS))], timeout_s=10)

    async def both() -> list[ToolOutput]:
        return list(await asyncio.gather(registry.run("look", ""), registry.run("look", "")))

    outputs = asyncio.run(both())
    assert [json.loads(o.text)["picture"] for o in outputs] == ["taken", "taken"]
    assert camera.captures == 2
    assert not camera.overlapped
