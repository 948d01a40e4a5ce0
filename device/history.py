"""What was said lately, as text, so a new session can pick the conversation up.

The service ends every session after 60 minutes and has no way to resume one:
the next session starts empty. The device keeps the recent turns here, across
sessions, and re-seeds each new session with them as text items (the service
takes assistant turns as text only, never as audio).

A turn gets its place when its item joins the conversation (``conversation.item.added``
of a user audio message or of an assistant reply) and its text when the text is
known: the assistant's transcript (``response.output_audio_transcript.done``,
``response.output_text.done``) or, when input transcription is on, what the user
was heard to say (``conversation.item.input_audio_transcription.completed``, which
may come after the reply). Items that already carry their text when added are the
seeds themselves and get no second place; out-of-band replies never join the
conversation, so they are not remembered either. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from device.realtime import events as ev

MAX_KEPT_TURNS = 200  # far more than any re-seed takes; bounds a day-long conversation
ELLIPSIS = "…"

Role = Literal["user", "assistant"]


@dataclass
class Turn:
    """One message of the conversation; ``text`` is "" until it is known."""

    item_id: str
    role: Role
    text: str = ""


def _has_text(item: Mapping[str, Any]) -> bool:
    content = item.get("content")
    if not isinstance(content, list):
        return False
    return any(
        isinstance(part, Mapping) and (part.get("text") or part.get("transcript"))
        for part in content
    )


def _text_of(item: Mapping[str, Any]) -> str:
    """The transcript or text an item carries (an item.done of a finished reply)."""
    content = item.get("content")
    parts = content if isinstance(content, list) else []
    texts = [
        str(part.get("transcript") or part.get("text") or "")
        for part in parts
        if isinstance(part, Mapping)
    ]
    return " ".join(text for text in texts if text).strip()


class History:
    """The conversation's recent turns, oldest first, across sessions."""

    def __init__(self, max_turns: int = MAX_KEPT_TURNS) -> None:
        self._turns: OrderedDict[str, Turn] = OrderedDict()
        self._max_turns = max_turns

    def observe(self, event: ev.ServerEvent) -> None:
        """Learn from one server event of the current session."""
        if isinstance(event, ev.ItemAdded):
            self._added(event.item)
        elif isinstance(event, ev.ItemDone):
            item_id = event.item.get("id")
            if isinstance(item_id, str) and (text := _text_of(event.item)):
                self._set_text(item_id, text)
        elif isinstance(event, ev.TranscriptDone):
            self._set_text(event.item_id, event.transcript)
        elif isinstance(event, ev.TextDone):
            self._set_text(event.item_id, event.text)
        elif isinstance(event, ev.InputTranscriptionCompleted):
            self._set_text(event.item_id, event.transcript)
        elif isinstance(event, ev.ItemDeleted):
            self._turns.pop(event.item_id, None)

    def _added(self, item: Mapping[str, Any]) -> None:
        item_id, role = item.get("id"), item.get("role")
        if item.get("type") != "message" or not isinstance(item_id, str):
            return
        if role not in ("user", "assistant") or _has_text(item) or item_id in self._turns:
            return
        self._turns[item_id] = Turn(item_id, "user" if role == "user" else "assistant")
        while len(self._turns) > self._max_turns:
            self._turns.popitem(last=False)

    def _set_text(self, item_id: str, text: str) -> None:
        turn = self._turns.get(item_id)
        if turn is not None and text.strip():
            turn.text = text.strip()

    def turns(self) -> list[Turn]:
        """The turns whose text is known, oldest first."""
        return [Turn(t.item_id, t.role, t.text) for t in self._turns.values() if t.text]

    def clear(self) -> None:
        self._turns.clear()


def recent(turns: Sequence[Turn], max_turns: int, max_chars: int) -> list[Turn]:
    """The newest turns within both bounds, oldest first.

    Whole turns are kept while they fit; when even the newest turn is longer than
    ``max_chars`` its end is kept (the latest words matter most), marked with "…".
    """
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        if len(kept) >= max_turns:
            break
        if used + len(turn.text) > max_chars:
            if not kept and max_chars > len(ELLIPSIS):
                tail = turn.text[-(max_chars - len(ELLIPSIS)) :]
                kept.append(Turn(turn.item_id, turn.role, ELLIPSIS + tail))
            break
        kept.append(turn)
        used += len(turn.text)
    return kept[::-1]


def seed_item(turn: Turn) -> dict[str, Any]:
    """A turn as a ``conversation.item.create`` item: user turns as ``input_text``,
    assistant turns as ``output_text`` (the service takes no assistant audio)."""
    kind = "input_text" if turn.role == "user" else "output_text"
    return {
        "type": "message",
        "role": turn.role,
        "content": [{"type": kind, "text": turn.text}],
    }


def seed_items(turns: Sequence[Turn], max_turns: int, max_chars: int) -> list[dict[str, Any]]:
    """The items that re-seed a new session with the recent conversation."""
    return [seed_item(turn) for turn in recent(turns, max_turns, max_chars)]
