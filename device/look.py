"""The "look" tool: the model takes a picture with the speaker's camera and sees it.

A ``function_call_output`` carries text only, so the picture travels as a user
message with an ``input_image`` part, added to the conversation right after the
call's output (``ToolResult.items``); the output itself just tells the model
that the picture follows. Taking the picture blocks for a second or more and
shrinking it is CPU work, so both run in a worker thread, one picture at a
time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from device.images import ImageError, ImageLimits, PreparedImage, image_message, prepare_image
from device.tools import Tool, ToolResult
from hw.ports import Camera, HardwareError

log = logging.getLogger(__name__)

LOOK_TOOL = "look"
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True)
class CameraSetup:
    """The camera the tool uses and how large its pictures may be when sent."""

    camera: Camera
    limits: ImageLimits


def look_tool(setup: CameraSetup) -> Tool:
    """The ``look`` tool for ``setup``'s camera."""
    one_at_a_time = threading.Lock()  # a second call waits for the camera, not for the loop

    def shoot() -> PreparedImage:
        with one_at_a_time:
            still = setup.camera.capture()
            source = f"the picture from the {setup.camera.name}"
            return prepare_image(still.data, setup.limits, source)

    async def handle(arguments: dict[str, Any]) -> Any:
        try:
            picture = await asyncio.to_thread(shoot)
        except (HardwareError, ImageError) as exc:
            # The model tells the user; the journal keeps the reason, without a traceback.
            log.warning("look: %s", exc)
            return {"error": f"the camera could not take a picture: {exc}"}
        log.info("look: %s", picture.describe())
        result = {
            "picture": "taken",
            "width": picture.width,
            "height": picture.height,
            "note": "The picture follows as the next user message; answer from what it shows.",
        }
        return ToolResult(result, (image_message(picture, setup.limits.detail),))

    return Tool(
        LOOK_TOOL,
        "Take a picture with the speaker's camera and see it. Use it when the user asks "
        "what the speaker sees, or to look at something they show it. The picture arrives "
        "as the next user message.",
        _NO_PARAMETERS,
        handle,
    )
