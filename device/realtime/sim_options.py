"""What the simulator is asked to do, and how it names things.

Kept apart so the protocol core, the server and ``edgevoice demo`` share one
definition without importing each other.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from device.realtime.sim_faults import Fault
from device.realtime.sim_voice import VoiceEngine

DEFAULT_REPLY = (
    "I heard {seconds:.1f} seconds of speech. This is the edgevoice simulator answering."
)
IDLE_REPLY = "Are you still there?"
TOOL_REPLY = "The tool said: {output}"
DEFAULT_MCP_TOOLS = ("search", "fetch")  # what a simulated MCP server lists by default
_VERBATIM = re.compile(r'\bverbatim\b[^"]*:\s*(?P<text>".*")\s*$', re.DOTALL)


@dataclass(frozen=True)
class McpCallScript:
    """The MCP tool the session's first response calls, and what the tool answers."""

    server_label: str
    name: str
    arguments: str = "{}"
    output: str = '{"ok": true}'
    error: str = ""  # "": the tool answers ``output``; else it fails with this message


@dataclass(frozen=True)
class McpOptions:
    """What the simulated MCP servers are like."""

    # Tool names per server label; a server not named here lists DEFAULT_MCP_TOOLS.
    tools: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    unreachable: tuple[str, ...] = ()  # labels whose listing fails
    # The authorization each server requires (label -> token); others take none.
    tokens: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    call: McpCallScript | None = None


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
    # Remote MCP servers: their tools, tokens, reachability and one scripted call (``sim_mcp``).
    mcp: McpOptions = field(default_factory=McpOptions)
    # The WebSocket takes only ek_ secrets minted by POST /v1/realtime/client_secrets
    # (``sim_tokens``, on a second port) and not yet expired.
    client_secrets: bool = False
    token_faults: tuple[Fault, ...] = ()  # HTTP faults answering the Nth secret request
    # Responses allowed per window, account-wide (``sim_limits``); None: plenty.
    request_limit: int | None = None
    request_window_s: float = 60.0


def verbatim_text(instructions: str) -> str | None:
    """The simulated model obeys "say ... verbatim ...: "<JSON string>"" to the letter."""
    match = _VERBATIM.search(instructions)
    if match is None:
        return None
    try:
        text = json.loads(match.group("text"))
    except ValueError:
        return None
    return text if isinstance(text, str) and text.strip() else None


def random_id(prefix: str) -> str:
    """Ids shaped like the service's (``item_…``), short enough for the 32-char limit."""
    return f"{prefix}_{secrets.token_hex(8)}"
