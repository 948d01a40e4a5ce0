"""A fake camera that "sees" image files, so the look tool runs without a Pi camera.

Point it at one picture, or at a directory of pictures that it shows one per
capture in name order, round and round. Like the other fakes it is driven by
physical verbs: ``unplug()`` and ``plug_in()``. The files are served exactly
as they are on disk; nothing here decodes them, so a damaged file reaches the
image pipeline the way a damaged capture would.
"""

from __future__ import annotations

import threading
from pathlib import Path

from hw.ports import CameraError, Still

PICTURE_SUFFIXES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"


def sniff_mime_type(data: bytes, suffix: str = "") -> str:
    """The picture's type from its first bytes, else from its file name's suffix."""
    if data.startswith(_PNG_SIGNATURE):
        return "image/png"
    if data.startswith(_JPEG_SIGNATURE):
        return "image/jpeg"
    return PICTURE_SUFFIXES.get(suffix.lower(), "application/octet-stream")


class FakeCamera:
    """A ``Camera`` whose pictures are files: one file, or a directory's JPEG and PNG files."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.captures = 0  # pictures taken so far
        self.unplugged = False
        self._closed = False
        self._lock = threading.Lock()  # captures come from worker threads
        self._pictures()  # a wrong path is reported when the camera is built, not at first use

    @property
    def name(self) -> str:
        return f"fake camera ({self.source})"

    def _pictures(self) -> list[Path]:
        if self.source.is_dir():
            pictures = sorted(
                path
                for path in self.source.iterdir()
                if path.suffix.lower() in PICTURE_SUFFIXES and path.is_file()
            )
            if not pictures:
                raise CameraError(
                    f"fake camera: {self.source} holds no .jpg, .jpeg or .png files; "
                    "put pictures there or point camera.image_path at one picture"
                )
            return pictures
        if not self.source.is_file():
            raise CameraError(
                f"fake camera: {self.source} does not exist; "
                "point camera.image_path at a picture or a directory of pictures"
            )
        return [self.source]

    def unplug(self) -> None:
        """Pull the camera's cable: captures fail until ``plug_in``."""
        self.unplugged = True

    def plug_in(self) -> None:
        self.unplugged = False

    def capture(self) -> Still:
        with self._lock:
            if self._closed:
                raise CameraError("fake camera: it was closed")
            if self.unplugged:
                raise CameraError("fake camera: no camera is connected (it was unplugged)")
            pictures = self._pictures()  # read again: files may come and go between captures
            path = pictures[self.captures % len(pictures)]
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise CameraError(
                    f"fake camera: cannot read {path}: {exc.strerror or exc}"
                ) from exc
            self.captures += 1
        return Still(data, sniff_mime_type(data, path.suffix))

    def close(self) -> None:
        self._closed = True
