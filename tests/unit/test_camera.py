"""Cameras: the fake one that serves files, and the rpicam-still backend driven through a
stand-in ``rpicam-still`` script on PATH that behaves as the real command does."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hw.camera import CameraRequest, CommandCamera, Picamera2Camera, capture_size, find_camera
from hw.camera_fake import FakeCamera
from hw.factory import HardwareRequest, build_fake
from hw.ports import Camera, CameraError
from tests.pictures import encode, gradient

LISTED = """Available cameras
-----------------
0 : imx708 [4608x2592 10-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx708@1a)
    Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]
"""

# Behaves like rpicam-still for what edgevoice asks of it: --list-cameras prints
# $FAKE_CAMERAS; a capture logs its arguments to $FAKE_LOG and copies $FAKE_PICTURE
# to --output; $FAKE_FAIL makes it fail as the real one does without a camera.
SCRIPT = """#!{python}
import json, os, shutil, sys, time
args = sys.argv[1:]
if args == ["--list-cameras"]:
    print(os.environ.get("FAKE_CAMERAS", "No cameras available!"))
    sys.exit(0)
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if os.environ.get("FAKE_FAIL"):
    print("ERROR: *** no cameras available ***", file=sys.stderr)
    sys.exit(255)
if os.environ.get("FAKE_HANG"):
    time.sleep(30)
if os.environ.get("FAKE_PICTURE"):
    shutil.copy(os.environ["FAKE_PICTURE"], args[args.index("--output") + 1])
"""


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(gradient(1024, 768)))
    return path


@pytest.fixture
def rpicam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo: Path) -> Path:
    """A stand-in rpicam-still on PATH; returns the log of its captures."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "rpicam-still"
    script.write_text(SCRIPT.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "captures.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_PICTURE", str(photo))
    monkeypatch.setenv("FAKE_CAMERAS", LISTED)
    for name in ("FAKE_FAIL", "FAKE_HANG"):
        monkeypatch.delenv(name, raising=False)
    return log


def no_picamera2(name: str) -> types.ModuleType:
    raise ImportError(f"No module named {name!r}")


# -- the fake camera --------------------------------------------------------------------


def test_the_fake_camera_serves_one_file_as_it_is(photo: Path) -> None:
    camera = FakeCamera(photo)
    assert isinstance(camera, Camera)
    first, second = camera.capture(), camera.capture()
    assert first.data == second.data == photo.read_bytes()
    assert first.mime_type == "image/jpeg"
    assert camera.captures == 2
    assert str(photo) in camera.name


def test_the_fake_camera_cycles_a_directory_in_name_order(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "b.png").write_bytes(encode(gradient(30, 20), "PNG"))
    (shots / "a.JPG").write_bytes(encode(gradient(20, 10)))
    (shots / "notes.txt").write_text("not a picture")
    camera = FakeCamera(shots)
    taken = [camera.capture() for _ in range(2)]
    (shots / "c.png").write_bytes(encode(gradient(10, 10), "PNG"))  # files may come later
    taken += [camera.capture() for _ in range(2)]
    kinds = [still.mime_type.split("/")[1] for still in taken]
    assert kinds == ["jpeg", "png", "png", "jpeg"]
    assert [still.data for still in taken] == [
        (shots / name).read_bytes() for name in ("a.JPG", "b.png", "c.png", "a.JPG")
    ]


def test_the_fake_camera_refuses_a_path_without_pictures(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match=r"does not exist; point camera\.image_path"):
        FakeCamera(tmp_path / "missing.jpg")
    with pytest.raises(CameraError, match=r"holds no \.jpg, \.jpeg or \.png files"):
        FakeCamera(tmp_path)


def test_an_unplugged_or_closed_fake_camera_fails_clearly(photo: Path) -> None:
    camera = FakeCamera(photo)
    camera.unplug()
    with pytest.raises(CameraError, match="unplugged"):
        camera.capture()
    camera.plug_in()
    assert camera.capture().data == photo.read_bytes()
    camera.close()
    with pytest.raises(CameraError, match="closed"):
        camera.capture()


# -- rpicam-still ---------------------------------------------------------------------


def test_rpicam_still_takes_the_picture_into_a_temporary_file(rpicam: Path, photo: Path) -> None:
    camera, note = find_camera(1024, import_module=no_picamera2)
    assert isinstance(camera, CommandCamera)
    assert note == "camera: rpicam-still (imx708)"
    assert camera.name == "rpicam-still (imx708)"
    still = camera.capture()
    assert still.data == photo.read_bytes()
    assert still.mime_type == "image/jpeg"
    [args] = [json.loads(line) for line in rpicam.read_text().splitlines()]
    output = Path(args[args.index("--output") + 1])
    assert not output.parent.exists(), "the temporary picture was left behind"
    options = dict(zip(args[1:-1:2], args[2::2], strict=False))
    assert args[0] == "--nopreview"
    assert (options["--width"], options["--height"]) == ("1024", "768")
    assert options["--encoding"] == "jpg"
    assert int(options["--timeout"]) > 0  # exposure settles before the picture


def test_a_failing_rpicam_still_says_why(rpicam: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    camera, _ = find_camera(640, import_module=no_picamera2)
    assert camera is not None
    monkeypatch.setenv("FAKE_FAIL", "1")
    with pytest.raises(CameraError, match=r"exit status 255\): ERROR: \*\*\* no cameras available"):
        camera.capture()


def test_rpicam_still_that_writes_nothing_is_an_error(
    rpicam: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAKE_PICTURE")
    camera, _ = find_camera(640, import_module=no_picamera2)
    assert camera is not None
    with pytest.raises(CameraError, match="exited without writing a picture"):
        camera.capture()


def test_a_stuck_rpicam_still_is_given_up_on(rpicam: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_HANG", "1")
    script = str(rpicam.parent / "bin" / "rpicam-still")
    camera = CommandCamera(script, capture_size(640), timeout_s=0.5)
    with pytest.raises(CameraError, match=r"took longer than 0\.5 s; is another program"):
        camera.capture()


def test_libcamera_still_is_used_on_older_systems(rpicam: Path) -> None:
    script = str(rpicam.parent / "bin" / "rpicam-still")
    paths = {"libcamera-still": script}
    camera, note = find_camera(800, which=paths.get, import_module=no_picamera2)
    assert isinstance(camera, CommandCamera)
    assert camera.command == script and camera.size == (800, 600)
    assert note.startswith("camera: libcamera-still")


def test_no_camera_connected_means_no_camera(rpicam: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_CAMERAS")
    camera, note = find_camera(1024, import_module=no_picamera2)
    assert camera is None
    assert "rpicam-still lists no camera (No cameras available!)" in note
    assert "camera.enabled = false" in note


def test_nothing_installed_means_no_camera_and_what_to_install() -> None:
    camera, note = find_camera(1024, which=lambda name: None, import_module=no_picamera2)
    assert camera is None
    assert "picamera2 is not importable" in note
    assert "apt-get install rpicam-apps" in note


# -- picamera2, through a stand-in module (no Pi camera here) ---------------------------


class StandInPicamera2:
    """Records what edgevoice asks of picamera2 and writes a JPEG when asked to."""

    cameras: ClassVar[list[dict[str, Any]]] = [{"Model": "imx219", "Num": 0}]
    calls: ClassVar[list[str]] = []

    def __init__(self, index: int) -> None:
        self.calls.append(f"open {index}")

    @classmethod
    def global_camera_info(cls) -> list[dict[str, Any]]:
        return cls.cameras

    def create_still_configuration(self, main: dict[str, Any]) -> dict[str, Any]:
        return {"main": main}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append(f"configure {config['main']['size']}")

    def start(self) -> None:
        self.calls.append("start")

    def capture_file(self, file: Any, format: str) -> None:
        self.calls.append(f"capture {format}")
        file.write(encode(gradient(64, 48)))

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


def test_picamera2_is_preferred_when_it_sees_a_camera(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("picamera2")
    module.Picamera2 = StandInPicamera2  # type: ignore[attr-defined]
    monkeypatch.setattr(StandInPicamera2, "calls", [])
    monkeypatch.setattr("hw.camera.SETTLE_MS", 0)
    camera, note = find_camera(640, import_module=lambda name: module)
    assert isinstance(camera, Picamera2Camera)
    assert note == "camera: picamera2 (imx219)"
    assert camera.capture().data[:3] == b"\xff\xd8\xff"
    camera.capture()
    camera.close()
    assert StandInPicamera2.calls == [
        "open 0", "configure (640, 480)", "start", "capture jpeg", "stop",
        "start", "capture jpeg", "stop", "close",
    ]  # fmt: skip
    monkeypatch.setattr(StandInPicamera2, "cameras", [])
    camera, note = find_camera(640, which=lambda name: None, import_module=lambda name: module)
    assert camera is None and "picamera2 sees no camera" in note


# -- the factory --------------------------------------------------------------------------


def test_fake_hardware_has_the_fake_camera_only_when_enabled(photo: Path, tmp_path: Path) -> None:
    off = build_fake(HardwareRequest("fake", camera=CameraRequest(False, photo)))
    assert off.camera is None
    on = build_fake(HardwareRequest("fake", camera=CameraRequest(True, photo)))
    assert isinstance(on.camera, FakeCamera)
    on.close()
    with pytest.raises(CameraError, match="closed"):
        on.camera.capture()
    no_path = build_fake(HardwareRequest("fake", camera=CameraRequest(True, None)))
    assert no_path.camera is None
    assert any("camera.image_path" in note for note in no_path.notes)
    wrong = build_fake(HardwareRequest("fake", camera=CameraRequest(True, tmp_path / "x.jpg")))
    assert wrong.camera is None
    assert any("x.jpg does not exist" in note for note in wrong.notes)
