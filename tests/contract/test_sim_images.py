"""Pictures in the simulator: accepted as the service accepts them, refused with the
service's error naming the part, mentioned in the next reply, and billed as image
tokens in every response that reads them. Every event goes through the oracle."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from device.realtime.sim_images import SimImage
from tests.contract.test_simulator import Core, error_of, only, types
from tests.pictures import encode, gradient

Event = dict[str, Any]


def data_uri(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def picture_item(url: str, detail: str = "auto", text: str = "") -> Event:
    content: list[Event] = [{"type": "input_text", "text": text}] if text else []
    content.append({"type": "input_image", "image_url": url, "detail": detail})
    return {"type": "message", "role": "user", "content": content}


def text_core() -> Core:
    core = Core()
    core.update(output_modalities=["text"])
    return core


def ask(core: Core) -> Event:
    """response.create, streamed to its end; the final response object."""
    core.send({"type": "response.create"})
    response: Event = only(core.stream(), "response.done")["response"]
    return response


def reply_text(response: Event) -> str:
    text: str = response["output"][0]["content"][0]["text"]
    return text


def test_a_picture_is_added_and_the_next_reply_mentions_it() -> None:
    core = text_core()
    url = data_uri(encode(gradient(640, 480)))
    events = core.send(
        {"type": "conversation.item.create", "item": picture_item(url, text="What is it?")}
    )
    assert types(events) == ["conversation.item.added", "conversation.item.done"]
    assert only(events, "conversation.item.done")["item"]["content"][1]["image_url"] == url
    response = ask(core)
    assert reply_text(response) == "I see a 640 by 480 image. You asked: What is it?"
    details = response["usage"]["input_token_details"]
    assert details["image_tokens"] == 425  # 2 tiles of 512 pixels: 2 * 170 + 85
    assert (
        response["usage"]["input_tokens"] == details["text_tokens"] + 425 + details["audio_tokens"]
    )


def test_every_later_response_reads_the_picture_again() -> None:
    core = text_core()
    png = data_uri(encode(gradient(300, 200), "PNG"), "image/png")
    core.send({"type": "conversation.item.create", "item": picture_item(png, "low")})
    first = ask(core)
    second = ask(core)
    assert reply_text(first) == "I see a 300 by 200 image."
    assert first["usage"]["input_token_details"]["image_tokens"] == 85
    assert second["usage"]["input_token_details"]["image_tokens"] == 85
    assert reply_text(second) != reply_text(first)  # the last item is the reply now


def test_a_response_given_its_own_input_counts_only_that() -> None:
    core = text_core()
    url = data_uri(encode(gradient(64, 64)))
    core.send({"type": "conversation.item.create", "item": picture_item(url)})
    core.send({"type": "response.create", "response": {"conversation": "none", "input": []}})
    done = only(core.stream(), "response.done")["response"]
    assert done["usage"]["input_token_details"]["image_tokens"] == 0


@pytest.mark.parametrize(
    ("size", "detail", "tokens"),
    [
        ((640, 480), "low", 85),
        ((640, 480), "high", 425),
        ((512, 512), "auto", 255),  # one tile
        ((2048, 4096), "high", 1105),  # fits 1024x2048, short side to 768: 768x1536, 2x3 tiles
        ((4000, 1000), "high", 765),  # fits 2048x512: nothing to shrink to 768, 4x1 tiles
    ],
)
def test_image_tokens_follow_the_published_tile_rule(
    size: tuple[int, int], detail: str, tokens: int
) -> None:
    assert SimImage(*size, detail).tokens == tokens


JPEG = encode(gradient(32, 32))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/cat.jpg", "Expected a base64-encoded data URL"),
        ("data:image/jpeg;base64,not base64!", "not valid base64"),
        (data_uri(encode(gradient(8, 8), "GIF"), "image/gif"), "Unsupported image type"),
        (data_uri(JPEG, "image/png"), "not a valid PNG file"),
        (data_uri(b"\xff\xd8\xff" + bytes(40)), "could not be decoded"),
        (data_uri(b"plain text, not a picture"), "not a valid JPEG file"),
    ],
    ids=["http-url", "not-base64", "gif", "jpeg-called-png", "damaged-jpeg", "text"],
)
def test_what_is_not_a_png_or_jpeg_data_uri_is_refused(url: str, message: str) -> None:
    core = text_core()
    item = picture_item(url, text="What is it?")
    events = core.send({"type": "conversation.item.create", "event_id": "ev_9", "item": item})
    error = error_of(events)
    assert (error["code"], error["param"]) == ("invalid_value", "item.content[1].image_url")
    assert message in error["message"]
    assert error["event_id"] == "ev_9"
    assert core.session.conversation.items == [], "a refused item must not be added"
