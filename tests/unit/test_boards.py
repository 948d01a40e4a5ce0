"""Board profiles: shipped data against the hardware reference, validation, detection."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import pytest

from hw import boards
from hw.boards import (
    NO_LEDS,
    BoardError,
    BoardProfile,
    alsa_card_ids,
    detect_board,
    list_boards,
    load_board,
    parse_board,
    probe_i2c_sysfs,
)

SHIPPED = [
    "aiy-voice-bonnet",
    "aiy-voice-hat",
    "generic-usb",
    "mycroft-sj201",
    "respeaker-2mic",
    "respeaker-2mic-v2",
    "respeaker-4mic",
    "respeaker-4mic-linear",
    "respeaker-6mic",
    "respeaker-usb-v2",
]
SOURCE = "boards/test-board.toml"


# ---------------------------------------------------------------- shipped profiles


def test_every_board_of_the_reference_ships() -> None:
    assert list_boards() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_consistently(name: str) -> None:
    board = load_board(name)
    assert board.name == name
    assert board.title
    assert board.rates_hz[0] in (16000, 48000)
    used = set(board.mic_channels) | set(board.loopback_channels)
    assert max(used) < board.input_channels
    if board.leds.chip == "apa102":
        assert board.leds.spi_bus == 0


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_says_channels_are_zero_based(name: str) -> None:
    text = (Path(__file__).parents[2] / "hw" / "boards" / f"{name}.toml").read_text()
    assert "0-based" in text


def test_two_mic_v1() -> None:
    board = load_board("respeaker-2mic")
    assert set(board.alsa_card_names) == {"seeed2micvoicec", "wm8960soundcard"}
    assert board.input_channels == 2
    assert board.loopback_channels == ()
    assert board.shared_clock
    assert (board.leds.chip, board.leds.count, board.leds.spi_bus) == ("apa102", 3, 0)
    assert board.leds.power_pin is None
    assert [(b.name, b.pin, b.active_low) for b in board.buttons] == [("talk", 17, True)]
    assert board.i2c_addresses == (0x1A,)


def test_two_mic_v2_is_marked_unverified_where_the_reference_guesses() -> None:
    board = load_board("respeaker-2mic-v2")
    assert board.i2c_addresses == (0x18,)
    assert {"leds", "buttons"} <= set(board.unverified)
    assert "respeaker-2mic-v2_0" in board.notes


def test_four_mic_plays_through_another_card_and_powers_its_leds() -> None:
    board = load_board("respeaker-4mic")
    assert board.output_card is not None
    assert not board.shared_clock
    assert board.sample_width_bits == 32
    assert board.mic_channels == (0, 1, 2, 3)
    assert board.loopback_channels == ()
    assert (board.leds.chip, board.leds.count) == ("apa102", 12)
    assert board.leds.power_pin == 5
    assert board.leds.power_active_high
    assert board.buttons == ()
    assert board.i2c_addresses == (0x3B,)
    # Opposite mics (GCC-PHAT pairs 0-2 and 1-3) are 81.27 mm apart.
    pos = board.mic_positions_mm
    assert math.dist(pos[0], pos[2]) == pytest.approx(81.27)
    assert math.dist(pos[1], pos[3]) == pytest.approx(81.27)


def test_six_mic_has_hardware_loopback_on_the_last_two_channels() -> None:
    board = load_board("respeaker-6mic")
    assert board.alsa_card_names == ("seeed8micvoicec",)
    assert (board.input_channels, board.output_channels) == (8, 8)
    assert board.sample_width_bits == 32
    assert board.mic_channels == (0, 1, 2, 3, 4, 5)
    assert board.loopback_channels == (6, 7)
    assert board.rates_hz == (48000, 16000)
    assert board.shared_clock
    assert "buttons" in board.unverified


def test_linear_kit_shares_the_hat_but_has_four_mics() -> None:
    board = load_board("respeaker-4mic-linear")
    assert board.alsa_card_names == load_board("respeaker-6mic").alsa_card_names
    assert board.mic_channels == (0, 1, 2, 3)
    assert board.loopback_channels == (6, 7)
    assert board.leds == NO_LEDS


def test_usb_v2_reference_is_channel_five_in_zero_based_terms() -> None:
    board = load_board("respeaker-usb-v2")
    assert board.alsa_card_names == ("ArrayUAC10",)
    assert board.input_channels == 6
    assert board.mic_channels == (1, 2, 3, 4)
    assert board.loopback_channels == (5,)
    assert board.rates_hz == (16000,)
    assert (board.leds.chip, board.leds.count) == ("usb_hid", 12)
    assert board.i2c_addresses == ()


def test_aiy_and_sj201_buttons() -> None:
    hat = load_board("aiy-voice-hat")
    assert [(b.pin, b.active_low) for b in hat.buttons] == [(23, True)]
    assert (hat.leds.chip, hat.leds.pins) == ("gpio", (25,))
    assert load_board("aiy-voice-bonnet").buttons[0].pin == 23
    sj201 = load_board("mycroft-sj201")
    assert {b.name for b in sj201.buttons} == {"talk", "volume_up", "volume_down", "mute_switch"}
    assert "buttons" in sj201.unverified


def test_generic_usb_has_no_leds_buttons_or_detection_handles() -> None:
    board = load_board("generic-usb")
    assert board.leds == NO_LEDS
    assert board.buttons == ()
    assert board.alsa_card_names == ()
    assert board.i2c_addresses == ()
    assert board.input_channels in (1, 2)


def test_unknown_board_suggests_the_closest_name() -> None:
    with pytest.raises(BoardError) as err:
        load_board("respeaker-2mik")
    assert "did you mean 'respeaker-2mic'" in str(err.value)
    assert "respeaker-usb-v2" in str(err.value)


def test_unknown_board_far_from_all_names_still_lists_them() -> None:
    with pytest.raises(BoardError) as err:
        load_board("../pyproject")
    assert "did you mean" not in str(err.value)
    assert "generic-usb" in str(err.value)


def test_load_board_names_the_file_of_a_broken_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken-syntax.toml").write_text("title = \n")
    (tmp_path / "broken-value.toml").write_text('title = "x"\ninput_channels = "two"\n')
    (tmp_path / "README.md").write_text("not a profile")
    monkeypatch.setattr(boards, "_board_dir", lambda: tmp_path)
    assert list_boards() == ["broken-syntax", "broken-value"]
    with pytest.raises(BoardError, match="not valid TOML") as err:
        load_board("broken-syntax")
    assert err.value.source == str(tmp_path / "broken-syntax.toml")
    with pytest.raises(BoardError) as err:
        load_board("broken-value")
    assert err.value.source == str(tmp_path / "broken-value.toml")


# ---------------------------------------------------------------- parse_board


def _valid() -> dict[str, Any]:
    return {
        "title": "Test board",
        "alsa_card_names": ["testcard"],
        "input_channels": 4,
        "output_channels": 2,
        "rates_hz": [16000, 48000],
        "sample_width_bits": 16,
        "mic_channels": [0, 1],
        "loopback_channels": [3],
        "leds": {"chip": "apa102", "count": 3, "spi_bus": 0, "spi_device": 0, "power_pin": 5},
        "buttons": [{"name": "talk", "pin": 17, "active_low": True}],
        "i2c_addresses": [0x1A],
        "mic_positions_mm": [[-20.0, 0], [20, 0.0]],
        "notes": "n",
        "unverified": ["buttons", "leds.power_pin"],
    }


def test_parse_board_accepts_a_full_profile() -> None:
    board = parse_board(_valid(), SOURCE)
    assert board.name == "test-board"
    assert board.loopback_channels == (3,)
    assert board.leds.power_pin == 5
    assert board.leds.power_active_high
    assert board.mic_positions_mm == ((-20.0, 0.0), (20.0, 0.0))
    assert board.unverified == ("buttons", "leds.power_pin")


def test_parse_board_fills_defaults_for_optional_keys() -> None:
    data = {
        k: v
        for k, v in _valid().items()
        if k
        in (
            "title",
            "alsa_card_names",
            "input_channels",
            "output_channels",
            "rates_hz",
            "sample_width_bits",
            "mic_channels",
        )
    }
    board = parse_board(data, SOURCE)
    assert board.loopback_channels == ()
    assert board.output_card is None
    assert board.shared_clock
    assert board.leds == NO_LEDS
    assert board.buttons == ()
    assert board.i2c_addresses == ()
    assert board.mic_positions_mm == ()
    assert (board.notes, board.unverified) == ("", ())


def test_parse_board_accepts_rgb_gpio_leds_with_three_pins_each() -> None:
    data = _valid()
    data["leds"] = {"chip": "gpio_rgb", "count": 1, "pins": [5, 6, 13]}
    assert parse_board(data, SOURCE).leds.pins == (5, 6, 13)


def test_output_card_makes_two_clocks() -> None:
    data = _valid()
    data["output_card"] = "Headphones"
    board = parse_board(data, SOURCE)
    assert board.output_card == "Headphones"
    assert not board.shared_clock


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def edit(data: dict[str, Any]) -> None:
        target: Any = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return edit


def _drop(*path: Any) -> Any:
    def edit(data: dict[str, Any]) -> None:
        target: Any = data
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return edit


BAD: list[tuple[str, Any, str, str]] = [
    ("unknown top key", _set(("colour",), "red"), "colour", "unknown key"),
    ("missing title", _drop("title"), "title", "missing"),
    ("empty title", _set(("title",), "  "), "title", "not valid"),
    ("bool as int", _set(("input_channels",), True), "input_channels", "a boolean"),
    ("string as int", _set(("input_channels",), "4"), "input_channels", "a string"),
    ("no input channels", _set(("input_channels",), 0), "input_channels", "out of range"),
    ("mic out of range", _set(("mic_channels",), [0, 4]), "mic_channels[1]", "out of range"),
    ("no mics", _set(("mic_channels",), []), "mic_channels", "empty"),
    ("mic twice", _set(("mic_channels",), [1, 1]), "mic_channels", "twice"),
    ("mics not a list", _set(("mic_channels",), 0), "mic_channels", "expected a list"),
    ("loopback on a mic", _set(("loopback_channels",), [1]), "loopback_channels", "also a mic"),
    (
        "loopback out of range",
        _set(("loopback_channels",), [-1]),
        "loopback_channels[0]",
        "out of range",
    ),
    ("odd rate", _set(("rates_hz",), [16000, 22050]), "rates_hz[1]", "not supported"),
    ("no rates", _set(("rates_hz",), []), "rates_hz", "empty"),
    ("bool rate", _set(("rates_hz",), [True]), "rates_hz[0]", "a boolean"),
    ("24-bit", _set(("sample_width_bits",), 24), "sample_width_bits", "not supported"),
    (
        "card id too long",
        _set(("alsa_card_names",), ["seeed2micvoicecard"]),
        "alsa_card_names[0]",
        "not valid",
    ),
    (
        "card ids not a list",
        _set(("alsa_card_names",), "testcard"),
        "alsa_card_names",
        "expected a list",
    ),
    ("output card not a string", _set(("output_card",), 1), "output_card", "an integer"),
    ("leds not a table", _set(("leds",), "apa102"), "leds", "expected a table"),
    ("unknown led key", _set(("leds", "brightness"), 10), "leds.brightness", "unknown key"),
    ("unknown chip", _set(("leds", "chip"), "ws2812"), "leds.chip", "not a known"),
    ("no chip", _drop("leds", "chip"), "leds.chip", "missing"),
    ("apa102 without bus", _drop("leds", "spi_bus"), "leds.spi_bus", "missing"),
    ("bool led count", _set(("leds", "count"), True), "leds.count", "a boolean"),
    ("zero leds", _set(("leds", "count"), 0), "leds.count", "1 or more"),
    ("power pin off header", _set(("leds", "power_pin"), 40), "leds.power_pin", "out of range"),
    (
        "power polarity without pin",
        _set(("leds",), {"chip": "usb_hid", "count": 12, "power_active_high": False}),
        "leds.power_active_high",
        "without power_pin",
    ),
    (
        "spi on a gpio led",
        _set(("leds",), {"chip": "gpio", "count": 1, "pins": [25], "spi_bus": 0}),
        "leds.spi_bus",
        "set for chip",
    ),
    (
        "gpio led pins short",
        _set(("leds",), {"chip": "gpio", "count": 2, "pins": [25]}),
        "leds.pins",
        "exactly 2",
    ),
    (
        "rgb led pins short",
        _set(("leds",), {"chip": "gpio_rgb", "count": 1, "pins": [5, 6]}),
        "leds.pins",
        "exactly 3",
    ),
    (
        "count with no leds",
        _set(("leds",), {"chip": "none", "count": 3}),
        "leds.count",
        "chip is 'none'",
    ),
    (
        "pin with no leds",
        _set(("leds",), {"chip": "none", "power_pin": 5}),
        "leds.power_pin",
        "chip is 'none'",
    ),
    ("buttons not a list", _set(("buttons",), {"name": "talk"}), "buttons", "expected a list"),
    ("button without pin", _drop("buttons", 0, "pin"), "buttons[0].pin", "missing"),
    (
        "button polarity text",
        _set(("buttons", 0, "active_low"), "yes"),
        "buttons[0].active_low",
        "a string",
    ),
    (
        "button name style",
        _set(("buttons", 0, "name"), "Talk Button"),
        "buttons[0].name",
        "not valid",
    ),
    (
        "unknown button key",
        _set(("buttons", 0, "debounce_ms"), 50),
        "buttons[0].debounce_ms",
        "unknown key",
    ),
    (
        "button on led power pin",
        _set(("buttons", 0, "pin"), 5),
        "buttons[0].pin",
        "also an LED pin",
    ),
    (
        "two buttons one name",
        _set(("buttons",), [{"name": "talk", "pin": 17}, {"name": "talk", "pin": 27}]),
        "buttons",
        "twice",
    ),
    (
        "two buttons one pin",
        _set(("buttons",), [{"name": "talk", "pin": 17}, {"name": "mute", "pin": 17}]),
        "buttons",
        "GPIO17 is listed twice",
    ),
    ("i2c beyond 7 bits", _set(("i2c_addresses",), [0x80]), "i2c_addresses[0]", "0x80"),
    (
        "positions per mic",
        _set(("mic_positions_mm",), [[0, 0]]),
        "mic_positions_mm",
        "1 positions for 2 mics",
    ),
    (
        "position not a pair",
        _set(("mic_positions_mm",), [[0.0], [1.0]]),
        "mic_positions_mm[0]",
        "pair",
    ),
    (
        "position bool",
        _set(("mic_positions_mm",), [[True, 0], [1, 0]]),
        "mic_positions_mm[0][0]",
        "a boolean",
    ),
    (
        "position nan",
        _set(("mic_positions_mm",), [[math.nan, 0], [1, 0]]),
        "mic_positions_mm[0][0]",
        "finite",
    ),
    ("notes not text", _set(("notes",), 5), "notes", "an integer"),
    ("unverified typo", _set(("unverified",), ["buttonz"]), "unverified[0]", "names no"),
    ("unverified led typo", _set(("unverified",), ["leds.pwr"]), "unverified[0]", "names no"),
]


@pytest.mark.parametrize(("edit", "key", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_parse_board_rejects(edit: Any, key: str, fragment: str) -> None:
    data = copy.deepcopy(_valid())
    edit(data)
    with pytest.raises(BoardError) as err:
        parse_board(data, SOURCE)
    message = str(err.value)
    assert message.startswith(f"{SOURCE}: {key}: "), message
    assert fragment in message
    assert "allowed:" in message
    assert (err.value.source, err.value.key) == (SOURCE, key)


def test_board_error_is_a_value_error() -> None:
    assert issubclass(BoardError, ValueError)


# ---------------------------------------------------------------- detection


def _detected(i2c: set[int], cards: list[str]) -> str | None:
    board = detect_board(i2c, cards)
    return None if board is None else board.name


@pytest.mark.parametrize(
    ("cards", "i2c", "expected"),
    [
        (["Headphones", "vc4hdmi0", "seeed4micvoicec"], set(), "respeaker-4mic"),
        (["seeed2micvoicec"], set(), "respeaker-2mic"),
        (["seeed2micvoicec"], {0x1A}, "respeaker-2mic"),
        (["seeed2micvoicec"], {0x18}, "respeaker-2mic-v2"),
        (["wm8960soundcard"], set(), "respeaker-2mic"),
        (["seeed8micvoicec"], set(), "respeaker-6mic"),
        (["seeed8micvoicec"], {0x3B, 0x35}, "respeaker-6mic"),
        (["ArrayUAC10"], set(), "respeaker-usb-v2"),
        (["sndrpigooglevoi"], set(), "aiy-voice-hat"),
        (["aiyvoicebonnet"], {0x1A}, "aiy-voice-bonnet"),
        # The first card ALSA lists decides.
        (["ArrayUAC10", "seeed2micvoicec"], set(), "respeaker-usb-v2"),
        # A known card outweighs I2C evidence for another board.
        (["seeed4micvoicec"], {0x1A}, "respeaker-4mic"),
        # No card: I2C alone, most specific profile first.
        ([], {0x3B}, "respeaker-4mic"),
        ([], {0x3B, 0x35}, "respeaker-6mic"),
        ([], {0x1A}, "respeaker-2mic"),
        ([], {0x18}, "respeaker-2mic-v2"),
        ([], {0x1A, 0x52}, "aiy-voice-bonnet"),
        ([], {0x2F}, "mycroft-sj201"),
        (["PCH", "HDMI"], {0x3B, 0x50}, "respeaker-4mic"),
        # Nothing recognisable.
        ([], {0x35}, None),
        ([], set(), None),
        (["PCH", "Headphones"], {0x50}, None),
    ],
)
def test_detect_board(cards: list[str], i2c: set[int], expected: str | None) -> None:
    assert _detected(i2c, cards) == expected


def test_detect_board_takes_one_shot_iterables() -> None:
    board = detect_board(iter([0x18]), (c for c in ["seeed2micvoicec"]))
    assert board is not None and board.name == "respeaker-2mic-v2"


def test_detect_board_never_guesses_the_generic_profile() -> None:
    assert _detected(set(range(0x03, 0x78)), []) != "generic-usb"
    assert _detected(set(), ["Device", "default"]) is None


# ---------------------------------------------------------------- sysfs and /proc


def _i2c_device(devices: Path, name: str, *, bound: bool) -> None:
    """Mimic sysfs: the bus entry is a symlink, ``driver`` a link to the driver dir."""
    real = devices.parent / "platform" / name
    real.mkdir(parents=True)
    (real / "name").write_text("chip\n")
    if bound:
        driver = devices.parent / "drivers" / name
        driver.mkdir(parents=True)
        os.symlink(driver, real / "driver")
    os.symlink(real, devices / name)


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    devices = tmp_path / "sys" / "bus" / "i2c" / "devices"
    devices.mkdir(parents=True)
    _i2c_device(devices, "1-003b", bound=True)
    _i2c_device(devices, "1-0035", bound=True)
    _i2c_device(devices, "1-001a", bound=False)  # declared by an overlay, no chip answered
    _i2c_device(devices, "11-0050", bound=True)  # HDMI DDC EEPROM
    _i2c_device(devices, "i2c-1", bound=False)  # the adapter itself
    (devices / "1-0052-extra").mkdir()  # not a device name
    return devices


def test_probe_i2c_sysfs_reports_bound_devices_on_the_header_bus(sysfs: Path) -> None:
    assert probe_i2c_sysfs(sysfs) == {0x3B, 0x35}


def test_probe_i2c_sysfs_other_buses_on_request(sysfs: Path) -> None:
    assert probe_i2c_sysfs(sysfs, bus=11) == {0x50}
    assert probe_i2c_sysfs(sysfs, bus=None) == {0x3B, 0x35, 0x50}


def test_probe_i2c_sysfs_without_i2c_is_empty(tmp_path: Path) -> None:
    assert probe_i2c_sysfs(tmp_path / "absent") == set()


CARDS = """\
 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones
                      bcm2835 Headphones
 1 [seeed8micvoicec]: seeed-8mic-voi - seeed-8mic-voicecard
                      seeed-8mic-voicecard
 2 [ArrayUAC10     ]: USB-Audio - ReSpeaker 4 Mic Array (UAC1.0)
                      SEEED ReSpeaker 4 Mic Array (UAC1.0) at usb-0000:01:00.0-1.3, full speed
10 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0
                      vc4-hdmi-0
"""


def test_alsa_card_ids_in_card_order_without_padding(tmp_path: Path) -> None:
    (tmp_path / "cards").write_text(CARDS)
    assert alsa_card_ids(tmp_path) == ["Headphones", "seeed8micvoicec", "ArrayUAC10", "vc4hdmi0"]


def test_alsa_card_ids_with_no_cards(tmp_path: Path) -> None:
    (tmp_path / "cards").write_text("--- no soundcards ---\n")
    assert alsa_card_ids(tmp_path) == []
    assert alsa_card_ids(tmp_path / "absent") == []


def test_detection_from_probed_system(tmp_path: Path, sysfs: Path) -> None:
    (tmp_path / "cards").write_text(CARDS)
    board = detect_board(probe_i2c_sysfs(sysfs), alsa_card_ids(tmp_path))
    assert isinstance(board, BoardProfile)
    assert board.name == "respeaker-6mic"
    assert board.loopback_channels == (6, 7)
