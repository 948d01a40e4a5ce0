"""Board profiles: what each supported mic HAT or USB array looks like to software.

The facts live in TOML files next to this module (``hw/boards/*.toml``) so that a new
board is a data change, not a code change. They are validated once, at load: a wrong
profile then fails at start with the file and key named, instead of surfacing later as
silence, garbled channels or an echo canceller fed the wrong reference.

Channel numbers are 0-based everywhere here. A profile's shape lives in
``hw.board_profile`` and its checks in ``hw.board_parse``; this module loads, lists and
detects boards, and every name of the three is imported from here.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from hw.board_parse import (
    GPIO_PINS,
    I2C_ADDRESSES,
    MAX_CHANNELS,
    SAMPLE_WIDTHS_BITS,
    SUPPORTED_RATES_HZ,
    parse_board,
)
from hw.board_profile import (
    LED_CHIPS,
    NO_LEDS,
    BoardError,
    BoardProfile,
    ButtonProfile,
    LedChip,
    LedProfile,
)

__all__ = [
    "GPIO_PINS",
    "I2C_ADDRESSES",
    "LED_CHIPS",
    "MAX_CHANNELS",
    "NO_LEDS",
    "SAMPLE_WIDTHS_BITS",
    "SUPPORTED_RATES_HZ",
    "BoardError",
    "BoardProfile",
    "ButtonProfile",
    "LedChip",
    "LedProfile",
    "alsa_card_ids",
    "detect_board",
    "list_boards",
    "load_board",
    "parse_board",
    "probe_i2c_sysfs",
]

# When the evidence cannot tell two boards apart, the earlier one here wins. The 6-mic
# and the 4-mic linear kits share one HAT (card and I2C chips); the 6-mic is the common
# one. The 2-mic v1 and v2 share a card id; v1 is the common one, v2 wins on 0x18.
_TIE_BREAK = ("respeaker-6mic", "respeaker-2mic")


# ---------------------------------------------------------------- shipped profiles


def _board_dir() -> Traversable:
    return resources.files("hw").joinpath("boards")


def list_boards() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in _board_dir().iterdir()
        if entry.name.endswith(".toml") and entry.is_file()
    )


def load_board(name: str) -> BoardProfile:
    """The shipped profile ``name``; an unknown name lists the ones that exist."""
    available = list_boards()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BoardError(
            "hw/boards", "board", f"no profile named {name!r}{hint}", ", ".join(available)
        )
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


def probe_i2c_sysfs(root: Path = Path("/sys/bus/i2c/devices"), *, bus: int | None = 1) -> set[int]:
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
