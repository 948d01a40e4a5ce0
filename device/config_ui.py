"""[buttons], [sounds] and [leds]: what the speaker's buttons do, which sounds it
makes, and how bright its lights are.

Declared here rather than in ``device.config`` to keep that module small; each
is one section of ``Config`` like the others, checked by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from device.config_rules import (
    _boolean,
    _choice,
    _float_range,
    _int_range,
    _key,
    _name_list,
    _string,
)
from device.ui.buttons import DOUBLE_PRESS_ACTIONS
from device.ui.earcons import EARCON_NAMES

IDLE_LOOKS = ("glow", "off")


@dataclass(frozen=True, slots=True)
class ButtonsConfig:
    """[buttons]: how presses are told apart, and what the optional ones do."""

    long_press_ms: int = _key(1500, _int_range(500, 5000, 100))
    """Holding the talk button this long mutes or unmutes the microphone."""
    double_press_ms: int = _key(300, _int_range(100, 1000, 10))
    """Most time from releasing the talk button to pressing it again for a double press."""
    double_press: str = _key(
        "none", _choice(_string, "double-press action", tuple(DOUBLE_PRESS_ACTIONS))
    )
    """What a double press of the talk button does. "none" lets a single press act at
    once; any other action makes a single press wait out the double-press time."""
    volume_step_percent: int = _key(10, _int_range(1, 50))
    """How far one press of a volume button (or a volume double press) moves the volume."""


@dataclass(frozen=True, slots=True)
class SoundsConfig:
    """[sounds]: the short sounds (earcons) that say what the speaker just did."""

    enabled: bool = _key(True, _boolean)
    earcons: tuple[str, ...] = _key(EARCON_NAMES, _name_list("earcon", EARCON_NAMES))
    """Which of them play; [] plays none."""


@dataclass(frozen=True, slots=True)
class LedsConfig:
    """[leds]: how bright the LEDs are, what they show while idle, and whether listening
    points at the talker."""

    brightness: float = _key(1.0, _float_range(0.05, 1.0))
    """Every pattern is scaled by this: lower it for a bedroom, or a weak power supply."""
    idle: str = _key("glow", _choice(_string, "idle look", IDLE_LOOKS))
    """While idle: "glow" (a dim blue) or "off"."""
    doa: bool = _key(True, _boolean)
    """Light the listening LEDs toward the talker, where the board's mics can tell the
    direction (its profile gives their positions) and it has three LEDs or more."""
