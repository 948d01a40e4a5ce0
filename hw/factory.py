"""Builds the hardware the daemon runs on: real adapters or the shipped fakes.

The choice comes from the config (``device.hardware``) or ``EDGEVOICE_HW`` and
is always logged: fake hardware is never chosen silently.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hw.boards import (
    BoardProfile,
    alsa_card_ids,
    detect_board,
    list_boards,
    load_board,
    probe_i2c_sysfs,
)
from hw.camera import CameraRequest, find_camera
from hw.camera_fake import FakeCamera
from hw.fake import FakeDuplex
from hw.notify import SystemdNotifier
from hw.panel_fake import FakeButtons, FakeLeds
from hw.ports import (
    OFF,
    AudioDuplex,
    ButtonHandler,
    Buttons,
    Camera,
    DuplexFormat,
    HardwareError,
    Leds,
    Notifier,
    Rgb,
)

log = logging.getLogger(__name__)

HardwareKind = Literal["real", "fake"]
FAKE_DEFAULT_BOARD = "respeaker-2mic"


@dataclass(frozen=True)
class HardwareRequest:
    """What the daemon asks for, taken from its config."""

    kind: HardwareKind
    board: str = "auto"
    input_device: str = ""
    output_device: str = ""
    block_ms: int = 20
    camera: CameraRequest = field(default_factory=CameraRequest)


@dataclass
class Hardware:
    """The parts the daemon runs on."""

    kind: HardwareKind
    board: BoardProfile
    duplex: AudioDuplex
    leds: Leds
    buttons: Buttons
    notifier: Notifier
    notes: list[str] = field(default_factory=list)
    camera: Camera | None = None  # None: no camera, or camera.enabled is false

    def close(self) -> None:
        parts: list[AudioDuplex | Leds | Buttons | Camera] = [self.duplex, self.leds, self.buttons]
        for part in parts + ([self.camera] if self.camera is not None else []):
            try:
                part.close()
            except Exception:  # closing must release everything it can
                log.exception("closing %s failed", type(part).__name__)


def resolve_kind(configured: str, env: Mapping[str, str]) -> HardwareKind:
    """``EDGEVOICE_HW`` overrides the config; anything else is an error."""
    value = env.get("EDGEVOICE_HW", configured).strip().lower()
    if value == "real":
        return "real"
    if value == "fake":
        return "fake"
    raise HardwareError(f"EDGEVOICE_HW={value!r}: expected 'real' or 'fake'")


def resolve_board(name: str, kind: HardwareKind) -> BoardProfile:
    """The named board, or the detected one for ``auto`` (fakes: a 2-mic HAT)."""
    if name != "auto":
        return load_board(name)
    if kind == "fake":
        return load_board(FAKE_DEFAULT_BOARD)
    board = detect_board(probe_i2c_sysfs(), alsa_card_ids())
    if board is None:
        raise HardwareError(
            "no supported mic-array board detected (checked ALSA cards and I2C addresses); "
            "is the HAT's overlay loaded (see README)? Or set device.board to one of: "
            + ", ".join(list_boards())
        )
    return board


class NullLeds:
    """For boards without LEDs, and for LED chips that have no driver here yet."""

    def __init__(self, count: int = 1) -> None:
        self._count = count

    @property
    def count(self) -> int:
        return self._count

    def show(self, pixels: Sequence[Rgb]) -> None:
        return None

    def close(self) -> None:
        return None


class NullButtons:
    """For boards without buttons."""

    @property
    def names(self) -> tuple[str, ...]:
        return ()

    def set_handler(self, handler: ButtonHandler | None) -> None:
        return None

    def close(self) -> None:
        return None


def _format(board: BoardProfile, block_ms: int) -> DuplexFormat:
    rate_hz = board.rates_hz[0]
    return DuplexFormat(
        rate_hz=rate_hz,
        block_frames=rate_hz * block_ms // 1000,
        in_channels=board.input_channels,
        out_channels=board.output_channels,
    )


def alsa_device_pattern(card_id: str, asound: Path = Path("/proc/asound")) -> str:
    """The PortAudio device-name fragment, "(hw:N,", for an ALSA card id.

    PortAudio names ALSA devices by the card's long name plus "(hw:N,M)", not by
    the short id the board profiles use, so the id is looked up in
    /proc/asound/cards. Unknown ids are returned unchanged (matched as names).
    """
    try:
        text = (asound / "cards").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return card_id
    for line in text.splitlines():
        match = re.match(r"\s*(\d+)\s+\[([^\]]+?)\s*\]", line)
        if match and match.group(2) == card_id:
            return f"(hw:{match.group(1)},"
    return card_id


def audio_device_names(
    board: BoardProfile,
    input_device: str = "",
    output_device: str = "",
    asound: Path = Path("/proc/asound"),
) -> tuple[str, str | None]:
    """The PortAudio name fragments to open for ``board``: (input, output or None = same).

    Configured names win; otherwise the board's ALSA card (the one present, if
    several ids are known), or the system default for boards without a fixed card.
    """
    if not input_device and board.alsa_card_names:
        present = alsa_card_ids(asound)
        card = next((c for c in board.alsa_card_names if c in present), board.alsa_card_names[0])
        input_device = alsa_device_pattern(card, asound)
    elif not input_device:
        input_device = "default"  # e.g. a plain USB card: whatever the system plays and records
    output = output_device or (
        alsa_device_pattern(board.output_card, asound) if board.output_card else None
    )
    return input_device, output


def build_fake_camera(request: CameraRequest) -> tuple[Camera | None, list[str]]:
    """The fake camera showing ``image_path``, when the camera is enabled; notes say why not."""
    if not request.enabled:
        return None, []
    if request.image_path is None:
        return None, ["camera: fake hardware has no camera pictures; set camera.image_path "
                      "to a picture or a directory of pictures"]  # fmt: skip
    try:
        camera = FakeCamera(request.image_path)
    except HardwareError as exc:
        return None, [str(exc)]
    log.info("camera: %s", camera.name)
    return camera, []


def build_real_camera(request: CameraRequest) -> tuple[Camera | None, list[str]]:
    """The Pi camera when the camera is enabled; a missing one is a note, not a failure."""
    if not request.enabled:
        return None, []
    camera, note = find_camera(request.max_edge_px)
    if camera is None:
        return None, [note]
    log.info("%s", note)
    return camera, []


def build_fake(request: HardwareRequest, *, speed: float = 1.0, echo_gain: float = 0.0) -> Hardware:
    """Fake hardware; ``echo_gain`` > 0 puts the speaker next to the mics (it hears itself)."""
    board = resolve_board(request.board, "fake")
    duplex = FakeDuplex(
        _format(board, request.block_ms),
        mic_channels=board.mic_channels,
        loopback_channels=board.loopback_channels,
        speed=speed,
        echo_gain=echo_gain,
        echo_delay_ms=5.0 if echo_gain else 0.0,
        mic_positions_mm=board.mic_positions_mm,
    )
    leds = FakeLeds(max(board.leds.count, 1))
    buttons = FakeButtons([b.name for b in board.buttons] or ["talk"])
    log.warning("running on FAKE hardware (board profile %s)", board.name)
    camera, notes = build_fake_camera(request.camera)
    return Hardware("fake", board, duplex, leds, buttons, SystemdNotifier(), notes, camera)


def build_real(request: HardwareRequest) -> Hardware:
    from hw.pyaudio_duplex import PyAudioDuplex  # PyAudio is an optional extra

    board = resolve_board(request.board, "real")
    input_device, output_device = audio_device_names(
        board, request.input_device, request.output_device
    )
    duplex = PyAudioDuplex(
        _format(board, request.block_ms),
        input_device,
        output_device,
        sample_width_bits=board.sample_width_bits,
    )
    from hw.gpio import build_buttons, build_leds  # gpiozero is an optional extra

    # The speaker still listens and talks without its LEDs or buttons, so a part
    # that cannot be opened stays dark or ignored, and the log says why and what to do.
    leds: Leds
    buttons: Buttons
    try:
        leds, notes = build_leds(board.leds)
    except HardwareError as exc:
        leds, notes = NullLeds(max(board.leds.count, 1)), [f"LEDs stay dark: {exc}"]
    try:
        buttons, button_notes = build_buttons(board.buttons)
    except HardwareError as exc:
        buttons, button_notes = NullButtons(), [f"buttons are ignored: {exc}"]
    except BaseException:
        leds.close()
        raise
    notes += button_notes
    camera, camera_notes = build_real_camera(request.camera)
    notes += camera_notes
    return Hardware("real", board, duplex, leds, buttons, SystemdNotifier(), notes, camera)


def build_hardware(request: HardwareRequest, *, speed: float = 1.0) -> Hardware:
    """Real or fake hardware as requested; raises HardwareError with what to do."""
    if request.kind == "fake":
        return build_fake(request, speed=speed)
    return build_real(request)


__all__ = [
    "OFF", "CameraRequest", "Hardware", "HardwareRequest", "NullButtons", "NullLeds",
    "build_hardware",
]  # fmt: skip
