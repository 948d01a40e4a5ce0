"""The recent turns kept across sessions, and the items that re-seed a new session."""

from __future__ import annotations

import json
from typing import Any

import pytest

from device.history import History, Turn, recent, seed_item, seed_items
from device.realtime.parse import parse_server_event
from tests.contract.oracle import client_problems, server_problems


def server(kind: str, **fields: Any) -> Any:
    event = {"type": kind, "event_id": "event_1", **fields}
    assert server_problems(event) == [], event
    return parse_server_event(json.dumps(event))


def user_audio_item(item_id: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }


def assistant_item(item_id: str, content: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": content or [],
    }


def added(item: dict[str, Any]) -> Any:
    return server("conversation.item.added", previous_item_id=None, item=item)


def transcript_done(item_id: str, text: str) -> Any:
    return server(
        "response.output_audio_transcript.done",
        response_id="resp_1",
        item_id=item_id,
        output_index=0,
        content_index=0,
        transcript=text,
    )


def heard(item_id: str, text: str) -> Any:
    return server(
        "conversation.item.input_audio_transcription.completed",
        item_id=item_id,
        content_index=0,
        transcript=text,
        usage={"type": "duration", "seconds": 1.0},
    )


def test_turns_keep_conversation_order_even_when_a_transcript_comes_late() -> None:
    history = History()
    history.observe(added(user_audio_item("item_u1")))
    history.observe(added(assistant_item("item_a1")))
    history.observe(transcript_done("item_a1", "It is Mount Everest."))
    # the user's transcription often finishes after the reply has started
    history.observe(heard("item_u1", "What is the tallest mountain?"))
    assert [(t.role, t.text) for t in history.turns()] == [
        ("user", "What is the tallest mountain?"),
        ("assistant", "It is Mount Everest."),
    ]


def test_turns_without_text_are_left_out() -> None:
    history = History()
    history.observe(added(user_audio_item("item_u1")))  # transcription off: no text ever
    history.observe(added(assistant_item("item_a1")))
    history.observe(transcript_done("item_a1", "Hello."))
    assert [t.text for t in history.turns()] == ["Hello."]


def test_text_replies_and_item_done_fill_the_text_too() -> None:
    history = History()
    history.observe(added(assistant_item("item_t")))
    history.observe(
        server(
            "response.output_text.done",
            response_id="resp_1",
            item_id="item_t",
            output_index=0,
            content_index=0,
            text="In text.",
        )
    )
    history.observe(added(assistant_item("item_d")))
    done = assistant_item("item_d", [{"type": "output_audio", "transcript": "From the item."}])
    history.observe(server("conversation.item.done", previous_item_id="item_t", item=done))
    assert [t.text for t in history.turns()] == ["In text.", "From the item."]


def test_seeds_echoed_by_the_service_and_out_of_band_replies_are_not_remembered() -> None:
    history = History()
    seed = {**seed_item(Turn("x", "user", "Earlier question")), "id": "item_seed"}
    seed["object"], seed["status"] = "realtime.item", "completed"
    history.observe(added(seed))  # an item that arrives with its text is a seed
    # an out-of-band reply (the disclosure) never joins the conversation: no item.added
    history.observe(transcript_done("item_oob", "You are talking with an AI voice."))
    assert history.turns() == []


def test_a_deleted_item_is_forgotten_and_other_items_are_ignored() -> None:
    history = History()
    history.observe(added(assistant_item("item_a1")))
    history.observe(transcript_done("item_a1", "Cut before anyone heard it."))
    history.observe(server("conversation.item.deleted", item_id="item_a1"))
    call = {
        "id": "item_fc",
        "object": "realtime.item",
        "type": "function_call",
        "status": "completed",
        "name": "volume",
        "call_id": "call_1",
        "arguments": "{}",
    }
    history.observe(added(call))
    assert history.turns() == []


def test_history_is_bounded() -> None:
    history = History(max_turns=3)
    for n in range(5):
        history.observe(added(assistant_item(f"item_{n}")))
        history.observe(transcript_done(f"item_{n}", f"reply {n}"))
    assert [t.text for t in history.turns()] == ["reply 2", "reply 3", "reply 4"]


TURNS = [
    Turn("1", "user", "a" * 10),
    Turn("2", "assistant", "b" * 10),
    Turn("3", "user", "c" * 10),
    Turn("4", "assistant", "d" * 10),
]


@pytest.mark.parametrize(
    ("max_turns", "max_chars", "kept"),
    [
        (10, 1000, ["1", "2", "3", "4"]),
        (2, 1000, ["3", "4"]),  # the newest turns
        (10, 25, ["3", "4"]),  # whole turns that fit
        (10, 20, ["3", "4"]),  # exactly fits
        (0, 1000, []),
        (10, 0, []),
    ],
)
def test_recent_keeps_the_newest_whole_turns_within_both_bounds(
    max_turns: int, max_chars: int, kept: list[str]
) -> None:
    chosen = recent(TURNS, max_turns, max_chars)
    assert [t.item_id for t in chosen] == kept
    assert sum(len(t.text) for t in chosen) <= max_chars


def test_a_newest_turn_longer_than_the_bound_keeps_its_end() -> None:
    long = Turn("9", "assistant", "start " + "x" * 100 + " the end")
    [kept] = recent([*TURNS, long], 10, 30)
    assert kept.text.startswith("…") and kept.text.endswith(" the end")
    assert len(kept.text) == 30


def test_seed_items_are_ga_conversation_item_create_payloads() -> None:
    items = seed_items(TURNS, 10, 1000)
    assert [i["content"][0]["type"] for i in items] == [
        "input_text",
        "output_text",
        "input_text",
        "output_text",
    ]
    for n, item in enumerate(items):
        event = {"type": "conversation.item.create", "event_id": f"ev_{n}", "item": item}
        assert client_problems(event) == [], event
