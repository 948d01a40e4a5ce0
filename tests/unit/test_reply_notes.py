"""Replies the service ends itself, transcripts, text replies and idle prompts: the
device logs each once, plays out what arrived and returns to idle. Every scripted
server event is checked by the SDK oracle first."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from device.audio.playback import PlaybackBuffer
from device.conversation import Conversation, ReplyPlayer
from device.realtime.session import RealtimeSession, SessionSettings
from device.state import Event, State, transition
from device.timeline import IDLE_TIMEOUT, REPLY_ENDED_EARLY, USER_TRANSCRIPT, Timeline
from tests.contract.oracle import server_problems

RATE_HZ = 24000
IDLE = {"type": "server_vad", "idle_timeout_ms": 5000}


class Script:
    """One session and conversation, fed oracle-checked server events; tracks the state."""

    def __init__(self, turn_detection: dict[str, Any] | None = None) -> None:
        self.session = RealtimeSession(SessionSettings(turn_detection=turn_detection))
        self.playback = PlaybackBuffer(RATE_HZ)
        self.timeline = Timeline()
        self.conversation = Conversation(
            self.session, ReplyPlayer(self.playback, RATE_HZ), self.timeline
        )
        self.state = State.IDLE
        self.events: list[Event] = []
        self._n = 0

    def _apply(self, events: list[Event]) -> None:
        for event in events:
            self.events.append(event)
            self.state = transition(self.state, event)

    def server(self, kind: str, **fields: Any) -> None:
        self._n += 1
        event = {"type": kind, "event_id": f"event_{self._n}", **fields}
        assert server_problems(event) == [], server_problems(event)
        for parsed in self.session.receive(json.dumps(event)):
            self._apply(self.conversation.handle(parsed))

    def reply_starts(self, response_id: str = "resp_1") -> None:
        self.server("response.created", response={"id": response_id, "object":
                    "realtime.response", "status": "in_progress", "output": []})  # fmt: skip

    def audio(self, ms: int, response_id: str = "resp_1", item_id: str = "item_1") -> None:
        pcm = b"\x10\x00" * 24 * ms
        self.server("response.output_audio.delta", response_id=response_id, item_id=item_id,
                    output_index=0, content_index=0,
                    delta=base64.b64encode(pcm).decode())  # fmt: skip

    def done(self, status: str, details: dict[str, Any] | None, item_id: str = "item_1") -> None:
        item = {"id": item_id, "object": "realtime.item", "type": "message",
                "status": "incomplete", "role": "assistant", "content": []}  # fmt: skip
        self.server("response.done", response={"id": "resp_1", "object": "realtime.response",
                    "status": status, "status_details": details, "output": [item]})  # fmt: skip

    def play_out(self) -> int:
        """Play what is queued, as the audio callback would; returns the frames played."""
        frames = self.playback.queued_frames
        self.playback.read(frames + 1)
        for played in self.playback.take_events():
            self._apply(self.conversation.on_playback(played, at_s=0.0))
        return frames


@pytest.mark.parametrize(
    ("status", "details", "said"),
    [
        ("incomplete", {"type": "incomplete", "reason": "content_filter"},
         "cut short: the service's content filter stopped it"),
        ("incomplete", {"type": "incomplete", "reason": "max_output_tokens"},
         "cut short: it reached realtime.max_output_tokens"),
        ("failed", {"type": "failed", "error": {"type": "server_error", "code": "server_error",
                                                "message": "The server had an error."}},
         "failed: server_error: The server had an error."),
    ],
)  # fmt: skip
def test_a_reply_the_service_ends_plays_out_is_logged_once_and_ends_idle(
    caplog: pytest.LogCaptureFixture, status: str, details: dict[str, Any], said: str
) -> None:
    script = Script()
    with caplog.at_level(logging.INFO, logger="device.conversation"):
        script.reply_starts()
        script.audio(300)
        # No output_audio.done: a failing service may stop without one.
        script.done(status, details)
        assert script.state is State.THINKING, "the audio already here still plays"
        assert script.play_out() == pytest.approx(300 * 24, abs=48)
    assert script.state is State.IDLE
    assert script.events.count(Event.REPLY_FINISHED) == 1
    ended = [r.getMessage() for r in caplog.records if "ended the reply" in r.getMessage()]
    assert len(ended) == 1 and said in ended[0], ended
    [mark] = [m for m in script.timeline.marks if m.name == REPLY_ENDED_EARLY]
    assert said in mark.detail


def test_a_reply_that_fails_before_any_audio_leaves_thinking_at_once() -> None:
    script = Script()
    script.reply_starts()
    assert script.state is State.THINKING
    script.done("failed", {"type": "failed", "error": {"type": "server_error",
                                                       "code": "server_error"}})  # fmt: skip
    assert script.state is State.IDLE
    assert script.events.count(Event.REPLY_FINISHED) == 1


def test_a_cancelled_reply_is_not_reported_as_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    script = Script()
    with caplog.at_level(logging.INFO, logger="device.conversation"):
        script.reply_starts()
        script.done("cancelled", {"type": "cancelled", "reason": "turn_detected"})
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("cancelled (turn_detected)" in r.getMessage() for r in caplog.records)


def test_transcripts_and_text_replies_reach_the_journal_and_the_timeline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = Script()
    ids = {"item_id": "item_user", "content_index": 0}
    with caplog.at_level(logging.INFO, logger="device.conversation"):
        script.server("conversation.item.input_audio_transcription.completed", **ids,
                      transcript="what time is it",
                      usage={"type": "duration", "seconds": 1.2})  # fmt: skip
        script.server("conversation.item.input_audio_transcription.failed", **ids,
                      error={"type": "transcription_error", "code": "audio_unintelligible",
                             "message": "Audio could not be transcribed."})  # fmt: skip
        script.server("response.output_text.done", response_id="resp_1", item_id="item_1",
                      output_index=0, content_index=0, text="It is noon.")  # fmt: skip
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.INFO, "user said: what time is it") in messages
    assert (logging.INFO, "assistant wrote: It is noon.") in messages
    assert any(
        level == logging.WARNING and "audio_unintelligible" in text for level, text in messages
    )
    assert [m.detail for m in script.timeline.marks if m.name == USER_TRANSCRIPT] == [
        "what time is it"
    ]


def test_after_a_reply_the_device_listens_for_the_idle_timeout_once() -> None:
    script = Script(IDLE)
    script.reply_starts()
    script.audio(1000)
    script.done("completed", None)
    assert script.conversation.listen_after_reply_ms == 1000 + 5000 + 300
    script.server("input_audio_buffer.timeout_triggered", audio_start_ms=4000,
                  audio_end_ms=9300, item_id="item_idle")  # fmt: skip
    assert script.timeline.count(IDLE_TIMEOUT) == 1
    assert script.conversation.listen_after_reply_ms == 0, "the prompt is asked once"
    script.server("input_audio_buffer.speech_started", audio_start_ms=9500, item_id="item_2")
    assert script.conversation.listen_after_reply_ms > 0, "the user spoke: listen again"


def test_without_an_idle_timeout_nothing_is_streamed_after_a_reply() -> None:
    script = Script()
    script.reply_starts()
    script.audio(500)
    script.done("completed", None)
    assert script.conversation.listen_after_reply_ms == 0
