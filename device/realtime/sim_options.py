"""What the simulator is asked to do, and how it names things.

Kept apart so the protocol core, the server and ``edgevoice demo`` share one
definition without importing each other.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from device.realtime.sim_faults import Fault
from device.realtime.sim_voice import VoiceEngine

DEFAULT_REPLY = (
    "I heard {seconds:.1f} seconds of speech. This is the edgevoice simulator answering."
)
IDLE_REPLY = "Are you still there?"
TOOL_REPLY = "The tool said: {output}"


@dataclass(frozen=True)
class SimulatorOptions:
    """How the simulator answers; the defaults suit ``edgevoice demo``."""

    reply_text: str | None = None  # None: DEFAULT_REPLY with the seconds of speech heard
    voice_engine: VoiceEngine = "auto"  # auto: espeak-ng when on PATH, else a tone pattern
    require_auth: bool = True
    delta_ms: int = 100  # audio per response.output_audio.delta
    delta_interval_s: float = 0.0  # pause between deltas; the service outruns real time
    session_lifetime_s: int = 3600  # expires_at = connection time + this
    faults: tuple[Fault, ...] = ()  # what goes wrong, and when (``sim_faults.parse_fault``)
    # (name, arguments JSON): the session's first response calls that function, if the
    # session offers it; the response after its output says TOOL_REPLY.
    tool_call: tuple[str, str] | None = None


def random_id(prefix: str) -> str:
    """Ids shaped like the service's (``item_…``), short enough for the 32-char limit."""
    return f"{prefix}_{secrets.token_hex(8)}"
