"""The shape of a board profile: what the audio, LED and button adapters read.

Channel numbers are 0-based everywhere here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

LedChip = Literal["apa102", "gpio", "gpio_rgb", "usb_hid", "i2c", "none"]
LED_CHIPS: tuple[str, ...] = get_args(LedChip)


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
    mic_pixels: tuple[int, ...] = ()
    """Pixels next to the microphones (0-based), lit red while muted; () when unknown."""
    ring_offset_deg: float = 0.0
    """Where pixel 0 sits in the frame of ``mic_positions_mm`` (degrees counter-clockwise
    from +x; pixels counted the same way round): turns a talker's direction onto the ring."""


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
