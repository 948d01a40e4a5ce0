"""``edgevoice devices`` on a scripted PortAudio and made-up /proc/asound and sysfs trees."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from device.devices import devices_report
from hw.boards import list_boards

PI_WITH_2MIC = [
    ("bcm2835 Headphones: - (hw:0,0)", 0, 8, 44100.0),
    ("seeed-2mic-voicecard: bcm2835-i2s-wm8960-hifi wm8960-hifi-0 (hw:1,0)", 2, 2, 48000.0),
    ("default", 64, 64, 44100.0),
]
CARDS_2MIC = """\
 0 [Headphones     ]: bcm2835_headphonbcm2835 Headphones - bcm2835 Headphones
                      bcm2835 Headphones
 1 [seeed2micvoicec]: seeed-2mic-voice - seeed-2mic-voicecard
                      seeed-2mic-voicecard
"""


class ScriptedPa:
    """The part of PyAudio that lists devices, over a fixed list."""

    def __init__(self, devices: list[tuple[str, int, int, float]]) -> None:
        self.devices = devices
        self.terminated = False

    def get_host_api_count(self) -> int:
        return 1

    def get_host_api_info_by_index(self, index: int) -> dict[str, Any]:
        return {"name": "ALSA"}

    def get_device_count(self) -> int:
        return len(self.devices)

    def get_device_info_by_index(self, index: int) -> dict[str, Any]:
        name, ins, outs, rate_hz = self.devices[index]
        return {
            "name": name,
            "maxInputChannels": ins,
            "maxOutputChannels": outs,
            "defaultSampleRate": rate_hz,
            "hostApi": 0,
        }

    def terminate(self) -> None:
        self.terminated = True


def asound(tmp_path: Path, cards: str) -> Path:
    root = tmp_path / "asound"
    root.mkdir()
    (root / "cards").write_text(cards)
    return root


def i2c_tree(tmp_path: Path, bound: list[str], unbound: tuple[str, ...] = ()) -> Path:
    root = tmp_path / "i2c"
    root.mkdir()
    for name in [*bound, *unbound]:
        (root / name).mkdir()
    for name in bound:
        (root / name / "driver").mkdir()
    return root


def test_a_pi_with_a_2mic_hat_shows_the_whole_chain(tmp_path: Path) -> None:
    pa = ScriptedPa(PI_WITH_2MIC)
    report = devices_report(
        pa_factory=lambda: pa,
        asound=asound(tmp_path, CARDS_2MIC),
        i2c_root=i2c_tree(tmp_path, ["1-001a"], unbound=("1-0035",)),
    )
    lines = report.splitlines()
    assert lines[0] == "PortAudio devices:"
    row = next(line for line in lines if "seeed-2mic-voicecard" in line)
    assert row.split()[:5] == ["1", "2", "2", "48000", "ALSA"]
    assert "ALSA cards: Headphones, seeed2micvoicec" in lines
    assert "I2C devices with a driver on bus 1: 0x1a" in lines  # 0x35 has no driver
    assert "board: respeaker-2mic (ReSpeaker 2-Mics Pi HAT v1 (WM8960)), detected" in lines
    assert "would open: one full-duplex stream on '(hw:1,', 2 ch at 16000 Hz, 16-bit" in lines
    assert lines[-1] == "  -> PortAudio device 1 " + repr(PI_WITH_2MIC[1][0])
    assert pa.terminated


def test_nothing_detected_lists_the_boards_to_choose_from(tmp_path: Path) -> None:
    report = devices_report(
        pa_factory=lambda: ScriptedPa([]),
        asound=tmp_path / "no-asound",
        i2c_root=tmp_path / "no-i2c",
    )
    lines = report.splitlines()
    assert lines[0].startswith("PortAudio devices: none")
    assert lines[1].startswith("ALSA cards: none")
    assert lines[2] == "I2C devices with a driver on bus 1: none"
    assert lines[3] == f"board: none detected: set device.board; boards: {', '.join(list_boards())}"
    assert len(lines) == 4


def test_a_card_without_its_portaudio_device_says_so(tmp_path: Path) -> None:
    only_jack = [PI_WITH_2MIC[0]]
    report = devices_report(
        pa_factory=lambda: ScriptedPa(only_jack),
        asound=asound(tmp_path, CARDS_2MIC),
        i2c_root=tmp_path / "no-i2c",
    )
    assert report.splitlines()[-1].startswith("  -> NO PortAudio device matches with 2 input ch")


def test_a_board_with_a_separate_playback_card_shows_both_streams(tmp_path: Path) -> None:
    cards = " 0 [Headphones     ]: bcm2835\n 1 [seeed4micvoicec]: seeed-4mic\n"
    devices = [PI_WITH_2MIC[0], ("seeed-4mic-voicecard: ac10x (hw:1,0)", 4, 0, 16000.0)]
    report = devices_report(
        pa_factory=lambda: ScriptedPa(devices),
        asound=asound(tmp_path, cards),
        i2c_root=i2c_tree(tmp_path, ["1-003b"]),
    )
    lines = report.splitlines()
    assert "board: respeaker-4mic" in report
    assert lines[-3].startswith("would open: capture on '(hw:1,' (4 ch) and playback on '(hw:0,'")
    assert lines[-2] == "  capture  -> PortAudio device 1 " + repr(devices[1][0])
    assert lines[-1] == "  playback -> PortAudio device 0 " + repr(devices[0][0])


def test_configured_board_and_device_override_detection(tmp_path: Path) -> None:
    report = devices_report(
        pa_factory=lambda: ScriptedPa(PI_WITH_2MIC),
        asound=asound(tmp_path, CARDS_2MIC),
        i2c_root=tmp_path / "no-i2c",
        board="generic-usb",
        input_device="default",
    )
    assert "board: generic-usb (Generic USB or built-in sound card), from device.board" in report
    assert report.splitlines()[-1] == "  -> PortAudio device 2 'default'"


def test_an_unknown_configured_board_is_named(tmp_path: Path) -> None:
    report = devices_report(
        pa_factory=lambda: ScriptedPa([]),
        asound=tmp_path,
        i2c_root=tmp_path,
        board="respeaker-2mick",
    )
    last = report.splitlines()[-1]
    assert last.startswith("board: device.board: ") and "'respeaker-2mic'?" in last


def test_without_pyaudio_the_rest_is_still_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # import pyaudio now raises ImportError
    report = devices_report(asound=asound(tmp_path, CARDS_2MIC), i2c_root=tmp_path / "none")
    lines = report.splitlines()
    assert lines[0].startswith("PortAudio devices: not available: PyAudio is not installed")
    assert "board: respeaker-2mic" in report
    assert lines[-1] == "  -> cannot check without PortAudio"


def test_portaudio_failing_to_initialise_is_reported(tmp_path: Path) -> None:
    def broken() -> Any:
        raise OSError(-9999, "Unanticipated host error")

    report = devices_report(pa_factory=broken, asound=tmp_path, i2c_root=tmp_path)
    assert report.splitlines()[0] == (
        "PortAudio devices: not available: cannot initialise PortAudio: "
        "[Errno -9999] Unanticipated host error"
    )
