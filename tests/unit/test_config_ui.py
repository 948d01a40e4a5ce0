"""[buttons], [sounds] and [leds]: typed values, and clear errors for bad ones; and the
board profiles' ``leds.mic_pixels`` (where the muted LEDs light)."""

from __future__ import annotations

from typing import Any

import pytest

from device.config import config_from_dict
from device.errors import ConfigError
from hw.board_profile import BoardError
from hw.boards import load_board, parse_board

SOURCE = "/etc/edgevoice/edgevoice.toml"


def test_the_sections_give_typed_values() -> None:
    config = config_from_dict(
        {
            "buttons": {"long_press_ms": 2000, "double_press_ms": 250,
                        "double_press": "volume_up", "volume_step_percent": 5},
            "sounds": {"enabled": False, "earcons": ["mute", "unmute"]},
            "leds": {"brightness": 0.3, "idle": "off"},
        },
        SOURCE,
    )  # fmt: skip
    assert config.buttons.double_press == "volume_up"
    assert (config.buttons.long_press_ms, config.buttons.double_press_ms) == (2000, 250)
    assert config.buttons.volume_step_percent == 5
    assert config.sounds.earcons == ("mute", "unmute")
    assert not config.sounds.enabled
    assert (config.leds.brightness, config.leds.idle) == (0.3, "off")


@pytest.mark.parametrize(
    ("section", "key", "value", "fragment"),
    [
        ("buttons", "double_press", "triple", "volume_up"),
        ("buttons", "long_press_ms", 100, "500"),
        ("buttons", "long_press_ms", 1550, "multiple of 100"),
        ("buttons", "volume_step_percent", 0, "1"),
        ("sounds", "enabled", "yes", "true or false"),
        ("sounds", "earcons", ["wake", "chime"], "wake, listening_end"),
        ("sounds", "earcons", ["wake", "wake"], "listed twice"),
        ("leds", "brightness", 0.0, "0.05"),
        ("leds", "idle", "dim", "glow"),
    ],
)
def test_a_bad_value_names_the_file_the_key_and_what_is_allowed(
    section: str, key: str, value: Any, fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({section: {key: value}}, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: {section}.{key}")
    assert fragment in message


def _board(**leds: Any) -> dict[str, Any]:
    return {
        "title": "Test board", "alsa_card_names": ["testcard"], "input_channels": 4,
        "output_channels": 2, "rates_hz": [16000], "sample_width_bits": 16,
        "mic_channels": [0, 1, 2, 3],
        "leds": {"chip": "apa102", "count": 12, "spi_bus": 0, "spi_device": 0, **leds},
    }  # fmt: skip


def test_mic_pixels_are_read_from_the_led_table() -> None:
    board = parse_board(_board(mic_pixels=[0, 3, 6, 9]), "test-board.toml")
    assert board.leds.mic_pixels == (0, 3, 6, 9)
    assert parse_board(_board(), "test-board.toml").leds.mic_pixels == ()


@pytest.mark.parametrize(
    ("leds", "fragment"),
    [
        ({"mic_pixels": [0, 12]}, "leds.mic_pixels[1]: 12 is out of range"),
        ({"mic_pixels": [1, 1]}, "listed twice"),
        ({"mic_pixels": "0,3"}, "expected a list"),
    ],
)
def test_bad_mic_pixels_name_the_key(leds: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BoardError) as caught:
        parse_board(_board(**leds), "test-board.toml")
    assert fragment in str(caught.value)


def test_mic_pixels_need_an_led_chip() -> None:
    data = _board()
    data["leds"] = {"chip": "none", "mic_pixels": [0]}
    with pytest.raises(BoardError, match=r"leds\.mic_pixels"):
        parse_board(data, "test-board.toml")


@pytest.mark.parametrize(
    ("name", "pixels"),
    [("respeaker-2mic", (0, 2)), ("respeaker-4mic", (0, 3, 6, 9)),
     ("respeaker-6mic", (0, 2, 4, 6, 8, 10))],
)  # fmt: skip
def test_shipped_rings_say_where_their_mics_are_and_that_it_is_assumed(
    name: str, pixels: tuple[int, ...]
) -> None:
    board = load_board(name)
    assert board.leds.mic_pixels == pixels
    assert len(pixels) == len(board.mic_channels)
    assert "leds.mic_pixels" in board.unverified
