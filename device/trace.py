"""The event trace: every Realtime event sent and received, as JSON lines.

One object per line: ``{"dir": "sent"|"recv", "t": <monotonic s>, "event": <raw event>}``.
A frame that is not JSON is kept as ``{"raw": "<text>"}``; a binary frame as
``{"binary_bytes": n}``. The API key never reaches a trace: it travels in a
header, never in an event. An MCP server's token does travel in an event (its
tool in ``session.update``, perhaps echoed in ``session.updated``); it is
written as "***".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TextIO

from device.credentials import Secret
from device.realtime.parse import hide_tokens

Direction = Literal["sent", "recv"]


class Trace:
    """Appends events to a JSON-lines file, flushed per line so a crash keeps it."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._file: TextIO | None = path.open("w", encoding="utf-8")
        self.lines = 0

    def record(self, direction: Direction, event: Any) -> None:
        if self._file is None:
            return
        if isinstance(event, dict):
            event = hide_tokens(event)
        line = json.dumps(
            {"dir": direction, "t": round(self._clock(), 6), "event": event}, default=_hidden
        )
        self._file.write(line + "\n")
        self._file.flush()
        self.lines += 1

    def record_frame(self, direction: Direction, frame: str | bytes) -> None:
        """Record a frame as received: the parsed object when it is JSON."""
        if isinstance(frame, bytes):
            self.record(direction, {"binary_bytes": len(frame)})
            return
        try:
            self.record(direction, json.loads(frame))
        except ValueError:
            self.record(direction, {"raw": frame})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _hidden(value: Any) -> Any:
    """A ``Secret`` left in an event is written as "***", never revealed."""
    if isinstance(value, Secret):
        return "***"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def read_trace(path: Path) -> list[dict[str, Any]]:
    """Load a trace file back (used by tests and by people reading a trace)."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
