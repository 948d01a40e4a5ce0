"""Push-to-talk and held-open streaming: the capture pipeline streams whatever the gate
says while held, the session ends a turn only with enough audio, and the conversation
turns the button into state-machine events. Every client event is checked by the oracle."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from device.audio.capture import API_BYTES_PER_MS, CapturePipeline, CaptureResult, GateSettings
from device.audio.playback import PlaybackBuffer
from device.conversation import Conversation, ReplyPlayer
from device.errors import LocalProtocolError
from device.realtime.session import MIN_COMMIT_MS, RealtimeSession, SessionSettings
from device.state import Event
from tests.contract.oracle import client_problems
from tests.unit.test_capture import question_with_silence, run_blocks

RATE_HZ = 16000
BLOCK = 320  # 20 ms at 16 kHz


def sent(results: list[CaptureResult]) -> bytes:
    return b"".join(chunk for result in results for chunk in result.chunks)


def sent_ms(results: list[CaptureResult]) -> float:
    return len(sent(results)) / API_BYTES_PER_MS


def wire(session: RealtimeSession) -> list[dict[str, Any]]:
    events = session.data_to_send()
    for event in events:
        assert client_problems(event) == [], event
    return events


def pcm_ms(ms: int) -> bytes:
    return b"\x01\x00" * 24 * ms


# -- the capture pipeline ------------------------------------------------------------


def test_held_open_streams_silence_and_nothing_twice() -> None:
    pipeline = CapturePipeline(RATE_HZ, GateSettings(), send_chunk_ms=40)
    assert pipeline.hold(True) == []
    results = run_blocks(pipeline, np.zeros(RATE_HZ, np.int16))  # 1 s of silence
    flushed = pipeline.hold(False)
    total_ms = sent_ms(results) + len(b"".join(flushed)) / API_BYTES_PER_MS
    assert total_ms == pytest.approx(1000, abs=5)  # all of it, not more
    after = run_blocks(pipeline, np.zeros(RATE_HZ, np.int16))
    assert sent(after) == b"", "released: the gate decides again, and silence stays home"


def test_held_over_speech_sends_it_once_without_a_pre_roll_repeat() -> None:
    audio = question_with_silence(lead_s=0.5, tail_s=0.5)
    pipeline = CapturePipeline(RATE_HZ, GateSettings(pre_roll_ms=300))
    pipeline.hold(True)
    results = run_blocks(pipeline, audio)
    streamed = sent(results) + b"".join(pipeline.hold(False))
    assert any(r.speech_started for r in results), "the gate still reports speech"
    assert len(streamed) / API_BYTES_PER_MS == pytest.approx(len(audio) / 16, abs=5)


def test_push_to_talk_pipeline_streams_only_while_held() -> None:
    audio = question_with_silence(lead_s=0.5, tail_s=0.5)
    pipeline = CapturePipeline(RATE_HZ, GateSettings(), follow_gate=False)
    free = run_blocks(pipeline, audio)
    assert any(r.speech_started for r in free) and sent(free) == b""
    pipeline.hold(True)
    held = run_blocks(pipeline, audio[:RATE_HZ])  # the first second, held
    rest = pipeline.hold(False)
    assert sent_ms(held) + len(b"".join(rest)) / API_BYTES_PER_MS == pytest.approx(1000, abs=5)
    assert sent(run_blocks(pipeline, audio)) == b""


def test_a_tail_keeps_streaming_after_the_gate_closes() -> None:
    audio = question_with_silence(lead_s=0.5, tail_s=3.0)
    plain = run_blocks(CapturePipeline(RATE_HZ, GateSettings(hangover_ms=800)), audio)
    tailed = run_blocks(
        CapturePipeline(RATE_HZ, GateSettings(hangover_ms=800), tail_ms=1000), audio
    )
    assert sent_ms(tailed) - sent_ms(plain) == pytest.approx(1000, abs=25)
    stops = [i for i, r in enumerate(tailed) if r.speech_stopped]
    assert stops == [i for i, r in enumerate(plain) if r.speech_stopped]  # reported as before


def test_a_timed_hold_ends_by_itself_or_early() -> None:
    pipeline = CapturePipeline(RATE_HZ, GateSettings())
    pipeline.hold_for_ms(500)
    assert sent_ms(run_blocks(pipeline, np.zeros(RATE_HZ, np.int16))) == pytest.approx(500, abs=5)
    pipeline.hold_for_ms(800)
    first = run_blocks(pipeline, np.zeros(RATE_HZ // 5, np.int16))  # 200 ms
    pipeline.hold_for_ms(0)
    after = run_blocks(pipeline, np.zeros(RATE_HZ, np.int16))
    assert sent_ms(first) + sent_ms(after) == pytest.approx(200, abs=5)


# -- the session ---------------------------------------------------------------------


def test_end_turn_commits_and_asks_for_the_answer() -> None:
    session = RealtimeSession(SessionSettings(turn_detection=None))
    for _ in range(5):
        session.append_audio(pcm_ms(20))
    commit_id = session.end_turn()
    events = wire(session)
    assert [e["type"] for e in events] == ["input_audio_buffer.append"] * 5 + [
        "input_audio_buffer.commit",
        "response.create",
    ]
    assert events[5]["event_id"] == commit_id


@pytest.mark.parametrize("appended_ms", [0, 20, MIN_COMMIT_MS - 20])
def test_a_tap_clears_instead_of_an_empty_commit(appended_ms: int) -> None:
    session = RealtimeSession(SessionSettings(turn_detection=None))
    for _ in range(appended_ms // 20):
        session.append_audio(pcm_ms(20))
    assert session.end_turn() is None
    assert [e["type"] for e in wire(session)][-1:] == ["input_audio_buffer.clear"]


def test_audio_counts_again_from_each_commit_or_clear() -> None:
    session = RealtimeSession(SessionSettings(turn_detection=None))
    session.append_audio(pcm_ms(200))
    assert session.end_turn() is not None
    session.append_audio(pcm_ms(60))
    assert session.end_turn() is None  # 60 ms since the commit
    session.append_audio(pcm_ms(60))
    assert session.end_turn() is None  # 60 ms since the clear
    assert "input_audio_buffer.commit" not in [e["type"] for e in wire(session)][-2:]


def test_end_turn_is_for_push_to_talk_only() -> None:
    with pytest.raises(LocalProtocolError):
        RealtimeSession(SessionSettings()).end_turn()


# -- the conversation ----------------------------------------------------------------


def test_the_button_cuts_the_reply_and_ends_the_turn() -> None:
    session = RealtimeSession(SessionSettings(turn_detection=None))
    playback = PlaybackBuffer(24000)
    conversation = Conversation(session, ReplyPlayer(playback, 24000))
    frames: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}},
        {"type": "response.output_audio.delta", "response_id": "resp_1", "item_id": "item_1",
         "output_index": 0, "content_index": 0, "delta": base64.b64encode(pcm_ms(100)).decode()},
    ]  # fmt: skip
    for frame in frames:
        for event in session.receive(json.dumps({"event_id": "e", **frame})):
            conversation.handle(event)
    playback.read(480)  # 20 ms of the reply were heard
    wire(session)
    assert conversation.talk(True) == [Event.USER_SPEECH_STARTED]
    assert [e["type"] for e in wire(session)] == ["response.cancel", "conversation.item.truncate"]
    assert playback.queued_frames == 0, "the speaker stops at once"
    session.append_audio(pcm_ms(300))
    assert conversation.talk(False) == [Event.USER_SPEECH_STOPPED]
    assert [e["type"] for e in wire(session)][-2:] == [
        "input_audio_buffer.commit",
        "response.create",
    ]
    assert conversation.talk(True) == [Event.USER_SPEECH_STARTED]
    assert conversation.talk(False) == [Event.ACTIVATION_ENDED]  # a tap: nothing said
