"""[camera]: the camera the "look" tool uses, and how large a picture may be when sent.

Declared here rather than in ``device.config`` to keep that module small; it is
one section of ``Config`` like the others, checked by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from device.config_rules import _abs_path, _boolean, _choice, _int_range, _key, _string

if TYPE_CHECKING:
    from device.images import ImageLimits

IMAGE_DETAILS = ("auto", "low", "high")  # "auto" means "high" today

MAX_EDGE_RANGE_PX = (64, 2048)  # the service looks at pictures at up to 2048 pixels
# 5 MB of JPEG is 6.7 MB of base64: well inside the service's 15 MiB per event.
MAX_BYTES_RANGE = (10_000, 5_000_000)


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """[camera]: whether the speaker may look, and the size of what it sends."""

    enabled: bool = _key(False, _boolean)
    """Off by default: with it on, the model may take a picture whenever it decides to."""
    max_edge_px: int = _key(1024, _int_range(*MAX_EDGE_RANGE_PX))
    """Longest edge of a picture as sent; larger pictures are scaled down."""
    max_bytes: int = _key(300_000, _int_range(*MAX_BYTES_RANGE))
    """Largest JPEG sent: the quality drops, then the size, until a picture fits."""
    detail: str = _key("auto", _choice(_string, "detail level", IMAGE_DETAILS))
    """How closely the model looks: "low" is cheapest (and sends at most 512 pixels)."""
    image_path: Path | None = _key(None, _abs_path(optional=True))  # noqa: RUF009 (immutable)
    """Fake hardware only: the picture, or directory of pictures, the fake camera sees."""

    @property
    def limits(self) -> ImageLimits:
        from device.images import ImageLimits  # Pillow loads only where pictures are made

        return ImageLimits(self.max_edge_px, self.max_bytes, self.detail)


def camera_warnings(camera: CameraConfig, hardware: str) -> list[str]:
    """What ``edgevoice config check`` should point out about the camera settings."""
    if camera.enabled and hardware == "fake" and camera.image_path is None:
        return ["camera.enabled on fake hardware needs camera.image_path (a picture or a "
                'directory of pictures); without it the "look" tool is not offered']  # fmt: skip
    if camera.image_path is not None and hardware != "fake":
        return ["camera.image_path is used by fake hardware only; the real camera ignores it"]
    return []


def describe_camera(camera: CameraConfig) -> str:
    """The camera line of ``edgevoice config check``."""
    if not camera.enabled:
        return "off"
    return (f"on, pictures up to {camera.max_edge_px} px and {camera.max_bytes} bytes, "
            f"detail {camera.detail}")  # fmt: skip
