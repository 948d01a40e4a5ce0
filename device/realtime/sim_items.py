"""Conversation item events for the simulator: create, retrieve, truncate, delete.

Barge-in correctness hinges on truncation (``audio_end_ms`` must not exceed the
audio the server holds for the item), and context re-seeding after a session
rotation hinges on item creation, so these follow the service's rules and error
wording closely.
"""

from __future__ import annotations

import base64
import binascii
import copy
from typing import TYPE_CHECKING, Any

from device.realtime.sim_conversation import BYTES_PER_MS, StoredItem
from device.realtime.sim_images import check_item_images
from device.realtime.sim_response import Event
from device.realtime.sim_schema import SimError

if TYPE_CHECKING:
    from device.realtime.sim_session import SimulatorSession


def _not_found(item_id: str, param: str) -> SimError:
    return SimError(
        "item_not_found", f"Item with item_id '{item_id}' not found in the conversation.", param
    )


def _decode_audio(value: str, param: str) -> bytes:
    try:
        pcm = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SimError("invalid_value", f"Invalid '{param}': expected base64.", param) from exc
    if len(pcm) % 2:
        raise SimError("invalid_value", f"Invalid '{param}': odd PCM16 byte count.", param)
    return pcm


class ItemRules:
    """Item handlers bound to one session's conversation."""

    def __init__(self, session: SimulatorSession) -> None:
        self._session = session

    def _public_item(self, item: dict[str, Any]) -> StoredItem:
        """Server copy of a client item: id, object and status filled, audio kept aside."""
        data: dict[str, Any] = {
            "id": item.get("id") or self._session.new_id("item"),
            "object": "realtime.item",
            **{k: copy.deepcopy(v) for k, v in item.items() if k not in ("id", "object")},
            "status": "completed",
        }
        audio = bytearray()
        for index, part in enumerate(data.get("content", [])):
            if part.get("type") == "input_audio":
                if "audio" in part:
                    audio += _decode_audio(part.pop("audio"), f"item.content[{index}].audio")
                part.setdefault("transcript", None)
        return StoredItem(data, audio)

    def create(self, event: dict[str, Any]) -> list[Event]:
        conversation = self._session.conversation
        item = event["item"]
        if "id" in item and conversation.find(item["id"]) is not None:
            raise SimError(
                "invalid_value", f"Item with id '{item['id']}' already exists.", "item.id"
            )
        previous = event.get("previous_item_id")
        if previous not in (None, "root") and conversation.find(previous) is None:
            raise _not_found(previous, "previous_item_id")
        check_item_images(item)
        stored = self._public_item(item)
        before = conversation.insert(
            stored, after=None if previous == "root" else previous, first=previous == "root"
        )
        return [
            self._session.event(
                "conversation.item.added", previous_item_id=before, item=stored.data
            ),
            self._session.event(
                "conversation.item.done", previous_item_id=before, item=stored.data
            ),
        ]

    def retrieve(self, event: dict[str, Any]) -> list[Event]:
        stored = self._session.conversation.find(event["item_id"])
        if stored is None:
            raise _not_found(event["item_id"], "item_id")
        return [self._session.event("conversation.item.retrieved", item=stored.with_audio())]

    def truncate(self, event: dict[str, Any]) -> list[Event]:
        """Cut an assistant item's audio at what the listener heard; drop its transcript.

        Truncating an item whose response is still streaming stops that response
        first (``response.done`` cancelled), since the cut means the listener
        moved on.
        """
        session = self._session
        item_id, end_ms = event["item_id"], event["audio_end_ms"]
        stored = session.conversation.find(item_id)
        if stored is None:
            raise _not_found(item_id, "item_id")
        if not stored.is_assistant_audio and not self._streaming_audio(item_id):
            raise SimError(None, "Only model output audio messages can be truncated.", "item_id")
        if event["content_index"] != 0:
            raise SimError(
                "invalid_value",
                f"Invalid 'content_index': item has no content part {event['content_index']}.",
                "content_index",
            )
        if end_ms > stored.audio_ms:
            raise SimError(
                None,
                f"Audio content of {stored.audio_ms} ms is already shorter than {end_ms} ms",
                "audio_end_ms",
            )
        events: list[Event] = []
        streaming = next(
            (r for r in session.responses.values() if r.active and r.plan.item_id == item_id),
            None,
        )
        if streaming is not None:
            events += session.cancel_response(streaming, "client_cancelled")
        del stored.audio[end_ms * BYTES_PER_MS :]
        for part in stored.data.get("content", []):
            if part.get("type") == "output_audio":
                part["transcript"] = ""
        events.append(
            session.event(
                "conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms
            )
        )
        return events

    def _streaming_audio(self, item_id: str) -> bool:
        return any(
            r.active and r.plan.item_id == item_id and r.plan.modality == "audio"
            for r in self._session.responses.values()
        )

    def delete(self, event: dict[str, Any]) -> list[Event]:
        item_id = event["item_id"]
        if self._session.conversation.find(item_id) is None:
            raise _not_found(item_id, "item_id")
        self._session.conversation.delete(item_id)
        return [self._session.event("conversation.item.deleted", item_id=item_id)]

    def input_audio_ms(self, entries: list[dict[str, Any]] | None) -> int:
        """User audio a response reads: the conversation, or the ``input`` it was given."""
        conversation = self._session.conversation
        if entries is None:
            return conversation.user_audio_ms()
        total_ms = 0
        for entry in entries:
            if entry.get("type") == "item_reference":
                stored = conversation.find(entry["id"])
                total_ms += stored.audio_ms if stored is not None and stored.is_user_audio else 0
            else:
                for part in entry.get("content", []):
                    if part.get("type") == "input_audio" and "audio" in part:
                        total_ms += len(_decode_audio(part["audio"], "input")) // BYTES_PER_MS
        return total_ms
