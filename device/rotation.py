"""When to replace a session before the service ends it, and how the next one is readied.

The service ends every session after 60 minutes (``session_expired``, close 1001)
and keeps nothing of it. Waiting for that cuts whatever is going on and leaves the
speaker deaf while it reconnects. So, ``rotate_before_s`` ahead of ``expires_at``,
the link opens the next session at the first quiet moment (no response running,
nothing playing, nobody speaking), seeds it with the recent turns and the
instructions, waits until the service has accepted that, and only then switches
over and closes the old one: nothing audible is lost. A speaker that is never
quiet is rotated anyway shortly before the end (``force_at_s``), since the
service would end the session a moment later regardless.

``RotationPlan`` and ``is_quiet`` are pure (time comes in as an argument);
``prepare`` does the handshake on a connection that is already open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from device.errors import ServiceError
from device.realtime.client import RealtimeClient
from device.realtime.session import RealtimeSession
from device.state import State

FORCE_MARGIN_S = 10.0  # rotate regardless this long before the end (or a quarter of the window)
RETRY_S = 15.0  # after a failed attempt, wait this long before the next one
# States in which someone is speaking, being answered, or about to be.
_BUSY_STATES = frozenset({State.WAKE, State.LISTENING, State.THINKING, State.SPEAKING})


@dataclass(frozen=True)
class RotationPlan:
    """When the current session should be replaced, in the clock of ``expires_at``."""

    window_start_s: float  # from here on, rotate at the first quiet moment
    force_at_s: float  # from here on, rotate whatever is going on

    @classmethod
    def for_session(cls, expires_at_s: float, rotate_before_s: float) -> RotationPlan | None:
        """None when rotation is off (``rotate_before_s`` 0): the service ends the session."""
        if rotate_before_s <= 0:
            return None
        margin_s = min(FORCE_MARGIN_S, rotate_before_s / 4)
        return cls(expires_at_s - rotate_before_s, expires_at_s - margin_s)

    def due(self, now_s: float, quiet: bool) -> bool:
        """True when the session should be replaced now."""
        return now_s >= self.force_at_s or (now_s >= self.window_start_s and quiet)

    def wait_s(self, now_s: float) -> float:
        """How long until a rotation could first be due (0 inside the window)."""
        return max(0.0, self.window_start_s - now_s)


def is_quiet(state: State, response_running: bool, queued_frames: int, gate_open: bool) -> bool:
    """Nothing would be cut by switching sessions now.

    ``response_running``: the service is producing a response; ``queued_frames``:
    reply audio still waiting for the speaker; ``gate_open``: the device's own voice
    detector hears someone (the service may not have noticed yet).
    """
    return (
        state not in _BUSY_STATES and not response_running and queued_frames == 0 and not gate_open
    )


async def prepare(
    client: RealtimeClient,
    session: RealtimeSession,
    seeds: Iterable[Mapping[str, Any]],
    timeout_s: float,
) -> None:
    """Configure a freshly opened session and seed it, until the service accepted it.

    Sends the ``session.update`` (instructions included) and the seed items, then
    reads frames into ``session`` until the update is answered. The items' own
    acknowledgements arrive later and are read by the link's receiver.

    Raises:
        ServiceError: the service refused the configuration.
        Closed, OSError, TimeoutError, RemoteProtocolError: the connection failed,
            took too long or carried garbage.
    """
    update_id = session.configure()
    for item in seeds:
        session.create_item(item)
    for event in session.data_to_send():
        await client.send(event)
    async with asyncio.timeout(timeout_s):
        while not session.configured:
            session.receive(await client.recv())
            error = session.last_error
            if error is not None and error.client_event_id == update_id:
                raise ServiceError(f"the new session refused its configuration: {error.message}")
