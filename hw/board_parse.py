"""Building a board profile from decoded TOML, checking every key once, at load.

A wrong profile fails with the file and key named, instead of surfacing later as
silence, garbled channels or an echo canceller fed the wrong reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from math import isfinite
from pathlib import PurePath
from typing import Any, cast

from hw.board_profile import (
    LED_CHIPS,
    NO_LEDS,
    BoardError,
    BoardProfile,
    ButtonProfile,
    LedChip,
    LedProfile,
)

SUPPORTED_RATES_HZ: tuple[int, ...] = (8000, 16000, 32000, 44100, 48000)
SAMPLE_WIDTHS_BITS: tuple[int, ...] = (16, 32)
MAX_CHANNELS = 32
GPIO_PINS = (0, 27)  # BCM numbers reachable on the 40-pin header
I2C_ADDRESSES = (0x03, 0x77)  # 7-bit range; 0x04 is used by one board's LED controller
_CARD_ID = re.compile(r"[A-Za-z0-9_-]{1,15}")  # ALSA keeps card ids to 15 such characters
_BUTTON_NAME = re.compile(r"[a-z][a-z0-9_]*")

_REQUIRED = (
    "title",
    "alsa_card_names",
    "input_channels",
    "output_channels",
    "rates_hz",
    "sample_width_bits",
    "mic_channels",
)
_OPTIONAL = (
    "loopback_channels",
    "output_card",
    "leds",
    "buttons",
    "i2c_addresses",
    "mic_positions_mm",
    "notes",
    "unverified",
)
_TOP_KEYS = _REQUIRED + _OPTIONAL
_LED_KEYS = (
    "chip",
    "count",
    "spi_bus",
    "spi_device",
    "pins",
    "power_pin",
    "power_active_high",
    "mic_pixels",
    "ring_offset_deg",
)
_BUTTON_KEYS = ("name", "pin", "active_low")
_Fmt = Callable[[Any], str]


def _kind(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


class _Check:
    """Typed reads of decoded TOML values; every failure names the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str, allowed: str) -> BoardError:
        return BoardError(self.source, key, problem, allowed)

    def integer(self, value: object, key: str, lo: int, hi: int, fmt: _Fmt = str) -> int:
        allowed = f"integers {fmt(lo)}..{fmt(hi)}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {_kind(value)}", allowed)
        if not lo <= value <= hi:
            raise self.fail(key, f"{fmt(value)} is out of range", allowed)
        return value

    def optional(
        self, table: Mapping[str, Any], key: str, path: str, lo: int, hi: int
    ) -> int | None:
        return None if key not in table else self.integer(table[key], path, lo, hi)

    def choice(self, value: int, key: str, choices: tuple[int, ...], unit: str) -> int:
        if value not in choices:
            raise self.fail(key, f"{value}{unit} is not supported", ", ".join(map(str, choices)))
        return value

    def flag(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected a boolean, got {_kind(value)}", "true, false")
        return value

    def text(
        self,
        value: object,
        key: str,
        pattern: re.Pattern[str] | None = None,
        allowed: str = "a non-empty string",
        blank_ok: bool = False,
    ) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_kind(value)}", allowed)
        if (not value.strip() and not blank_ok) or (pattern and not pattern.fullmatch(value)):
            raise self.fail(key, f"{value!r} is not valid", allowed)
        return value

    def number(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not isfinite(value):
            raise self.fail(key, f"expected a finite number, got {_kind(value)}", "millimetres")
        return float(value)

    def seq(self, value: object, key: str, what: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {_kind(value)}", f"a list of {what}")
        return value

    def unique(self, items: tuple[Any, ...], key: str, fmt: _Fmt = repr) -> None:
        for i, item in enumerate(items):
            if item in items[:i]:
                raise self.fail(key, f"{fmt(item)} is listed twice", "each value once")

    def integers(
        self, value: object, key: str, lo: int, hi: int, fmt: _Fmt = str, needed: str = ""
    ) -> tuple[int, ...]:
        """Distinct integers; ``needed`` says what an empty list lacks, if it may not be."""
        items = self.seq(value, key, f"integers {fmt(lo)}..{fmt(hi)}")
        out = tuple(self.integer(v, f"{key}[{i}]", lo, hi, fmt) for i, v in enumerate(items))
        self.unique(out, key, fmt)
        if needed and not out:
            raise self.fail(key, "is empty", needed)
        return out

    def texts(
        self,
        value: object,
        key: str,
        pattern: re.Pattern[str] | None = None,
        allowed: str = "non-empty strings",
    ) -> tuple[str, ...]:
        items = self.seq(value, key, allowed)
        out = tuple(self.text(v, f"{key}[{i}]", pattern, allowed) for i, v in enumerate(items))
        self.unique(out, key)
        return out

    def table(
        self, value: object, key: str, known: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_kind(value)}", "a table")
        table = cast(Mapping[str, Any], value)
        prefix = f"{key}." if key else ""
        for name in table:
            if name not in known:
                raise self.fail(prefix + name, "unknown key", ", ".join(known))
        for name in required:
            if name not in table:
                raise self.fail(prefix + name, "missing", f"required: {', '.join(required)}")
        return table


def _parse_leds(c: _Check, value: object) -> LedProfile:
    t = c.table(value, "leds", _LED_KEYS, required=("chip",))
    chip = c.text(t["chip"], "leds.chip")
    if chip not in LED_CHIPS:
        raise c.fail("leds.chip", f"{chip!r} is not a known LED chip", ", ".join(LED_CHIPS))
    count = c.integer(t.get("count", 0), "leds.count", 0, 1024)
    pins = c.integers(t.get("pins", []), "leds.pins", *GPIO_PINS)
    bus = c.optional(t, "spi_bus", "leds.spi_bus", 0, 6)
    dev = c.optional(t, "spi_device", "leds.spi_device", 0, 2)
    power = c.optional(t, "power_pin", "leds.power_pin", *GPIO_PINS)
    high = c.flag(t.get("power_active_high", True), "leds.power_active_high")
    if chip == "none":
        extra = [k for k in _LED_KEYS[2:] if k in t] or (["count"] if count else [])
        if extra:
            raise c.fail(f"leds.{extra[0]}", "set although chip is 'none'", "chip only")
        return NO_LEDS
    if count < 1:
        raise c.fail("leds.count", "missing or 0 for a real LED chip", "1 or more")
    for key, spi in (("spi_bus", bus), ("spi_device", dev)):
        if (spi is None) == (chip == "apa102"):
            raise c.fail(
                f"leds.{key}",
                f"{'missing' if spi is None else 'set'} for chip {chip!r}",
                "spi_bus and spi_device for apa102, for no other chip",
            )
    pins_needed = {"gpio": count, "gpio_rgb": 3 * count}.get(chip, 0)
    if len(pins) != pins_needed:
        raise c.fail(
            "leds.pins", f"{len(pins)} pins for {count} {chip} LED(s)", f"exactly {pins_needed}"
        )
    if power is not None and power in pins:
        raise c.fail("leds.power_pin", f"GPIO{power} is also an LED pin", "a pin of its own")
    if power is None and "power_active_high" in t:
        raise c.fail("leds.power_active_high", "set without power_pin", "only with power_pin")
    mic_pixels = c.integers(t.get("mic_pixels", []), "leds.mic_pixels", 0, count - 1)
    offset = t.get("ring_offset_deg", 0.0)
    if (
        isinstance(offset, bool)
        or not isinstance(offset, int | float)
        or not (-360.0 <= offset <= 360.0)
    ):
        raise c.fail("leds.ring_offset_deg", f"{offset!r} is not an angle", "-360.0..360.0")
    return LedProfile(
        cast(LedChip, chip), count, bus, dev, pins, power, high, mic_pixels, float(offset)
    )


def _parse_buttons(c: _Check, value: object, leds: LedProfile) -> tuple[ButtonProfile, ...]:
    led_pins = set(leds.pins) | ({leds.power_pin} if leds.power_pin is not None else set())
    out: list[ButtonProfile] = []
    for i, item in enumerate(c.seq(value, "buttons", "button tables")):
        key = f"buttons[{i}]"
        t = c.table(item, key, _BUTTON_KEYS, required=("name", "pin"))
        name = c.text(t["name"], f"{key}.name", _BUTTON_NAME, "lower_snake_case names")
        pin = c.integer(t["pin"], f"{key}.pin", *GPIO_PINS)
        if pin in led_pins:
            raise c.fail(f"{key}.pin", f"GPIO{pin} is also an LED pin", "a pin of its own")
        out.append(ButtonProfile(name, pin, c.flag(t.get("active_low", True), f"{key}.active_low")))
    c.unique(tuple(b.name for b in out), "buttons")
    c.unique(tuple(b.pin for b in out), "buttons", lambda p: f"GPIO{p}")
    return tuple(out)


def _parse_positions(c: _Check, value: object, mics: int) -> tuple[tuple[float, float], ...]:
    out: list[tuple[float, float]] = []
    for i, pair in enumerate(c.seq(value, "mic_positions_mm", "[x, y] pairs")):
        key = f"mic_positions_mm[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise c.fail(key, "not an [x, y] pair", "[x, y] in millimetres")
        out.append((c.number(pair[0], f"{key}[0]"), c.number(pair[1], f"{key}[1]")))
    if out and len(out) != mics:
        raise c.fail(
            "mic_positions_mm",
            f"{len(out)} positions for {mics} mics",
            "none, or one per entry of mic_channels",
        )
    return tuple(out)


def _parse_unverified(c: _Check, value: object) -> tuple[str, ...]:
    names = c.texts(value, "unverified")
    known = _TOP_KEYS + tuple(f"leds.{k}" for k in _LED_KEYS)
    for i, name in enumerate(names):
        if name not in known:
            raise c.fail(f"unverified[{i}]", f"{name!r} names no profile key", ", ".join(known))
    return names


def parse_board(data: Mapping[str, Any], source: str) -> BoardProfile:
    """Build a profile from decoded TOML, checking every key; ``source`` names the file.

    The profile's name is the file stem of ``source``. Raises BoardError on the first
    problem found.
    """
    c = _Check(source)
    c.table(dict(data), "", _TOP_KEYS, required=_REQUIRED)
    n_in = c.integer(data["input_channels"], "input_channels", 1, MAX_CHANNELS)
    rates = c.integers(data["rates_hz"], "rates_hz", 1, 10**6, needed="a rate, preferred first")
    for i, rate in enumerate(rates):
        c.choice(rate, f"rates_hz[{i}]", SUPPORTED_RATES_HZ, " Hz")
    mics = c.integers(data["mic_channels"], "mic_channels", 0, n_in - 1, needed="a 0-based channel")
    loop = c.integers(data.get("loopback_channels", []), "loopback_channels", 0, n_in - 1)
    for ch in loop:
        if ch in mics:
            raise c.fail(
                "loopback_channels",
                f"channel {ch} is also a mic channel",
                "channels not in mic_channels",
            )
    leds = NO_LEDS if "leds" not in data else _parse_leds(c, data["leds"])
    output_card = data.get("output_card")
    return BoardProfile(
        name=PurePath(source).stem,
        title=c.text(data["title"], "title"),
        alsa_card_names=c.texts(
            data["alsa_card_names"],
            "alsa_card_names",
            _CARD_ID,
            "ALSA card ids, 1-15 of A-Z a-z 0-9 _ -",
        ),
        input_channels=n_in,
        output_channels=c.integer(data["output_channels"], "output_channels", 1, MAX_CHANNELS),
        rates_hz=rates,
        sample_width_bits=c.choice(
            c.integer(data["sample_width_bits"], "sample_width_bits", 1, 64),
            "sample_width_bits",
            SAMPLE_WIDTHS_BITS,
            " bits",
        ),
        mic_channels=mics,
        loopback_channels=loop,
        output_card=None
        if output_card is None
        else c.text(output_card, "output_card", _CARD_ID, "an ALSA card id"),
        leds=leds,
        buttons=_parse_buttons(c, data.get("buttons", []), leds),
        i2c_addresses=c.integers(
            data.get("i2c_addresses", []),
            "i2c_addresses",
            *I2C_ADDRESSES,
            fmt=lambda a: f"0x{a:02x}",
        ),
        mic_positions_mm=_parse_positions(c, data.get("mic_positions_mm", []), len(mics)),
        notes=c.text(data.get("notes", ""), "notes", allowed="a string", blank_ok=True),
        unverified=_parse_unverified(c, data.get("unverified", [])),
    )
