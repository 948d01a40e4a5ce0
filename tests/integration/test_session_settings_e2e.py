"""Every Realtime session setting end to end: the daemon on fake hardware, over a real
WebSocket to the local simulator, with its settings built from the config by
``session_settings``. Every event on the wire, both ways, is checked by the SDK oracle.

The fake audio runs faster than real time; waits are on its clock (``duplex.time_s``),
and nothing is asserted about wall-clock time.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from device.app import Daemon
from device.audio.playback import PlaybackBuffer
from device.config import load_config, with_overrides
from device.demo import shipped_question
from device.realtime.sim_faults import parse_fault
from device.realtime.sim_options import IDLE_REPLY
from device.realtime.sim_voice import tone_pattern
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from device.state import State
from device.timeline import IDLE_TIMEOUT, REPLY_ENDED_EARLY, USER_TRANSCRIPT, Timeline
from device.trace import Trace, read_trace
from hw.factory import HardwareRequest, build_fake
from hw.fake import FakeDuplex
from tests.contract.oracle import client_problems, server_problems

Event = dict[str, Any]
SPEED = 6.0  # audio seconds per real second
KEY = "sk-test-session-settings"
SAFETY_TIMEOUT_S = 30.0  # bounds a hung test; nothing is asserted about time
QUESTION_S = 2.42  # the shipped question
BYTES_PER_MS = 48
TONE_MS = len(tone_pattern()) / BYTES_PER_MS
Script = Callable[[Daemon, FakeDuplex], Awaitable[None]]


@dataclass
class Run:
    daemon: Daemon
    sim: RealtimeSimulator
    duplex: FakeDuplex
    timeline: Timeline
    states: list[State]  # every state the daemon went through, until stopped
    final: State  # the state before the daemon was stopped
    trace: list[dict[str, Any]]

    def received(self, kind: str) -> list[Event]:
        """Client events of this type, as the simulator received them."""
        return [e for e in self.sim.received if e["type"] == kind]

    def sent(self, kind: str) -> list[Event]:
        """Server events of this type, as the simulator sent them."""
        return [e for e in self.sim.sent if e["type"] == kind]

    def reply_audio_ms(self) -> float:
        deltas = self.sent("response.output_audio.delta")
        return sum(len(base64.b64decode(e["delta"])) for e in deltas) / BYTES_PER_MS

    def appended_ms(self) -> float:
        appends = self.received("input_audio_buffer.append")
        return sum(len(base64.b64decode(e["audio"])) for e in appends) / BYTES_PER_MS


async def until(ready: Callable[[], bool]) -> None:
    """Poll: neither the fake audio clock nor the link's readiness has an event to await."""
    while True:
        if ready():
            return
        await asyncio.sleep(0.002)


async def at_audio_time(duplex: FakeDuplex, at_s: float) -> None:
    await until(lambda: duplex.time_s >= at_s)


async def ask(daemon: Daemon, duplex: FakeDuplex) -> float:
    """Speak the question once the session is ready; returns when it starts (audio s)."""
    await until(lambda: daemon.link.ready)
    start_s = duplex.time_s + 0.3
    duplex.feed_wav(shipped_question(), at_s=start_s)
    return start_s


def run_daemon(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    realtime: dict[str, Any] | None = None,
    turn: dict[str, Any] | None = None,
    listen: str = "always",
    faults: tuple[str, ...] = (),
    script: Script | None = None,
    replies: int = 1,
    linger_s: float = 0.0,
) -> Run:
    """Run the daemon until ``replies`` replies finished (and ``linger_s`` audio seconds more)."""
    timeline = Timeline()
    trace_path = tmp_path / "trace.jsonl"

    async def main() -> Run:
        options = SimulatorOptions(
            voice_engine="tone", faults=tuple(parse_fault(spec) for spec in faults)
        )
        async with RealtimeSimulator(options) as sim:
            config = with_overrides(
                load_config(None),
                device={"hardware": "fake", "state_dir": str(tmp_path)},
                realtime={"url": sim.url, **(realtime or {})},
                turn=turn or {},
                listen={"mode": listen},
                link={"disclosure": ""},  # no spoken AI notice: each reply is the answer
            )
            hardware = build_fake(HardwareRequest("fake"), speed=SPEED)
            duplex = hardware.duplex
            assert isinstance(duplex, FakeDuplex)
            trace = Trace(trace_path)
            daemon = Daemon(config, hardware, KEY, timeline=timeline, trace=trace)
            states: list[State] = []
            dispatch = daemon.dispatch

            def recording(event: Any) -> None:
                dispatch(event)
                if not states or states[-1] is not daemon.state:
                    states.append(daemon.state)

            monkeypatch.setattr(daemon, "dispatch", recording)
            stop = asyncio.Event()
            task = asyncio.create_task(daemon.run(stop))
            final = State.OFFLINE
            try:
                await asyncio.wait_for((script or ask)(daemon, duplex), SAFETY_TIMEOUT_S)
                await asyncio.wait_for(daemon.wait_for_replies(replies), SAFETY_TIMEOUT_S)
                if linger_s:
                    await asyncio.wait_for(
                        at_audio_time(duplex, duplex.time_s + linger_s), SAFETY_TIMEOUT_S
                    )
                final = daemon.state
            finally:
                stop.set()
                await task
                hardware.close()
                trace.close()
            return Run(daemon, sim, duplex, timeline, states, final, read_trace(trace_path))

    run = asyncio.run(main())
    problems = [p for e in run.sim.received for p in client_problems(e)]
    problems += [p for e in run.sim.sent for p in server_problems(e)]
    assert problems == [], "\n".join(problems)
    return run


def the_update(run: Run) -> dict[str, Any]:
    [update] = run.received("session.update")
    session: dict[str, Any] = update["session"]
    return session


# -- settings on the wire, transcription and speed -------------------------------------


def test_every_setting_is_sent_echoed_and_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    realtime = {
        "speed": 1.25, "max_output_tokens": 2000, "truncation": 0.7,
        "truncation_post_instructions_tokens": 5000, "prompt_id": "pmpt_speaker1",
        "prompt_version": "3", "prompt_variables": {"room": "kitchen"},
        "noise_reduction": "near_field", "transcription_model": "gpt-4o-mini-transcribe",
        "transcription_language": "en",
    }  # fmt: skip
    turn = {"threshold": 0.55, "prefix_padding_ms": 250, "silence_duration_ms": 600}
    with caplog.at_level(logging.INFO, logger="device.conversation"):
        run = run_daemon(tmp_path, monkeypatch, realtime=realtime, turn=turn)
    sent = the_update(run)
    assert sent["truncation"] == {"type": "retention_ratio", "retention_ratio": 0.7,
                                  "token_limits": {"post_instructions": 5000}}  # fmt: skip
    assert sent["prompt"] == {"id": "pmpt_speaker1", "version": "3",
                              "variables": {"room": "kitchen"}}  # fmt: skip
    assert sent["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 600
    [updated] = run.sent("session.updated")
    effective = updated["session"]
    for key in ("truncation", "prompt", "max_output_tokens", "output_modalities"):
        assert effective[key] == sent[key], key
    assert effective["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert effective["audio"]["input"]["transcription"] == {
        "model": "gpt-4o-mini-transcribe",
        "language": "en",
    }
    assert effective["audio"]["input"]["turn_detection"]["threshold"] == 0.55
    assert not run.sent("error")

    # Speed: the reply is the tone pattern, shortened to 1/1.25 of its length.
    assert run.reply_audio_ms() == pytest.approx(TONE_MS / 1.25, rel=0.02)

    # Transcription: the committed question, in the journal, the trace and the timeline.
    [committed] = run.sent("input_audio_buffer.committed")
    [completed] = run.sent("conversation.item.input_audio_transcription.completed")
    assert completed["item_id"] == committed["item_id"]
    assert completed["transcript"].endswith("seconds of speech)")
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("user said:")]
    assert said == [f"user said: {completed['transcript']}"]
    traced = [line["event"] for line in run.trace if line["dir"] == "recv"]
    assert completed in traced
    assert [m.detail for m in run.timeline.marks if m.name == USER_TRANSCRIPT] == [
        completed["transcript"]
    ]
    assert run.final is State.IDLE


# -- turn taking -----------------------------------------------------------------------


def test_push_to_talk_streams_while_held_and_a_tap_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held_s = 0.3 + QUESTION_S + 0.3

    async def talk(daemon: Daemon, duplex: FakeDuplex) -> None:
        await until(lambda: daemon.link.ready)
        pressed_s = duplex.time_s + 0.2
        duplex.feed_wav(shipped_question(), at_s=pressed_s + 0.3)
        await at_audio_time(duplex, pressed_s)
        daemon.push_to_talk(True)
        await at_audio_time(duplex, pressed_s + held_s)
        daemon.push_to_talk(False)
        await daemon.wait_for_replies(1)
        tap_s = duplex.time_s + 0.2
        await at_audio_time(duplex, tap_s)
        daemon.push_to_talk(True)
        await at_audio_time(duplex, tap_s + 0.04)  # two blocks: a tap, not a turn
        daemon.push_to_talk(False)
        await at_audio_time(duplex, tap_s + 0.5)

    run = run_daemon(
        tmp_path,
        monkeypatch,
        turn={"mode": "push_to_talk"},
        listen="push_to_talk",
        script=talk,
    )
    assert the_update(run)["audio"]["input"]["turn_detection"] is None
    assert not run.sent("input_audio_buffer.speech_started"), "no VAD without turn detection"
    kinds = [e["type"] for e in run.sim.received if e["type"] != "input_audio_buffer.append"]
    assert kinds[-3:] == ["input_audio_buffer.commit", "response.create",
                          "input_audio_buffer.clear"]  # fmt: skip
    # Only what was said while the button was down went out, and all of it.
    first_commit = next(i for i, e in enumerate(run.sim.received) if e["type"].endswith("commit"))
    turn_ms = sum(
        len(base64.b64decode(e["audio"])) / BYTES_PER_MS
        for e in run.sim.received[:first_commit]
        if e["type"] == "input_audio_buffer.append"
    )
    assert held_s * 1000 - 60 <= turn_ms <= held_s * 1000 + 60
    assert run.appended_ms() - turn_ms < 100  # the tap
    assert not run.sent("error")
    [done] = run.sent("response.done")
    assert done["response"]["status"] == "completed"
    assert run.final is State.IDLE
    assert State.LISTENING in run.states and State.THINKING in run.states


def test_semantic_vad_hears_the_end_of_the_turn_then_the_stream_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_daemon(tmp_path, monkeypatch, turn={"mode": "semantic_vad", "eagerness": "low"})
    assert the_update(run)["audio"]["input"]["turn_detection"]["eagerness"] == "low"
    [stopped] = run.sent("input_audio_buffer.speech_stopped")
    # The simulator ends a low-eagerness turn after 2 s of silence, more than the
    # device's own gate waits: the device streamed that silence, then stopped.
    assert run.appended_ms() - stopped["audio_end_ms"] < 1000
    assert run.sent("response.done")[0]["response"]["status"] == "completed"


def test_the_idle_timeout_prompts_once_after_a_silence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="device.conversation"):
        run = run_daemon(
            tmp_path, monkeypatch, turn={"idle_timeout_ms": 5000}, replies=2, linger_s=8.0
        )
    assert the_update(run)["audio"]["input"]["turn_detection"]["idle_timeout_ms"] == 5000
    assert len(run.sent("input_audio_buffer.timeout_triggered")) == 1
    # The device kept streaming after the reply: the service heard the silence.
    kinds = [(line["dir"], line["event"]["type"]) for line in run.trace]
    first_done = kinds.index(("recv", "response.done"))
    timeout_at = kinds.index(("recv", "input_audio_buffer.timeout_triggered"))
    silence_ms = sum(
        len(base64.b64decode(line["event"]["audio"])) / BYTES_PER_MS
        for line in run.trace[first_done:timeout_at]
        if line["event"]["type"] == "input_audio_buffer.append"
    )
    assert silence_ms >= 5000
    done = run.sent("response.done")
    assert len(done) == 2, "asked once, not again after its own prompt"
    assert done[1]["response"]["output"][0]["content"][0]["transcript"] == IDLE_REPLY
    assert run.timeline.count(IDLE_TIMEOUT) == 1
    assert any("no one spoke for" in r.getMessage() for r in caplog.records)
    assert run.final is State.IDLE


# -- how replies come and end ------------------------------------------------------------


def test_text_replies_reach_the_journal_and_nothing_is_played(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="device.conversation"):
        run = run_daemon(tmp_path, monkeypatch, realtime={"output_modality": "text"})
    assert the_update(run)["output_modalities"] == ["text"]
    assert run.sent("response.output_text.delta")
    assert not run.sent("response.output_audio.delta")
    [text] = run.sent("response.output_text.done")
    assert f"assistant wrote: {text['text']}" in [r.getMessage() for r in caplog.records]
    assert run.daemon.playback.dac_frames > 0 and run.daemon.replies_finished == 1
    assert State.SPEAKING not in run.states and run.final is State.IDLE


@pytest.mark.parametrize(
    ("realtime", "faults", "reason", "audio_ms"),
    [
        ({"max_output_tokens": 20}, (), "realtime.max_output_tokens", 1000),
        ({}, ("incomplete@response.output_audio.delta#3",), "content filter", 300),
    ],
    ids=["max_output_tokens", "content_filter"],
)
def test_a_reply_the_service_cuts_short_plays_out_and_the_device_goes_idle(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    realtime: dict[str, Any],
    faults: tuple[str, ...],
    reason: str,
    audio_ms: int,
) -> None:
    # The daemon forgets a reply's accounting once it has played: note it just before.
    played_ms_of: dict[str, float] = {}
    forget = PlaybackBuffer.forget

    def noting(buffer: PlaybackBuffer, item_id: str) -> None:
        played_ms_of[item_id] = buffer.played_ms(item_id)
        forget(buffer, item_id)

    monkeypatch.setattr(PlaybackBuffer, "forget", noting)
    with caplog.at_level(logging.INFO, logger="device.conversation"):
        run = run_daemon(tmp_path, monkeypatch, realtime=realtime, faults=faults)
    [done] = run.sent("response.done")
    assert done["response"]["status"] == "incomplete"
    assert run.reply_audio_ms() == pytest.approx(audio_ms, abs=1)
    item_id = done["response"]["output"][0]["id"]
    played_ms = played_ms_of.get(item_id, 0.0)
    assert played_ms == pytest.approx(audio_ms, abs=25), "what arrived is played out"
    ended = [r.getMessage() for r in caplog.records if "ended the reply" in r.getMessage()]
    assert len(ended) == 1 and reason in ended[0], ended
    assert run.timeline.count(REPLY_ENDED_EARLY) == 1
    assert run.final is State.IDLE and run.daemon.replies_finished == 1


def test_a_failed_reply_leaves_thinking_and_the_next_question_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def twice(daemon: Daemon, duplex: FakeDuplex) -> None:
        await ask(daemon, duplex)
        await daemon.wait_for_replies(1)
        await ask(daemon, duplex)

    with caplog.at_level(logging.INFO, logger="device.conversation"):
        run = run_daemon(
            tmp_path,
            monkeypatch,
            faults=("failed@response.created",),
            script=twice,
            replies=2,
        )
    first, second = (e["response"] for e in run.sent("response.done"))
    assert first["status"] == "failed" and second["status"] == "completed"
    assert first["status_details"]["error"]["code"] == "server_error"
    ended = [r.getMessage() for r in caplog.records if "ended the reply" in r.getMessage()]
    assert len(ended) == 1 and "failed: server_error" in ended[0]
    thinking = run.states.index(State.THINKING)
    assert run.states[thinking + 1] is State.IDLE, "no reply audio: straight back to idle"
    assert run.final is State.IDLE


def test_a_reload_with_new_turn_settings_starts_a_session_with_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def reload_then_ask(daemon: Daemon, duplex: FakeDuplex) -> None:
        await until(lambda: daemon.link.ready)
        semantic = with_overrides(daemon.config, turn={"mode": "semantic_vad", "eagerness": "low"})
        assert daemon.reload(semantic) == []
        await until(lambda: daemon.stats.connections == 2 and daemon.link.ready)
        await ask(daemon, duplex)

    run = run_daemon(tmp_path, monkeypatch, script=reload_then_ask)
    first, second = (e["session"]["audio"]["input"]["turn_detection"]
                     for e in run.received("session.update"))  # fmt: skip
    assert (first["type"], second["type"]) == ("server_vad", "semantic_vad")
    assert run.sim.connections == 2
    # The rebuilt capture pipeline streams the silence semantic_vad needs: the turn ends.
    assert run.sent("input_audio_buffer.speech_stopped")
    assert run.final is State.IDLE
