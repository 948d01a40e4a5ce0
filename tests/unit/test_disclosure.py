"""The AI disclosure: asked for out of band, remembered only once heard to the end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from device.audio.playback import PlaybackEvent
from device.disclosure import METADATA, Disclosure, response_params
from device.realtime.session import RealtimeSession, SessionSettings
from device.realtime.sim_options import verbatim_text
from device.statefile import read_json
from tests.contract.oracle import client_problems, server_problems

TEXT = 'Hello! You are talking with an AI voice, not a "person".'


class Script:
    def __init__(self, state_dir: Path) -> None:
        self.session = RealtimeSession(SessionSettings())
        self.disclosure = Disclosure(state_dir)
        self._n = 0

    def server(self, kind: str, **fields: Any) -> None:
        self._n += 1
        event = {"type": kind, "event_id": f"event_{self._n}", **fields}
        assert server_problems(event) == [], event
        for parsed in self.session.receive(json.dumps(event)):
            self.disclosure.observe(parsed, self.session)

    def response(self, kind: str, response_id: str, status: str, metadata: Any) -> None:
        self.server(
            kind,
            response={
                "id": response_id,
                "object": "realtime.response",
                "status": status,
                "output": [],
                "conversation_id": None,
                "metadata": metadata,
            },
        )

    def item_added(self, response_id: str, item_id: str) -> None:
        item = {"id": item_id, "object": "realtime.item", "type": "message",
                "status": "in_progress", "role": "assistant", "content": []}  # fmt: skip
        self.server("response.output_item.added", response_id=response_id, output_index=0,
                    item=item)  # fmt: skip

    def audio(self, response_id: str, item_id: str) -> None:
        self.server("response.output_audio.delta", response_id=response_id, item_id=item_id,
                    output_index=0, content_index=0, delta="AAAAAA==")  # fmt: skip

    def played(self, item_id: str, kind: Any) -> None:
        self.disclosure.on_playback(PlaybackEvent(item_id, kind, 0))

    def sent(self) -> list[dict[str, Any]]:
        events = self.session.data_to_send()
        for event in events:
            assert client_problems(event) == [], event
        return events


def run(body: Any) -> None:
    asyncio.run(body())


def test_the_request_is_out_of_band_with_no_input_and_says_the_text_verbatim() -> None:
    params = response_params(TEXT)
    assert params["conversation"] == "none" and params["input"] == []
    assert params["metadata"] == METADATA
    assert verbatim_text(params["instructions"]) == TEXT  # what a model told so would say
    event = {"type": "response.create", "event_id": "ev_1", "response": params}
    assert client_problems(event) == []


def test_heard_to_the_end_it_is_remembered_and_not_said_again(tmp_path: Path) -> None:
    async def body() -> None:
        s = Script(tmp_path)
        await s.disclosure.load()
        assert s.disclosure.due(TEXT)
        s.disclosure.ask(s.session, TEXT)
        assert [e["type"] for e in s.sent()] == ["response.create"]
        assert not s.disclosure.due(TEXT), "once per session"
        s.response("response.created", "resp_other", "in_progress", None)  # someone else's
        s.response("response.created", "resp_d", "in_progress", dict(METADATA))
        s.item_added("resp_d", "item_d")
        s.audio("resp_d", "item_d")
        s.played("item_d", "started")
        s.response("response.done", "resp_d", "completed", dict(METADATA))
        assert not s.disclosure.heard, "heard only once played to the end"
        s.played("item_d", "finished")
        assert s.disclosure.heard
        await s.disclosure.flush()
        assert read_json(tmp_path / "disclosure.json") == ({"heard": True}, None)
        again = Disclosure(tmp_path)
        await again.load()
        assert not again.due(TEXT)

    run(body)


def test_cut_short_it_is_cancelled_not_truncated_and_said_at_the_next_session(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        s = Script(tmp_path)
        await s.disclosure.load()
        s.disclosure.ask(s.session, TEXT)
        s.sent()
        s.response("response.created", "resp_d", "in_progress", dict(METADATA))
        s.item_added("resp_d", "item_d")
        s.audio("resp_d", "item_d")
        # someone speaks: the conversation's barge-in asks to truncate what was playing
        assert s.session.truncate("item_d", 10.0) is not None
        [cancel] = s.sent()
        # the item is not in the conversation: cancel the response rather than truncate
        assert cancel["type"] == "response.cancel" and cancel["response_id"] == "resp_d"
        s.audio("resp_d", "item_d")
        assert s.session.counters.late_deltas_dropped == 1, "the rest is not played"
        s.played("item_d", "interrupted")
        s.response("response.done", "resp_d", "completed", dict(METADATA))
        s.played("item_d", "finished")
        assert not s.disclosure.heard
        s.disclosure.new_session()
        assert s.disclosure.due(TEXT)
        await s.disclosure.flush()
        assert not (tmp_path / "disclosure.json").exists()

    run(body)


@pytest.mark.parametrize("status", ["cancelled", "failed", "incomplete"])
def test_a_response_that_did_not_complete_is_not_remembered(tmp_path: Path, status: str) -> None:
    async def body() -> None:
        s = Script(tmp_path)
        await s.disclosure.load()
        s.disclosure.ask(s.session, TEXT)
        s.response("response.created", "resp_d", "in_progress", dict(METADATA))
        s.item_added("resp_d", "item_d")
        s.played("item_d", "finished")
        s.response("response.done", "resp_d", status, dict(METADATA))
        assert not s.disclosure.heard

    run(body)


def test_off_when_empty_or_not_yet_loaded(tmp_path: Path) -> None:
    async def body() -> None:
        disclosure = Disclosure(tmp_path)
        assert not disclosure.due(TEXT), "not before the state file was read"
        await disclosure.load()
        assert not disclosure.due("")

    run(body)


def test_a_damaged_state_file_means_it_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "disclosure.json").write_text("{not json")

    async def body() -> None:
        disclosure = Disclosure(tmp_path)
        await disclosure.load()
        assert disclosure.due(TEXT)

    run(body)
    assert "the disclosure will be said" in caplog.text
