from __future__ import annotations

from pathlib import Path

import pytest

from hw.factory import (
    HardwareRequest,
    alsa_device_pattern,
    build_hardware,
    resolve_board,
    resolve_kind,
)
from hw.fake import FakeDuplex
from hw.ports import HardwareError


def test_env_overrides_config_and_bad_values_are_errors() -> None:
    assert resolve_kind("real", {"EDGEVOICE_HW": "fake"}) == "fake"
    assert resolve_kind("fake", {}) == "fake"
    with pytest.raises(HardwareError, match="EDGEVOICE_HW='sim'"):
        resolve_kind("real", {"EDGEVOICE_HW": "sim"})


def test_fake_hardware_follows_the_board_profile(caplog: pytest.LogCaptureFixture) -> None:
    hw = build_hardware(HardwareRequest("fake", board="respeaker-6mic", block_ms=10))
    assert isinstance(hw.duplex, FakeDuplex)
    fmt = hw.duplex.format
    assert (fmt.in_channels, fmt.out_channels) == (8, 8)
    assert fmt.block_frames == fmt.rate_hz // 100
    assert hw.leds.count == 12
    assert "FAKE hardware" in caplog.text  # never chosen silently


def test_fake_auto_board_is_a_2mic_hat() -> None:
    assert resolve_board("auto", "fake").name == "respeaker-2mic"


def test_unknown_board_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="respeaker-2mic"):
        resolve_board("respeaker-9mic", "fake")


def test_alsa_card_id_maps_to_portaudio_name(tmp_path: Path) -> None:
    (tmp_path / "cards").write_text(
        " 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones\n"
        "                      bcm2835 Headphones\n"
        " 1 [seeed2micvoicec]: seeed-2mic-voic - seeed-2mic-voicecard\n"
    )
    assert alsa_device_pattern("seeed2micvoicec", tmp_path) == "(hw:1,"
    assert alsa_device_pattern("Headphones", tmp_path) == "(hw:0,"
    assert alsa_device_pattern("other", tmp_path) == "other"
    assert alsa_device_pattern("x", tmp_path / "missing") == "x"
