"""LED patterns as pure functions of state and time.

``pattern(state, t_s, count)`` returns the pixels to show; the caller decides
when to refresh. No clock here, so patterns are tested at chosen instants.
"""

from __future__ import annotations

import math

from device.state import State
from hw.ports import OFF, Rgb

BLUE = Rgb(0, 80, 255)
CYAN = Rgb(0, 200, 200)
WHITE = Rgb(255, 255, 255)
RED = Rgb(255, 0, 0)
IDLE_DIM = Rgb(0, 0, 8)
AMBER = Rgb(255, 120, 0)


def _pulse(t_s: float, period_s: float, low: float = 0.15) -> float:
    """0..1 smooth pulse with the given period, never quite dark."""
    phase = (t_s % period_s) / period_s
    return low + (1 - low) * 0.5 * (1 - math.cos(2 * math.pi * phase))


def pattern(state: State, t_s: float, count: int) -> list[Rgb]:
    """What ``count`` LEDs show in ``state`` at time ``t_s`` (seconds, any origin)."""
    if state is State.IDLE:
        return [IDLE_DIM] * count
    if state is State.WAKE:
        return [WHITE] * count
    if state is State.MUTED:
        return [RED.scaled(0.3)] * count
    if state is State.SETUP:
        return [AMBER.scaled(_pulse(t_s, 3.0))] * count
    if state is State.LISTENING:
        return [BLUE] * count
    if state is State.THINKING:
        return [CYAN.scaled(_pulse(t_s, 1.0))] * count
    if state is State.SPEAKING:
        return [WHITE.scaled(_pulse(t_s, 2.0, low=0.4))] * count
    if state is State.OFFLINE:
        # a slow red twinkle: one pixel at a time
        lit = int(t_s * 4) % max(count, 1)
        return [RED.scaled(0.5) if i == lit else OFF for i in range(count)]
    # FAULT: three red flashes, then a pause
    phase = t_s % 2.0
    on = phase < 1.2 and (phase % 0.4) < 0.2
    return [RED if on else OFF] * count
