"""The AI disclosure: at its first session, the speaker says that it is an AI voice.

People should know they are talking with a machine before they confide in it. The
sentence (``link.disclosure``; "" says nothing) is spoken once in the life of the
device: it is remembered in ``<state_dir>/disclosure.json`` (written atomically),
but only once it was played to its end. Cut short by someone speaking, or lost
with the connection, it is said again at the next session.

It is asked for as an out-of-band response (``conversation: "none"``, no input,
instructions to say the sentence word for word), so it is not part of the
conversation the model answers from, and it runs beside anything else. Its
response is recognised by its ``metadata``; the playback events of its items tell
whether it was heard to the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from device.audio.playback import PlaybackEvent
from device.realtime import events as ev
from device.realtime.session import RealtimeSession
from device.statefile import JsonSaver, read_json

log = logging.getLogger(__name__)

STATE_FILE = "disclosure.json"
METADATA = {"edgevoice": "disclosure"}


def instructions(text: str) -> str:
    """Per-response instructions that make the model say ``text`` and nothing else."""
    return (
        "Say the following sentence verbatim, in a friendly voice, and say nothing else: "
        + json.dumps(text, ensure_ascii=False)
    )


def response_params(text: str) -> dict[str, Any]:
    """The ``response`` of the ``response.create`` that speaks the disclosure."""
    return {
        "conversation": "none",  # out of band: not part of the conversation
        "input": [],  # nothing to answer: only the instructions
        "instructions": instructions(text),
        "output_modalities": ["audio"],
        "metadata": dict(METADATA),
    }


def _is_disclosure(event: ev.ResponseCreated) -> bool:
    response = event.raw.get("response")
    metadata = response.get("metadata") if isinstance(response, Mapping) else None
    return isinstance(metadata, Mapping) and dict(metadata) == METADATA


class Disclosure:
    """Whether the disclosure was heard, and the one being said in the current session."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_FILE
        self._saver = JsonSaver(self.path, "the disclosure will be said again at the next start")
        self.heard = False  # played to its end once, in the life of this device
        self.loaded = False
        self._asked = False  # asked for in the current session
        self._response_id: str | None = None
        self._items: set[str] = set()
        self._finished: set[str] = set()
        self._status: str | None = None
        self._cut = False

    async def load(self) -> None:
        """Read whether it was heard before; a damaged file means it was not."""
        data, problem = await asyncio.to_thread(read_json, self.path)
        if problem:
            log.warning("disclosure state %s %s; the disclosure will be said", self.path, problem)
        self.heard = isinstance(data, dict) and data.get("heard") is True
        self.loaded = True

    async def flush(self) -> None:
        await self._saver.flush()

    def new_session(self) -> None:
        """A session began: what was being said in the last one is lost."""
        self._asked = False
        self._response_id, self._status, self._cut = None, None, False
        self._items.clear()
        self._finished.clear()

    def due(self, text: str) -> bool:
        """True when it should be asked for now (once per session until heard)."""
        return bool(text) and self.loaded and not self.heard and not self._asked

    def ask(self, session: RealtimeSession, text: str) -> None:
        self._asked = True
        session.create_response(response_params(text))
        log.info("saying the AI disclosure")

    def observe(self, event: ev.ServerEvent, session: RealtimeSession) -> None:
        """Follow the disclosure's response through the server's events."""
        if isinstance(event, ev.ResponseCreated) and self._asked and _is_disclosure(event):
            self._response_id = event.response_id
            session.keep_out_of_conversation(event.response_id)
        elif isinstance(event, ev.OutputItemAdded) and event.response_id == self._response_id:
            item_id = event.item.get("id")
            if isinstance(item_id, str):
                self._items.add(item_id)
        elif isinstance(event, ev.ResponseDone) and event.response_id == self._response_id:
            self._status = event.status
            self._check()

    def on_playback(self, event: PlaybackEvent) -> None:
        """The speaker played (or cut) part of a reply."""
        if event.item_id not in self._items:
            return
        if event.kind == "interrupted":
            self._cut = True
            log.info("the AI disclosure was cut short; it will be said again")
        elif event.kind == "finished":
            self._finished.add(event.item_id)
            self._check()

    def _check(self) -> None:
        if self.heard or self._cut or self._status != "completed" or not self._items:
            return
        if self._items <= self._finished:
            self.heard = True
            self._saver.save({"heard": True})
            log.info("the AI disclosure was heard; it is not said again")
