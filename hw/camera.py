"""The Raspberry Pi camera: picamera2 when it is importable, else the rpicam-still command.

Which one is used is decided once, when the hardware is built (``find_camera``):

1. ``picamera2`` (Raspberry Pi OS ships it as python3-picamera2; a virtualenv sees
   it only when made with --system-site-packages), asked which cameras exist;
2. ``rpicam-still``, or ``libcamera-still`` on older systems, found on PATH and
   asked ``--list-cameras``;
3. otherwise there is no camera: ``find_camera`` returns None and says why. It
   never falls back to a fake: a speaker must not describe pictures it never took.

Both backends take a picture a little larger than needed rather than the
sensor's full 12 megapixels, and let exposure settle for ``SETTLE_MS`` first,
so a picture takes about a second and a half.
"""

from __future__ import annotations

import importlib
import io
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from hw.ports import Camera, CameraError, Still

STILL_COMMANDS = ("rpicam-still", "libcamera-still")
SETTLE_MS = 1000  # auto exposure and white balance need a moment after the sensor starts
COMMAND_TIMEOUT_S = 15.0  # a capture that takes longer is stuck (another program holds it)
LIST_TIMEOUT_S = 10.0
_CAMERA_LINE = re.compile(r"^\s*(\d+)\s*:\s*(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class CameraRequest:
    """What the daemon asks of the camera, from its ``[camera]`` config."""

    enabled: bool = False
    image_path: Path | None = None  # the fake camera's picture or directory of pictures
    max_edge_px: int = 1024


def capture_size(max_edge_px: int) -> tuple[int, int]:
    """A 4:3 size whose long edge is ``max_edge_px`` (even numbers, as encoders like)."""
    width = max(64, max_edge_px) // 2 * 2
    return width, width * 3 // 4 // 2 * 2


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


class CommandCamera:
    """Takes each picture by running ``rpicam-still`` (or ``libcamera-still``) once."""

    def __init__(
        self,
        command: str,
        size: tuple[int, int],
        *,
        model: str = "",
        settle_ms: int = SETTLE_MS,
        timeout_s: float = COMMAND_TIMEOUT_S,
    ) -> None:
        self.command = command
        self.size = size
        self.model = model
        self.settle_ms = settle_ms
        self.timeout_s = timeout_s

    @property
    def name(self) -> str:
        tool = Path(self.command).name
        return f"{tool} ({self.model})" if self.model else tool

    def argv(self, output: Path) -> list[str]:
        width, height = self.size
        return [
            self.command, "--nopreview", "--timeout", str(self.settle_ms),
            "--width", str(width), "--height", str(height),
            "--encoding", "jpg", "--output", str(output),
        ]  # fmt: skip

    def capture(self) -> Still:
        tool = Path(self.command).name
        with tempfile.TemporaryDirectory(prefix="edgevoice-camera-") as folder:
            output = Path(folder) / "still.jpg"
            try:
                done = subprocess.run(
                    self.argv(output),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=self.timeout_s,
                    check=False,
                )
            except FileNotFoundError:
                raise CameraError(f"{tool} is no longer installed at {self.command}") from None
            except subprocess.TimeoutExpired:
                raise CameraError(
                    f"{tool} took longer than {self.timeout_s:g} s; is another program "
                    "using the camera?"
                ) from None
            except OSError as exc:
                raise CameraError(f"{tool} could not be started: {exc.strerror or exc}") from None
            if done.returncode != 0:
                raise CameraError(
                    f"{tool} failed (exit status {done.returncode}): {_last_line(done.stderr)}; "
                    "check the camera cable and that no other program uses the camera"
                )
            try:
                data = output.read_bytes()
            except OSError:
                data = b""
        if not data:
            raise CameraError(f"{tool} exited without writing a picture")
        return Still(data, "image/jpeg")

    def close(self) -> None:
        return None  # each capture is a process of its own: nothing stays open


class Picamera2Camera:
    """Takes pictures through picamera2; the camera is opened at the first picture."""

    def __init__(self, module: ModuleType, index: int, size: tuple[int, int], model: str) -> None:
        self._module = module
        self._index = index
        self.size = size
        self.model = model
        self._camera: Any = None

    @property
    def name(self) -> str:
        return f"picamera2 ({self.model})" if self.model else "picamera2"

    def _opened(self) -> Any:
        if self._camera is None:
            camera = self._module.Picamera2(self._index)
            camera.configure(camera.create_still_configuration(main={"size": self.size}))
            self._camera = camera
        return self._camera

    def capture(self) -> Still:
        try:
            camera = self._opened()
            camera.start()
            try:
                time.sleep(SETTLE_MS / 1000)
                buffer = io.BytesIO()
                camera.capture_file(buffer, format="jpeg")
            finally:
                camera.stop()
        except Exception as exc:  # picamera2 raises RuntimeError, IndexError, OSError…
            raise CameraError(
                f"picamera2 could not take a picture: {type(exc).__name__}: {exc}; "
                "check the camera cable and that no other program uses the camera"
            ) from exc
        return Still(buffer.getvalue(), "image/jpeg")

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()


def _find_picamera2(
    size: tuple[int, int], import_module: Callable[[str], ModuleType]
) -> tuple[Camera | None, str]:
    try:
        module = import_module("picamera2")
    except ImportError:
        return None, "picamera2 is not importable"
    except Exception as exc:  # a broken install raises anything while importing
        return None, f"picamera2 failed to import ({type(exc).__name__}: {exc})"
    try:
        cameras = list(module.Picamera2.global_camera_info())
    except Exception as exc:
        return None, f"picamera2 could not list cameras ({type(exc).__name__}: {exc})"
    if not cameras:
        return None, "picamera2 sees no camera"
    model = str(cameras[0].get("Model", "")) if isinstance(cameras[0], dict) else ""
    return Picamera2Camera(module, 0, size, model), f"camera: picamera2 ({model or 'camera 0'})"


def _find_command(
    size: tuple[int, int], which: Callable[[str], str | None]
) -> tuple[Camera | None, str]:
    for name in STILL_COMMANDS:
        command = which(name)
        if command is None:
            continue
        try:
            listed = subprocess.run(
                [command, "--list-cameras"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=LIST_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{name} --list-cameras failed ({exc})"
        match = _CAMERA_LINE.search(listed.stdout + "\n" + listed.stderr)
        if match is None:
            return None, f"{name} lists no camera ({_last_line(listed.stdout + listed.stderr)})"
        model = match.group(2)
        return CommandCamera(command, size, model=model), f"camera: {name} ({model})"
    return None, f"neither {' nor '.join(STILL_COMMANDS)} is installed"


def find_camera(
    max_edge_px: int,
    *,
    which: Callable[[str], str | None] = shutil.which,
    import_module: Callable[[str], ModuleType] = importlib.import_module,
) -> tuple[Camera | None, str]:
    """The Pi camera through the first backend that sees one, and a line for the log.

    None (and why) when there is none; never raises for a missing camera, since a
    speaker without one still listens and talks.
    """
    size = capture_size(max_edge_px)
    camera, why_not_picamera2 = _find_picamera2(size, import_module)
    if camera is not None:
        return camera, why_not_picamera2
    camera, why_not_command = _find_command(size, which)
    if camera is not None:
        return camera, why_not_command
    return None, (
        f"no camera: {why_not_picamera2}, and {why_not_command}; install rpicam-apps "
        "(apt-get install rpicam-apps) and connect a camera, or set camera.enabled = false"
    )
