"""Responses the simulated service ends on its own.

The service ends some replies itself: ``incomplete`` when its content filter
stops one or it reaches ``max_output_tokens``, ``failed`` on a fault of its own.
The faults ``incomplete[:REASON]`` and ``failed[:CODE]`` (``sim_faults``) ask for
that: the response streaming when the fault fires (or the next one) ends at its
next step, so every event of the step already under way still comes before its
``response.done``.
"""

from __future__ import annotations

from typing import Literal

from device.realtime.sim_response import Event, SimResponse

EndStatus = Literal["incomplete", "failed"]


class ResponseEndings:
    """Early endings asked for by faults, taken by the next responses that step."""

    def __init__(self) -> None:
        self._pending: list[tuple[EndStatus, str]] = []

    def add(self, status: EndStatus, reason: str) -> None:
        self._pending.append((status, reason))

    def step(self, response: SimResponse) -> list[Event]:
        """The response's next step, or its early end when one is pending."""
        if self._pending and response.active and response.ready:
            status, reason = self._pending.pop(0)
            return response.end_early(status, reason)
        return response.step()
