"""Buttons, sounds and lights end to end: the daemon on fake hardware, talking to the
local simulator over a real WebSocket, with scripted presses of the fake buttons.

Presses come through ``FakeButtons.press`` exactly as gpiozero's edges would (the
handler crosses to the loop with ``call_soon_threadsafe``); a long press is a
press whose release is stamped ``hold_s`` later. Every event on the wire is
checked against the official SDK's types. Waits poll the daemon's state and are
bounded only to end a hung test: nothing is asserted about time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device import timeline as tl
from device.app import Daemon
from device.config import load_config, with_overrides
from device.controls import volume_gain
from device.demo import run_conversation, shipped_question
from device.demo_listen import scenario
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from device.state import State
from device.trace import read_trace
from device.ui import earcons
from device.ui.leds import GREEN
from hw.factory import HardwareRequest, build_fake
from hw.fake import FakeDuplex
from hw.panel_fake import FakeButtons, FakeLeds
from hw.ports import OFF
from tests.contract.oracle import client_problems, server_problems

SAFETY_S = 30.0  # only ends a hung test
SPEED = 4.0
LONG_S = 2.0  # past the default long press (1.5 s)


@dataclass
class Rig:
    daemon: Daemon
    sim: RealtimeSimulator
    duplex: FakeDuplex
    buttons: FakeButtons
    leds: FakeLeds


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY_S
    while not condition():
        assert loop.time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.005)


async def audio_until(duplex: FakeDuplex, at_s: float) -> None:
    await until(lambda: duplex.time_s >= at_s, f"audio time {at_s:.1f} s")


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    board: str = "respeaker-2mic",
    options: SimulatorOptions | None = None,
    listen: str = "always",
) -> AsyncIterator[Rig]:
    """The daemon connected and idle; ``listen`` "always" streams speech without a wake
    word, so what a press changes is all that differs. No AI disclosure is said."""
    async with RealtimeSimulator(options or SimulatorOptions(voice_engine="tone")) as sim:
        config = with_overrides(
            load_config(None),
            device={"hardware": "fake", "state_dir": str(tmp_path)},
            realtime={"url": sim.url},
            listen={"mode": listen},
            link={"disclosure": ""},
        )
        hardware = build_fake(HardwareRequest("fake", board=board), speed=SPEED)
        assert isinstance(hardware.duplex, FakeDuplex)
        assert isinstance(hardware.buttons, FakeButtons)
        assert isinstance(hardware.leds, FakeLeds)
        daemon = Daemon(config, hardware, "sk-test-buttons", today=lambda: "2026-11-24")
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await until(lambda: daemon.state is State.IDLE, "the session")
            yield Rig(daemon, sim, hardware.duplex, hardware.buttons, hardware.leds)
        finally:
            stop.set()
            await task
            hardware.close()
    assert [p for e in sim.received for p in client_problems(e)] == []
    assert [p for e in sim.sent for p in server_problems(e)] == []


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def peak(samples: np.ndarray) -> int:
    return int(np.abs(samples.astype(np.int32)).max()) if len(samples) else 0


def test_single_press_stops_the_reply_and_truncates_it_to_what_was_heard(
    tmp_path: Path,
) -> None:
    # Reply audio comes in slower than the fake speaker plays it, so the response is
    # still being generated when the button is pressed: it must be cancelled too.
    options = SimulatorOptions(voice_engine="tone", delta_ms=100, delta_interval_s=0.05)

    async def body() -> tuple[list[dict[str, Any]], list[dict[str, Any]], np.ndarray, int]:
        async with running(tmp_path, options=options) as rig:
            rig.duplex.feed_wav(shipped_question(), at_s=rig.duplex.time_s + 0.2)
            await until(lambda: rig.daemon.state is State.SPEAKING, "the reply")
            await audio_until(rig.duplex, rig.duplex.time_s + 0.2)  # some of it is heard
            pressed_frame = len(rig.duplex.played())
            rig.buttons.press("talk")
            await asyncio.wait_for(rig.daemon.wait_for_replies(1), SAFETY_S)
            await until(lambda: rig.daemon.state is State.IDLE, "idle")
            await audio_until(rig.duplex, rig.duplex.time_s + 1.0)
            played = rig.duplex.played()[:, 0]
            return rig.sim.received, rig.sim.sent, played, pressed_frame

    received, sent, played, pressed = asyncio.run(body())
    assert "response.cancel" in kinds(received)
    truncates = [e for e in received if e["type"] == "conversation.item.truncate"]
    assert len(truncates) == 1
    done = [e["response"] for e in sent if e["type"] == "response.done"]
    assert [r["status"] for r in done] == ["cancelled"]
    assert truncates[0]["item_id"] == done[0]["output"][0]["id"]
    assert 0 < truncates[0]["audio_end_ms"] < 1500  # heard some of the 1.5 s reply, not all
    assert not [e for e in sent if e["type"] == "error"]
    # the speaker went quiet: from a few blocks after the press on, nothing is played
    rate_hz = 16000
    after = played[pressed + rate_hz // 10 : pressed + rate_hz // 2]
    assert len(after) == rate_hz * 4 // 10
    assert peak(after) == 0
    assert peak(played[:pressed]) > 1000  # and before it, the reply was playing


def test_long_press_mutes_and_not_a_byte_of_speech_leaves_until_unmuted(tmp_path: Path) -> None:
    async def body() -> dict[str, Any]:
        async with running(tmp_path) as rig:
            daemon, duplex = rig.daemon, rig.duplex
            start_frame = len(duplex.played())
            rig.buttons.press("talk", hold_s=LONG_S)
            await until(lambda: daemon.state is State.MUTED, "muted")
            await until(lambda: "input_audio_buffer.clear" in kinds(rig.sim.received), "clear")
            cleared_at = kinds(rig.sim.received).index("input_audio_buffer.clear")
            # a long stretch of speech while muted: the question three times over
            spoken_s = 0.0
            begin_s = duplex.time_s + 0.3
            for _ in range(3):
                spoken_s += duplex.feed_wav(shipped_question(), at_s=begin_s + spoken_s)
            await audio_until(duplex, begin_s + spoken_s + 1.5)
            during = rig.sim.received[cleared_at:]
            dropped = daemon.stats.chunks_dropped_muted
            muted_output = duplex.played()[start_frame:, 0]
            muted_frames = list(rig.leds.frames)
            # unmute: back to idle on the same session, and listening again
            rig.buttons.press("talk", hold_s=LONG_S)
            await until(lambda: daemon.state is State.IDLE, "unmuted and idle")
            unmuted_at = len(rig.sim.received)
            duplex.feed_wav(shipped_question(), at_s=duplex.time_s + 0.2)
            await asyncio.wait_for(daemon.wait_for_replies(1), SAFETY_S)
            return {
                "during": during, "dropped": dropped, "output": muted_output,
                "frames": muted_frames, "after": rig.sim.received[unmuted_at:],
                "rate_hz": duplex.format.rate_hz, "volume": daemon.controls.volume_percent,
                "connections": daemon.stats.connections, "sent": rig.sim.sent,
            }  # fmt: skip

    r = asyncio.run(body())
    assert kinds(r["during"]).count("input_audio_buffer.append") == 0
    assert r["dropped"] > 50  # the speech was there, and was dropped at the device
    assert "input_audio_buffer.append" in kinds(r["after"])  # the microphone is back
    assert r["connections"] == 1  # muting does not touch the connection
    assert kinds(r["sent"]).count("response.created") == 1  # only the question after unmute
    # the mute earcon was the only sound while muted, at the playback volume
    expected = earcons.pcm("mute", r["rate_hz"], volume_gain(r["volume"]))
    assert peak(r["output"]) == peak(expected)
    # the LEDs showed red at the 2-mic HAT's two mic pixels, the middle one dark
    red_at_mics = [
        f for f in r["frames"]
        if f.pixels[0].r > 128 and f.pixels[2].r > 128 and f.pixels[1] == OFF
    ]  # fmt: skip
    assert red_at_mics


def test_a_press_while_idle_opens_a_turn_with_the_wake_sound(tmp_path: Path) -> None:
    """With the wake-word mode (the default), only the press lets the speech out."""

    async def body() -> tuple[list[State], np.ndarray, int, int]:
        async with running(tmp_path, listen="wake_word") as rig:
            daemon, duplex = rig.daemon, rig.duplex
            seen: list[State] = []
            original = daemon.ui.state_changed

            def spy(old: State, new: State, event: Any) -> None:
                seen.append(new)
                original(old, new, event)

            daemon.ui.state_changed = spy  # type: ignore[method-assign]
            start = len(duplex.played())
            rig.buttons.press("talk")
            await until(lambda: daemon.state is State.WAKE, "wake")
            duplex.feed_wav(shipped_question(), at_s=duplex.time_s + 0.3)
            await asyncio.wait_for(daemon.wait_for_replies(1), SAFETY_S)
            return (
                seen,
                duplex.played()[start:, 0],
                duplex.format.rate_hz,
                daemon.controls.volume_percent,
            )

    seen, output, rate_hz, volume = asyncio.run(body())
    assert seen[:5] == [State.WAKE, State.LISTENING, State.THINKING, State.SPEAKING, State.IDLE]
    wake = earcons.pcm("wake", rate_hz, volume_gain(volume))
    # the wake sound is what the speaker played first after the press
    first = int(np.flatnonzero(output)[0]) - int(np.flatnonzero(wake)[0])
    assert np.array_equal(output[first : first + len(wake)], wake)


def test_volume_buttons_step_the_volume_and_it_survives_a_restart(tmp_path: Path) -> None:
    async def body() -> tuple[int, np.ndarray, int, list[Any]]:
        async with running(tmp_path, board="mycroft-sj201") as rig:
            start = len(rig.duplex.played())
            for name in ("volume_up", "volume_up", "volume_down"):
                rig.buttons.press(name)
            await until(lambda: rig.daemon.controls.volume_percent == 80, "volume 80")
            await audio_until(rig.duplex, rig.duplex.time_s + 0.5)  # the ticks play out
            return (rig.daemon.controls.volume_percent, rig.duplex.played()[start:, 0],
                    rig.duplex.format.rate_hz, list(rig.leds.frames))  # fmt: skip

    volume, output, rate_hz, frames = asyncio.run(body())
    assert volume == 80
    assert json.loads((tmp_path / "settings.json").read_text()) == {"volume_percent": 80}
    # three ticks, the loudest at 90 %: each played at the volume it announced
    assert peak(output) == peak(earcons.pcm("volume", rate_hz, volume_gain(90)))
    assert sum(1 for f in frames if f.pixels.count(GREEN) == 10) >= 1  # 80 % of 12 pixels

    async def restart() -> Daemon:
        config = with_overrides(
            load_config(None), device={"hardware": "fake", "state_dir": str(tmp_path)}
        )
        daemon = Daemon(config, build_fake(HardwareRequest("fake")), "sk-test")
        await daemon.controls.load()
        return daemon

    assert asyncio.run(restart()).controls.volume_percent == 80


def test_the_buttons_demo_scenario_mutes_unmutes_and_answers_after_a_press(
    tmp_path: Path,
) -> None:
    """``edgevoice demo --scenario buttons``: in wake-word mode, the wake word and the
    question said while muted leave nothing on the wire; after unmuting, a single press
    opens the turn the question is then answered in, without the wake word."""
    config = with_overrides(load_config(None), link={"disclosure": ""},
                            listen={"mode": "wake_word"})  # fmt: skip
    trace_path = tmp_path / "trace.jsonl"
    plan = scenario("buttons", shipped_question())
    result = asyncio.run(
        run_conversation(
            config,
            shipped_question(),
            tmp_path / "reply.wav",
            trace_path=trace_path,
            speed=SPEED,
            timeout_s=40.0,
            scenario=plan,
        )
    )
    trace = read_trace(trace_path)
    marks = {m.name: m.at_s for m in result.timeline.marks}
    muted_s, unmuted_s = marks[tl.MIC_MUTED], marks[tl.MIC_UNMUTED]
    appends = [line["t"] for line in trace if line["dir"] == "sent"
               and line["event"]["type"] == "input_audio_buffer.append"]  # fmt: skip
    assert muted_s < unmuted_s
    assert result.chunks_dropped_muted > 50  # the wake word and the question were heard
    assert appends and not [t for t in appends if t < unmuted_s]
    assert result.wake_words == 0  # the turn was opened by the press
    assert result.replies == 1 and result.reply_audio_s > 1.0
    for line in trace:
        check = client_problems if line["dir"] == "sent" else server_problems
        assert check(line["event"]) == []
