"""Pictures in the simulator: ``input_image`` parts checked as the service checks them,
the reply that shows the picture arrived, and the tokens it costs.

A picture must be a base64 data URI of a PNG or JPEG (the only formats the
service documents); anything else is refused with ``invalid_value`` naming
``item.content[i].image_url``, and nothing is added to the conversation.

Image tokens follow OpenAI's published rule for its vision models, since the
Realtime API publishes none of its own: ``low`` detail costs 85 tokens; ``high``
(and ``auto``) scales the picture to fit 2048x2048, then its short side down to
768, and costs 170 tokens per 512-pixel tile plus 85. Every response reads the
whole conversation, so every response after a picture counts it again, as the
service bills it.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from device.realtime.sim_schema import SimError

if TYPE_CHECKING:
    from device.realtime.sim_conversation import Conversation

_DATA_URI = re.compile(r"data:(?P<mime>[^;,]*);base64,(?P<payload>.*)", re.DOTALL)
_SIGNATURES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
_MIME_NAMES = {"image/png": "image/png", "image/jpeg": "image/jpeg", "image/jpg": "image/jpeg"}
LOW_DETAIL_TOKENS = 85
TILE_TOKENS = 170
TILE_PX = 512


@dataclass(frozen=True)
class SimImage:
    """What the simulated model sees of one picture."""

    width: int
    height: int
    detail: str = "auto"

    @property
    def tokens(self) -> int:
        if self.detail == "low":
            return LOW_DETAIL_TOKENS
        scale = min(1.0, 2048 / max(self.width, self.height))
        width, height = self.width * scale, self.height * scale
        scale = min(1.0, 768 / min(width, height))
        tiles = math.ceil(width * scale / TILE_PX) * math.ceil(height * scale / TILE_PX)
        return TILE_TOKENS * tiles + LOW_DETAIL_TOKENS


def _invalid(param: str, why: str) -> SimError:
    return SimError("invalid_value", f"Invalid '{param}'. {why}", param)


def decode_image(url: Any, param: str, detail: str = "auto") -> SimImage:
    """The picture in a data URI; raises SimError (``invalid_value`` at ``param``)."""
    match = _DATA_URI.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        raise _invalid(param, "Expected a base64-encoded data URL with an image MIME type "
                       "(e.g. 'data:image/png;base64,...').")  # fmt: skip
    mime = _MIME_NAMES.get(match["mime"].lower())
    if mime is None:
        raise _invalid(param, f"Unsupported image type '{match['mime']}'; use PNG or JPEG.")
    try:
        data = base64.b64decode(match["payload"], validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(param, "The image data is not valid base64.") from None
    if not data.startswith(_SIGNATURES[mime]):
        raise _invalid(param, f"The image data is not a valid {mime.split('/')[1].upper()} file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            width, height = Image.open(io.BytesIO(data)).size  # reads the header only
    except Exception:  # any failure to read the header: the file is damaged
        raise _invalid(param, "The image could not be decoded.") from None
    return SimImage(width, height, detail)


def _parts(item: Mapping[str, Any]) -> Iterable[tuple[int, Mapping[str, Any]]]:
    if item.get("type") != "message" or item.get("role") != "user":
        return ()
    return (
        (index, part)
        for index, part in enumerate(item.get("content") or [])
        if isinstance(part, Mapping) and part.get("type") == "input_image"
    )


def check_item_images(item: Mapping[str, Any], where: str = "item") -> list[SimImage]:
    """Every picture of a user message; raises SimError for the first bad one."""
    images: list[SimImage] = []
    for index, part in _parts(item):
        param = f"{where}.content[{index}].image_url"
        images.append(decode_image(part.get("image_url"), param, str(part.get("detail") or "auto")))
    return images


def image_reply(item: Mapping[str, Any]) -> str | None:
    """What the simulated model says after a user message with pictures, else None."""
    images = check_item_images(item)
    if not images:
        return None
    sizes = [f"{image.width} by {image.height}" for image in images]
    seen = f"I see a {sizes[0]} image." if len(sizes) == 1 else (
        f"I see {len(sizes)} images: {', '.join(sizes[:-1])} and {sizes[-1]}.")  # fmt: skip
    asked = " ".join(
        str(part.get("text", "")).strip()
        for part in item.get("content") or []
        if isinstance(part, Mapping) and part.get("type") == "input_text"
    ).strip()
    return f"{seen} You asked: {asked}" if asked else seen


def input_image_tokens(conversation: Conversation, entries: list[dict[str, Any]] | None) -> int:
    """Image tokens a response reads: the conversation's, or those of its ``input``."""
    if entries is None:
        items = [stored.data for stored in conversation.items]
    else:
        items = []
        for entry in entries:
            if entry.get("type") == "item_reference":
                stored = conversation.find(entry["id"])
                items += [stored.data] if stored is not None else []
            else:
                items.append(entry)
    total = 0
    for item in items:
        try:
            total += sum(image.tokens for image in check_item_images(item))
        except SimError:
            continue  # out-of-band input is not checked on the way in; bad pictures cost nothing
    return total
