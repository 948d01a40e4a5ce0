"""Pictures made fit to send to the Realtime API: upright, small, JPEG, within a byte budget.

The service takes PNG or JPEG as a base64 data URI and documents no size limit,
but a large picture slows every later turn (the conversation is sent again each
time) and can break the connection, so every picture is re-encoded here:

* turned upright by its EXIF orientation (phones store pictures sideways),
* flattened onto white when it has transparency, kept grey when it is grey,
* shrunk so its longer edge is at most ``max_edge_px`` (512 for ``detail: low``,
  since the service looks at such pictures at 512 pixels anyway),
* encoded as JPEG at falling quality until it fits ``max_bytes``, and shrunk
  further when even the lowest quality does not fit.

Re-encoding also drops the file's metadata, so the location a phone stored in
a photo never leaves the device. Pillow does the work; a file that is not a
picture, is cut short, is in a format not accepted here, or claims so many
pixels that decoding it could exhaust a Pi's memory is refused with an
``ImageError`` naming the file and what to do.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

LOW_DETAIL_EDGE_PX = 512
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MAX_SOURCE_PIXELS = 50_000_000  # more than any phone's default; far less than a bomb
MAX_SOURCE_BYTES = 64 * 1024 * 1024
QUALITIES = (85, 75, 65, 55, 45)
SHRINK_FACTOR = 0.75
MIN_EDGE_PX = 32
_WHITE = (255, 255, 255)


class ImageError(ValueError):
    """A picture that cannot be sent; the message names it and says what to do."""


@dataclass(frozen=True)
class ImageLimits:
    """How large a picture may be when it is sent (the ``[camera]`` config)."""

    max_edge_px: int = 1024
    max_bytes: int = 300_000
    detail: str = "auto"

    @property
    def edge_px(self) -> int:
        """The longest edge actually used: ``detail: low`` never needs more than 512."""
        return (
            min(self.max_edge_px, LOW_DETAIL_EDGE_PX) if self.detail == "low" else self.max_edge_px
        )


@dataclass(frozen=True)
class PreparedImage:
    """A picture ready to send, and what was done to it (for the log)."""

    jpeg: bytes
    width: int
    height: int
    quality: int
    source_width: int
    source_height: int
    source_bytes: int
    source_format: str

    @property
    def mime_type(self) -> str:
        return "image/jpeg"

    @property
    def data_uri(self) -> str:
        return f"data:image/jpeg;base64,{base64.b64encode(self.jpeg).decode('ascii')}"

    def describe(self) -> str:
        """E.g. "1024x768 JPEG at quality 85, 98.1 kB (from 4032x3024 JPEG, 3.1 MB)"."""
        return (
            f"{self.width}x{self.height} JPEG at quality {self.quality}, "
            f"{_size(len(self.jpeg))} (from {self.source_width}x{self.source_height} "
            f"{self.source_format}, {_size(self.source_bytes)})"
        )


def _size(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f} MB"
    return f"{count / 1000:.1f} kB"


def _open(data: bytes, source: str) -> Image.Image:
    """Read the header only (no pixels yet) and refuse what must not be decoded."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its two limits; here both are refusals.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_too_many_pixels(source, "more than Pillow's safety limit")) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{source}: is not a picture this device can read (supported: "
            f"{', '.join(ACCEPTED_FORMATS)}); convert it to JPEG or PNG"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # a damaged header
        raise ImageError(f"{source}: is damaged ({exc}); save or copy the picture again") from None
    if image.format not in ACCEPTED_FORMATS:
        raise ImageError(
            f"{source}: is a {image.format} picture, which is not accepted here (supported: "
            f"{', '.join(ACCEPTED_FORMATS)}); convert it to JPEG or PNG"
        )
    width, height = image.size
    if width * height > MAX_SOURCE_PIXELS:
        raise ImageError(_too_many_pixels(source, f"{width}x{height}"))
    if width < 1 or height < 1:
        raise ImageError(f"{source}: has no pixels ({width}x{height})")
    return image


def _too_many_pixels(source: str, what: str) -> str:
    return (
        f"{source}: has too many pixels ({what}; at most {MAX_SOURCE_PIXELS // 1_000_000} "
        "megapixels are decoded, since a larger picture could exhaust the device's memory "
        "or be a decompression bomb); scale it down first"
    )


def _flatten(image: Image.Image) -> Image.Image:
    """An RGB or greyscale (L) picture, transparency composited onto white."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        image = image.convert("I").point(lambda value: value * (1 / 256))  # 16-bit to 8-bit
    if image.mode in ("LA", "La"):
        grey = Image.new("L", image.size, 255)
        grey.paste(image.convert("L"), mask=image.getchannel("A"))
        return grey
    if image.mode in ("RGBA", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", image.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("1", "I", "F"):
        return image.convert("L")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def _decode(image: Image.Image, edge_px: int, source: str) -> Image.Image:
    """The pixels, upright, flattened, no larger than needed."""
    if image.format == "JPEG":
        # Decode at 1/2, 1/4 or 1/8 scale where that still leaves enough pixels:
        # a 12-megapixel photo then costs a Pi a fraction of the time and memory.
        image.draft(image.mode, (edge_px, edge_px))
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
        flat = _flatten(upright)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(
            f"{source}: is truncated or damaged ({exc}); save or copy the picture again"
        ) from None
    flat.thumbnail((edge_px, edge_px), Image.Resampling.LANCZOS)
    return flat


def _encode(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def prepare_image(data: bytes, limits: ImageLimits, source: str = "the picture") -> PreparedImage:
    """Make ``data`` (any accepted picture file's bytes) fit ``limits``.

    Pure CPU work of tens to hundreds of milliseconds on a Pi: call it off the
    event loop. ``source`` names the picture in error messages.

    Raises:
        ImageError: not a picture, damaged, not accepted, too many pixels, or it
            cannot fit ``max_bytes`` even at the smallest size.
    """
    if len(data) > MAX_SOURCE_BYTES:
        raise ImageError(
            f"{source}: is {_size(len(data))}, more than the {_size(MAX_SOURCE_BYTES)} "
            "read at most; scale it down first"
        )
    image = _open(data, source)
    source_width, source_height = image.size
    source_format = str(image.format)
    picture = _decode(image, limits.edge_px, source)
    while True:
        for quality in QUALITIES:
            jpeg = _encode(picture, quality)
            if len(jpeg) <= limits.max_bytes:
                width, height = picture.size
                return PreparedImage(jpeg, width, height, quality, source_width,
                                     source_height, len(data), source_format)  # fmt: skip
        width, height = picture.size
        smaller = (max(1, round(width * SHRINK_FACTOR)), max(1, round(height * SHRINK_FACTOR)))
        if max(smaller) < MIN_EDGE_PX:
            raise ImageError(
                f"{source}: does not fit in {limits.max_bytes} bytes even at "
                f"{width}x{height} pixels; raise camera.max_bytes"
            )
        picture = picture.resize(smaller, Image.Resampling.LANCZOS)


def prepare_file(path: Path, limits: ImageLimits) -> PreparedImage:
    """``prepare_image`` for a file; a missing or unreadable file is an ``ImageError`` too."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SOURCE_BYTES + 1)
    except FileNotFoundError:
        raise ImageError(f"{path}: does not exist") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not a picture") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return prepare_image(data, limits, str(path))


def image_part(image: PreparedImage, detail: str) -> dict[str, Any]:
    """The ``input_image`` content part of a user message."""
    return {"type": "input_image", "image_url": image.data_uri, "detail": detail}


def image_message(image: PreparedImage, detail: str, text: str = "") -> dict[str, Any]:
    """A user message holding ``text`` (if any) and the picture, for conversation.item.create."""
    content: list[dict[str, Any]] = [{"type": "input_text", "text": text}] if text else []
    content.append(image_part(image, detail))
    return {"type": "message", "role": "user", "content": content}
