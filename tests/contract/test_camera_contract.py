"""The same contract for the fake camera and the Pi camera (which skips without one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from device.images import ImageLimits, prepare_image
from hw.camera import find_camera
from hw.camera_fake import FakeCamera
from hw.ports import Camera
from tests.pictures import decode, encode, gradient


@pytest.fixture(params=["fake", "pi"])
def camera(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Camera]:
    if request.param == "fake":
        (tmp_path / "room.png").write_bytes(encode(gradient(640, 480), "PNG"))
        chosen: Camera = FakeCamera(tmp_path)
    else:
        found, note = find_camera(640)
        if found is None:
            pytest.skip(note)
        chosen = found
    try:
        yield chosen
    finally:
        chosen.close()


def test_is_a_camera_with_a_name(camera: Camera) -> None:
    assert isinstance(camera, Camera)
    assert camera.name


def test_a_still_is_a_picture_of_its_stated_type(camera: Camera) -> None:
    still = camera.capture()
    picture = decode(still.data)
    assert still.mime_type == {"JPEG": "image/jpeg", "PNG": "image/png"}[str(picture.format)]
    assert min(picture.size) > 0


def test_stills_come_one_after_another_and_fit_once_prepared(camera: Camera) -> None:
    for _ in range(2):
        picture = prepare_image(camera.capture().data, ImageLimits(max_edge_px=320))
        assert max(picture.width, picture.height) <= 320


def test_close_is_idempotent(camera: Camera) -> None:
    camera.close()
    camera.close()
