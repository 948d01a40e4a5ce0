"""Board profiles: what each supported mic HAT or USB array looks like to software.

The facts live in TOML files next to this module (``hw/boards/*.toml``) so that a new
board is a data change, not a code change. They are validated once, at load: a wrong
profile then fails at start with the file and key named, instead of surfacing later as
silence, garbled channels or an echo canceller fed the wrong reference.

Channel numbers are 0-based everywhere here.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from math import isfinite
from pathlib import Path, PurePath
from typing import Any, Literal, cast, get_args

LedChip = Literal["apa102", "gpio", "gpio_rgb", "usb_hid", "i2c", "none"]
LED_CHIPS: tuple[str, ...] = get_args(LedChip)
SUPPORTED_RATES_HZ: tuple[int, ...] = (8000, 16000, 32000, 44100, 48000)
SAMPLE_WIDTHS_BITS: tuple[int, ...] = (16, 32)
MAX_CHANNELS = 32
GPIO_PINS = (0, 27)  # BCM numbers reachable on the 40-pin header
I2C_ADDRESSES = (0x03, 0x77)  # 7-bit range; 0x04 is used by one board's LED controller
_CARD_ID = re.compile(r"[A-Za-z0-9_-]{1,15}")  # ALSA keeps card ids to 15 such characters
_BUTTON_NAME = re.compile(r"[a-z][a-z0-9_]*")

_REQUIRED = ("title", "alsa_card_names", "input_channels", "output_channels", "rates_hz",
             "sample_width_bits", "mic_channels")
_OPTIONAL = ("loopback_channels", "output_card", "leds", "buttons", "i2c_addresses",
             "mic_positions_mm", "notes", "unverified")
_TOP_KEYS = _REQUIRED + _OPTIONAL
_LED_KEYS = ("chip", "count", "spi_bus", "spi_device", "pins", "power_pin", "power_active_high")
_BUTTON_KEYS = ("name", "pin", "active_low")
_Fmt = Callable[[Any], str]

# When the evidence cannot tell two boards apart, the earlier one here wins. The 6-mic
# and the 4-mic linear kits share one HAT (card and I2C chips); the 6-mic is the common
# one. The 2-mic v1 and v2 share a card id; v1 is the common one, v2 wins on 0x18.
_TIE_BREAK = ("respeaker-6mic", "respeaker-2mic")


class BoardError(ValueError):
    """A board profile is wrong or missing; says which file, which key and what fits."""

    def __init__(self, source: str, key: str, problem: str, allowed: str) -> None:
        super().__init__(f"{source}: {key}: {problem} (allowed: {allowed})")
        self.source = source
        self.key = key


@dataclass(frozen=True)
class LedProfile:
    chip: LedChip
    count: int
    spi_bus: int | None
    spi_device: int | None
    pins: tuple[int, ...]
    power_pin: int | None
    power_active_high: bool


NO_LEDS = LedProfile("none", 0, None, None, (), None, True)


@dataclass(frozen=True)
class ButtonProfile:
    name: str
    pin: int
    active_low: bool


@dataclass(frozen=True)
class BoardProfile:
    """One board as the audio, LED and button adapters need to see it.

    An empty ``alsa_card_names`` means the board has no fixed card id (a generic USB
    card, or one whose id is not confirmed): open the system's default device.
    ``rates_hz`` are capture rates, first preferred; on a shared-clock board playback
    runs at the same rate. ``output_card`` names a separate playback card when the
    board has no DAC of its own; capture and playback then run on two clocks and the
    echo canceller must follow drift. Entries of ``unverified`` name keys whose values
    come from assumption rather than a checked source, so callers can warn on them.
    """

    name: str
    title: str
    alsa_card_names: tuple[str, ...]
    input_channels: int
    output_channels: int
    rates_hz: tuple[int, ...]
    sample_width_bits: int
    mic_channels: tuple[int, ...]
    loopback_channels: tuple[int, ...]
    output_card: str | None
    leds: LedProfile
    buttons: tuple[ButtonProfile, ...]
    i2c_addresses: tuple[int, ...]
    mic_positions_mm: tuple[tuple[float, float], ...]
    notes: str
    unverified: tuple[str, ...]

    @property
    def shared_clock(self) -> bool:
        """True when mic and DAC sit on one card, so their samples share one clock."""
        return self.output_card is None


# ---------------------------------------------------------------- parsing


def _kind(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


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

    def optional(self, table: Mapping[str, Any], key: str, path: str, lo: int, hi: int
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

    def text(self, value: object, key: str, pattern: re.Pattern[str] | None = None,
             allowed: str = "a non-empty string", blank_ok: bool = False) -> str:
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

    def integers(self, value: object, key: str, lo: int, hi: int, fmt: _Fmt = str,
                 needed: str = "") -> tuple[int, ...]:
        """Distinct integers; ``needed`` says what an empty list lacks, if it may not be."""
        items = self.seq(value, key, f"integers {fmt(lo)}..{fmt(hi)}")
        out = tuple(self.integer(v, f"{key}[{i}]", lo, hi, fmt) for i, v in enumerate(items))
        self.unique(out, key, fmt)
        if needed and not out:
            raise self.fail(key, "is empty", needed)
        return out

    def texts(self, value: object, key: str, pattern: re.Pattern[str] | None = None,
              allowed: str = "non-empty strings") -> tuple[str, ...]:
        items = self.seq(value, key, allowed)
        out = tuple(self.text(v, f"{key}[{i}]", pattern, allowed) for i, v in enumerate(items))
        self.unique(out, key)
        return out

    def table(self, value: object, key: str, known: tuple[str, ...],
              required: tuple[str, ...] = ()) -> Mapping[str, Any]:
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
            raise c.fail(f"leds.{key}", f"{'missing' if spi is None else 'set'} for chip "
                         f"{chip!r}", "spi_bus and spi_device for apa102, for no other chip")
    pins_needed = {"gpio": count, "gpio_rgb": 3 * count}.get(chip, 0)
    if len(pins) != pins_needed:
        raise c.fail("leds.pins", f"{len(pins)} pins for {count} {chip} LED(s)",
                     f"exactly {pins_needed}")
    if power is not None and power in pins:
        raise c.fail("leds.power_pin", f"GPIO{power} is also an LED pin", "a pin of its own")
    if power is None and "power_active_high" in t:
        raise c.fail("leds.power_active_high", "set without power_pin", "only with power_pin")
    return LedProfile(cast(LedChip, chip), count, bus, dev, pins, power, high)


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
        out.append(ButtonProfile(name, pin, c.flag(t.get("active_low", True),
                                                   f"{key}.active_low")))
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
        raise c.fail("mic_positions_mm", f"{len(out)} positions for {mics} mics",
                     "none, or one per entry of mic_channels")
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
    mics = c.integers(data["mic_channels"], "mic_channels", 0, n_in - 1,
                      needed="a 0-based channel")
    loop = c.integers(data.get("loopback_channels", []), "loopback_channels", 0, n_in - 1)
    for ch in loop:
        if ch in mics:
            raise c.fail("loopback_channels", f"channel {ch} is also a mic channel",
                         "channels not in mic_channels")
    leds = NO_LEDS if "leds" not in data else _parse_leds(c, data["leds"])
    output_card = data.get("output_card")
    return BoardProfile(
        name=PurePath(source).stem,
        title=c.text(data["title"], "title"),
        alsa_card_names=c.texts(data["alsa_card_names"], "alsa_card_names", _CARD_ID,
                                "ALSA card ids, 1-15 of A-Z a-z 0-9 _ -"),
        input_channels=n_in,
        output_channels=c.integer(data["output_channels"], "output_channels", 1, MAX_CHANNELS),
        rates_hz=rates,
        sample_width_bits=c.choice(c.integer(data["sample_width_bits"], "sample_width_bits",
                                             1, 64), "sample_width_bits", SAMPLE_WIDTHS_BITS,
                                   " bits"),
        mic_channels=mics,
        loopback_channels=loop,
        output_card=None if output_card is None else c.text(
            output_card, "output_card", _CARD_ID, "an ALSA card id"),
        leds=leds,
        buttons=_parse_buttons(c, data.get("buttons", []), leds),
        i2c_addresses=c.integers(data.get("i2c_addresses", []), "i2c_addresses", *I2C_ADDRESSES,
                                 fmt=lambda a: f"0x{a:02x}"),
        mic_positions_mm=_parse_positions(c, data.get("mic_positions_mm", []), len(mics)),
        notes=c.text(data.get("notes", ""), "notes", allowed="a string", blank_ok=True),
        unverified=_parse_unverified(c, data.get("unverified", [])),
    )


# ---------------------------------------------------------------- shipped profiles


def _board_dir() -> Traversable:
    return resources.files("hw").joinpath("boards")


def list_boards() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(entry.name.removesuffix(".toml") for entry in _board_dir().iterdir()
                  if entry.name.endswith(".toml") and entry.is_file())


def load_board(name: str) -> BoardProfile:
    """The shipped profile ``name``; an unknown name lists the ones that exist."""
    available = list_boards()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BoardError("hw/boards", "board", f"no profile named {name!r}{hint}",
                         ", ".join(available))
    return _load_shipped(name)


@cache
def _load_shipped(name: str) -> BoardProfile:
    resource = _board_dir().joinpath(f"{name}.toml")
    source = str(resource)
    try:
        data = tomllib.loads(resource.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BoardError(source, "(file)", f"not valid TOML: {exc}", "TOML 1.0") from exc
    return parse_board(data, source)


# ---------------------------------------------------------------- detection


def detect_board(i2c_addresses: Iterable[int], alsa_cards: Iterable[str]) -> BoardProfile | None:
    """Guess the attached board from ALSA card ids and I2C addresses; None if nothing fits.

    A card id is the stronger evidence: the first card (in ALSA order) that a profile
    claims decides, and I2C only separates profiles sharing that id (the 2-mic v1 and v2
    both register ``seeed2micvoicec``; 0x18 marks v2). Without a known card, a profile
    matches when all its I2C addresses are present and the one with the most addresses
    wins: 0x3b alone is the 4-mic, 0x3b + 0x35 the 6-mic kit, 0x1a + 0x52 the AIY bonnet
    rather than a WM8960 2-mic. The 6-mic and the 4-mic linear kits use the same HAT
    (same card, same chips), so nothing here can tell them apart: the 6-mic is chosen
    and a linear kit must be named in the configuration.
    """
    present = frozenset(i2c_addresses)
    profiles = [load_board(name) for name in list_boards()]
    for card in alsa_cards:
        claimed = [p for p in profiles if card in p.alsa_card_names]
        if claimed:
            return _best(claimed, present)
    matching = [p for p in profiles if p.i2c_addresses and set(p.i2c_addresses) <= present]
    return _best(matching, present) if matching else None


def _best(candidates: list[BoardProfile], present: frozenset[int]) -> BoardProfile:
    def rank(p: BoardProfile) -> tuple[int, int, str]:
        tie = _TIE_BREAK.index(p.name) if p.name in _TIE_BREAK else len(_TIE_BREAK)
        return (-len(present.intersection(p.i2c_addresses)), tie, p.name)

    return min(candidates, key=rank)


_I2C_DEVICE = re.compile(r"(\d+)-([0-9a-fA-F]{4})")
_CARD_LINE = re.compile(r"\s*\d+\s+\[([^\]]*)\]\s*:")


def probe_i2c_sysfs(root: Path = Path("/sys/bus/i2c/devices"), *, bus: int | None = 1
                    ) -> set[int]:
    """Addresses of I2C devices the kernel has bound a driver to, read from sysfs.

    Entries are named ``<bus>-<4 hex digits>``. Only bound devices count: an overlay
    left in config.txt declares its chips even when the HAT is not on the header, while
    a codec driver normally binds only after the chip answered. Bus 1 (the header's I2C
    pins) is the default because the HDMI and camera buses carry chips of their own;
    ``bus=None`` takes every bus. Reading sysfs needs no root and never touches the bus.
    """
    if not root.is_dir():
        return set()
    found: set[int] = set()
    for entry in root.iterdir():
        match = _I2C_DEVICE.fullmatch(entry.name)
        if match is None or (bus is not None and int(match.group(1)) != bus):
            continue
        if (entry / "driver").exists():
            found.add(int(match.group(2), 16))
    return found


def alsa_card_ids(root: Path = Path("/proc/asound")) -> list[str]:
    """Card ids in card order, from lines like `` 0 [seeed2micvoicec]: ...`` of ``cards``."""
    try:
        text = (root / "cards").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    ids = []
    for line in text.splitlines():
        match = _CARD_LINE.match(line)
        if match and match.group(1).strip():
            ids.append(match.group(1).strip())
    return ids
