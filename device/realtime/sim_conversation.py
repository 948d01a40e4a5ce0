"""The simulator's copy of the conversation: items in order, with their audio.

The service keeps audio server-side and events never carry it (except
``conversation.item.retrieved``); truncation and usage depend on how much audio
each item holds, so items keep their PCM beside the public item dict.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from typing import Any

BYTES_PER_MS = 48  # PCM16 mono at 24 kHz


@dataclass
class StoredItem:
    """One conversation item: what events show, plus the PCM behind it."""

    data: dict[str, Any]
    audio: bytearray = field(default_factory=bytearray)

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def audio_ms(self) -> int:
        return len(self.audio) // BYTES_PER_MS

    @property
    def is_user_audio(self) -> bool:
        return self.data.get("role") == "user" and any(
            part.get("type") == "input_audio" for part in self.data.get("content", [])
        )

    @property
    def is_assistant_audio(self) -> bool:
        return self.data.get("role") == "assistant" and any(
            part.get("type") == "output_audio" for part in self.data.get("content", [])
        )

    def with_audio(self) -> dict[str, Any]:
        """The item as ``conversation.item.retrieved`` shows it, audio included."""
        item = copy.deepcopy(self.data)
        for part in item.get("content", []):
            if part.get("type") in ("input_audio", "output_audio"):
                part["audio"] = base64.b64encode(bytes(self.audio)).decode("ascii")
                break
        return item


class Conversation:
    """The default conversation's items in order."""

    def __init__(self, conversation_id: str) -> None:
        self.id = conversation_id
        self.items: list[StoredItem] = []

    def find(self, item_id: str) -> StoredItem | None:
        return next((item for item in self.items if item.id == item_id), None)

    def last_id(self) -> str | None:
        return self.items[-1].id if self.items else None

    def insert(self, item: StoredItem, after: str | None = None, first: bool = False) -> str | None:
        """Insert ``item`` (at the end, first, or after ``after``); return the id before it."""
        if first:
            index = 0
        elif after is not None:
            index = next(i for i, old in enumerate(self.items) if old.id == after) + 1
        else:
            index = len(self.items)
        self.items.insert(index, item)
        return self.items[index - 1].id if index > 0 else None

    def delete(self, item_id: str) -> None:
        self.items = [item for item in self.items if item.id != item_id]

    def user_audio_ms(self) -> int:
        """All user audio the next response would read as input."""
        return sum(item.audio_ms for item in self.items if item.is_user_audio)

    def latest_user_audio_ms(self) -> int:
        """Length of the newest user audio item: what the default reply says it heard."""
        for item in reversed(self.items):
            if item.is_user_audio:
                return item.audio_ms
        return 0
