"""Pictures made fit to send: size, bytes, orientation, transparency, grey, and refusals."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device.images import (
    MAX_SOURCE_PIXELS,
    QUALITIES,
    ImageError,
    ImageLimits,
    image_message,
    prepare_file,
    prepare_image,
)
from tests.contract.oracle import client_problems
from tests.pictures import decode, encode, gradient, noise, png_claiming

ORIENTATION = 0x0112
ROTATED_90_CW = 6  # EXIF: turn the stored pixels 90 degrees clockwise to show them


def test_a_large_photo_is_scaled_to_the_edge_keeping_its_shape() -> None:
    data = encode(gradient(2400, 1800), quality=95)
    picture = prepare_image(data, ImageLimits(max_edge_px=1024, max_bytes=300_000))
    assert (picture.width, picture.height) == (1024, 768)
    shown = decode(picture.jpeg)
    assert (shown.format, shown.size) == ("JPEG", (1024, 768))
    assert len(picture.jpeg) <= 300_000
    assert (picture.source_width, picture.source_height) == (2400, 1800)
    assert (picture.source_bytes, picture.source_format) == (len(data), "JPEG")
    prefix = "data:image/jpeg;base64,"
    assert picture.data_uri.startswith(prefix)
    assert base64.b64decode(picture.data_uri[len(prefix) :], validate=True) == picture.jpeg


def test_a_tall_picture_is_scaled_by_its_longer_edge() -> None:
    picture = prepare_image(encode(gradient(600, 2400), "PNG"), ImageLimits(max_edge_px=800))
    assert (picture.width, picture.height) == (200, 800)


def test_a_small_picture_is_never_enlarged() -> None:
    picture = prepare_image(encode(gradient(200, 100), "PNG"), ImageLimits(max_edge_px=1024))
    assert (picture.width, picture.height) == (200, 100)
    assert picture.quality == QUALITIES[0]


def test_low_detail_sends_at_most_512_pixels() -> None:
    data = encode(gradient(1600, 1200))
    assert prepare_image(data, ImageLimits(max_edge_px=1024, detail="low")).width == 512
    assert prepare_image(data, ImageLimits(max_edge_px=1024, detail="high")).width == 1024


def test_over_budget_the_quality_drops_before_the_size() -> None:
    data = encode(noise(1024, 768), "PNG")
    at_best = prepare_image(data, ImageLimits(max_bytes=5_000_000))
    budget = len(at_best.jpeg) * 2 // 3
    assert at_best.quality == QUALITIES[0]
    picture = prepare_image(data, ImageLimits(max_bytes=budget))
    assert len(picture.jpeg) <= budget
    assert (picture.width, picture.height) == (1024, 768), "shrunk although quality could drop"
    assert picture.quality < QUALITIES[0]


def test_when_no_quality_fits_the_picture_shrinks_and_keeps_its_shape() -> None:
    original = noise(1024, 768)
    assert len(encode(original, quality=QUALITIES[-1])) > 20_000  # so it must shrink
    picture = prepare_image(encode(original, "PNG"), ImageLimits(max_bytes=20_000))
    assert len(picture.jpeg) <= 20_000
    assert picture.width < 1024
    assert abs(picture.width / picture.height - 4 / 3) < 0.02


def test_a_budget_nothing_fits_is_a_clear_error() -> None:
    with pytest.raises(
        ImageError, match=r"photo\.png: does not fit in 300 bytes.*camera\.max_bytes"
    ):
        prepare_image(encode(noise(400, 300), "PNG"), ImageLimits(max_bytes=300), "photo.png")


def test_the_exif_orientation_turns_the_picture_upright() -> None:
    stored = Image.new("RGB", (300, 200), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 150, 200))  # left half red, as stored
    exif = Image.Exif()
    exif[ORIENTATION] = ROTATED_90_CW
    picture = prepare_image(encode(stored, exif=exif.tobytes()), ImageLimits())
    shown = decode(picture.jpeg).convert("RGB")
    assert shown.size == (200, 300)  # portrait once turned
    top, bottom = shown.getpixel((100, 40)), shown.getpixel((100, 260))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 and top[2] < 60, top  # the stored left edge is now on top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_metadata_never_leaves_the_device() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS info: where the photo was taken
    picture = prepare_image(encode(gradient(320, 240), exif=exif.tobytes()), ImageLimits())
    assert dict(decode(picture.jpeg).getexif()) == {}


def test_transparency_is_flattened_onto_white() -> None:
    rgba = Image.new("RGBA", (200, 100), (255, 0, 0, 0))  # red, but fully transparent
    rgba.paste((0, 0, 0, 255), (0, 0, 100, 100))  # left half opaque black
    shown = decode(prepare_image(encode(rgba, "PNG"), ImageLimits()).jpeg).convert("RGB")
    assert shown.getpixel((50, 50)) == pytest.approx((0, 0, 0), abs=12)
    assert shown.getpixel((150, 50)) == pytest.approx((255, 255, 255), abs=12)


def test_a_palette_png_with_a_transparent_colour_is_flattened_onto_white() -> None:
    palette = Image.new("P", (100, 100), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (50, 0, 100, 100))  # right half red
    data = encode(palette, "PNG", transparency=0)  # colour 0 (the left half) is see-through
    shown = decode(prepare_image(data, ImageLimits()).jpeg).convert("RGB")
    assert shown.getpixel((20, 50)) == pytest.approx((255, 255, 255), abs=12)
    assert shown.getpixel((80, 50)) == pytest.approx((255, 0, 0), abs=20)


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_grey_stays_grey(mode: str) -> None:
    grey = gradient(300, 200, mode)
    shown = decode(prepare_image(encode(grey, "PNG"), ImageLimits()).jpeg)
    assert shown.mode == "L"


def test_sixteen_bit_grey_keeps_its_range() -> None:
    ramp = np.linspace(0, 65535, 300, dtype=np.float64)[None, :].repeat(100, 0).astype(np.uint16)
    shown = decode(prepare_image(encode(Image.fromarray(ramp), "PNG"), ImageLimits()).jpeg)
    assert shown.mode == "L"
    darkest, brightest = shown.getextrema()
    assert isinstance(darkest, int) and isinstance(brightest, int)
    assert darkest < 10 and brightest > 245
    middle = shown.getpixel((150, 50))
    assert isinstance(middle, int) and 100 < middle < 156, "16-bit values were clipped, not scaled"


def test_not_a_picture_is_refused_with_what_to_do() -> None:
    with pytest.raises(ImageError, match=r"notes\.txt: is not a picture .* convert it to JPEG"):
        prepare_image(b"shopping list: milk, eggs\n", ImageLimits(), "notes.txt")


def test_a_truncated_file_is_refused() -> None:
    data = encode(noise(400, 300), quality=90)
    with pytest.raises(ImageError, match=r"cut\.jpg: is truncated or damaged"):
        prepare_image(data[: len(data) // 2], ImageLimits(), "cut.jpg")


def test_a_format_not_accepted_is_named() -> None:
    with pytest.raises(ImageError, match=r"scan\.ppm: is a PPM picture, which is not accepted"):
        prepare_image(encode(gradient(40, 30), "PPM"), ImageLimits(), "scan.ppm")


@pytest.mark.parametrize(("width", "height"), [(8000, 8000), (20_000, 20_000)])
def test_too_many_pixels_is_refused_before_decoding(width: int, height: int) -> None:
    assert width * height > MAX_SOURCE_PIXELS
    with pytest.raises(ImageError, match=r"bomb\.png: has too many pixels.*scale it down"):
        prepare_image(png_claiming(width, height), ImageLimits(), "bomb.png")


def test_files_that_are_missing_or_not_files(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"nope\.jpg: does not exist"):
        prepare_file(tmp_path / "nope.jpg", ImageLimits())
    with pytest.raises(ImageError, match="is a directory, not a picture"):
        prepare_file(tmp_path, ImageLimits())
    photo = tmp_path / "photo.webp"
    photo.write_bytes(encode(gradient(640, 480), "WEBP"))
    assert prepare_file(photo, ImageLimits()).source_format == "WEBP"


def test_the_user_message_is_a_valid_ga_item() -> None:
    picture = prepare_image(encode(gradient(64, 48)), ImageLimits())
    item = image_message(picture, "low", "What is this?")
    assert [part["type"] for part in item["content"]] == ["input_text", "input_image"]
    assert item["content"][1] == {
        "type": "input_image", "image_url": picture.data_uri, "detail": "low",
    }  # fmt: skip
    event = {"type": "conversation.item.create", "event_id": "ev_1", "item": item}
    assert client_problems(event) == []
    assert "text" not in [part["type"] for part in image_message(picture, "auto")["content"]]
