"""``edgevoice demo``: the real daemon on fake hardware against the local simulator.

A spoken question is fed into the fake mic; the daemon streams it over a real
WebSocket to the simulator on 127.0.0.1, plays the spoken reply into the fake
DAC, and the demo writes what the speaker played to a WAV file and prints the
event timeline with per-turn latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.app import Daemon
from device.config import Config, load_config, with_overrides
from device.demo_listen import Scenario, scenario, speak
from device.errors import EXIT_FAILURE, EXIT_OK
from device.logs import setup_logging
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from device.timeline import Timeline
from device.trace import Trace
from hw.factory import HardwareRequest, build_fake
from hw.fake import FakeDuplex
from hw.ports import HardwareError

log = logging.getLogger("edgevoice.demo")

LEAD_IN_S = 0.5  # silence before the question, as in a room
TAIL_S = 0.3  # keep recording a moment after the reply ends
# The simulator accepts any well-formed key; this one never leaves 127.0.0.1.
LOCAL_KEY = "sk-edgevoice-local-simulator"


@dataclass(frozen=True)
class DemoResult:
    replies: int
    reply_audio_s: float  # how long the DAC played something other than silence
    output: Path
    timeline: Timeline
    faults_fired: tuple[str, ...] = ()
    wake_words: int = 0  # times the wake word was heard
    barge_ins: int = 0  # times the user's voice cut a reply short
    chunks_dropped_asleep: int = 0  # microphone chunks dropped before an activation
    chunks_dropped_muted: int = 0  # microphone chunks dropped while muted


def shipped_question() -> Path:
    ref = importlib.resources.files("device") / "data" / "question.wav"
    return Path(str(ref))


def audible_seconds(samples: np.ndarray, rate_hz: int, threshold: int = 300) -> float:
    """Seconds of 10 ms frames whose peak is above ``threshold`` (about -40 dBFS)."""
    mono = samples.reshape(len(samples), -1)[:, 0].astype(np.int32)
    frame = rate_hz // 100
    usable = len(mono) // frame * frame
    peaks = np.abs(mono[:usable]).reshape(-1, frame).max(axis=1) if usable else np.zeros(0)
    return float((peaks > threshold).sum()) / 100.0


async def run_conversation(
    config: Config,
    question: Path,
    output: Path,
    *,
    trace_path: Path | None = None,
    speed: float = 1.0,
    timeout_s: float = 60.0,  # of audio time
    options: SimulatorOptions | None = None,
    turns: int = 1,
    echo_gain: float = 0.0,
    scenario: Scenario | None = None,
) -> DemoResult:
    """Ask ``question`` (after the wake word, in wake_word mode) and wait for ``turns``
    replies to finish playing; a ``scenario`` changes what is said and when."""
    plan = scenario or Scenario(turns=turns, echo_gain=echo_gain)
    timeline = Timeline()
    trace = Trace(trace_path) if trace_path is not None else None
    simulator = RealtimeSimulator(options or SimulatorOptions())
    await simulator.start()
    try:
        state_dir = output.parent.resolve() / "state"  # the demo's cost totals, not the device's
        state_dir.mkdir(parents=True, exist_ok=True)
        # The question comes at once and would cut the AI disclosure of a first start
        # short: the demo is about the conversation (the disclosure has tests of its own).
        overrides = {"link": {"disclosure": ""}, **plan.overrides}
        config = with_overrides(
            config,
            device={"hardware": "fake", "state_dir": str(state_dir)},
            realtime={"url": simulator.url},
            **overrides,
        )
        hardware = build_fake(
            HardwareRequest("fake", board=config.device.board, block_ms=config.audio.block_ms),
            speed=speed,
            echo_gain=plan.echo_gain,
        )
        duplex = hardware.duplex
        assert isinstance(duplex, FakeDuplex)
        start_s = LEAD_IN_S
        if plan.question_first:
            start_s += duplex.feed_wav(question, at_s=start_s) + LEAD_IN_S
        if plan.opening:
            speak(config, duplex, question, start_s)
        daemon = Daemon(config, hardware, LOCAL_KEY, timeline=timeline, trace=trace)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        replies = asyncio.create_task(daemon.wait_for_replies(plan.turns))
        script = None if plan.script is None else asyncio.create_task(plan.script(daemon, duplex))
        try:
            # the daemon ending early (a hardware error) also ends the wait
            await asyncio.wait(
                [task, replies], timeout=timeout_s / speed, return_when=asyncio.FIRST_COMPLETED
            )
            if not task.done():
                await asyncio.sleep(TAIL_S / speed)
        finally:
            replies.cancel()
            if script is not None:
                script.cancel()
            stop.set()
            await task
            hardware.close()
        duplex.save_output(output)
        rate_hz = duplex.format.rate_hz
        listening = daemon.listener.core
        return DemoResult(
            daemon.replies_finished,
            audible_seconds(duplex.played(), rate_hz),
            output,
            timeline,
            tuple(simulator.faults_fired),
            listening.wake_words,
            listening.barge_ins,
            daemon.stats.chunks_dropped_asleep,
            daemon.stats.chunks_dropped_muted,
        )
    finally:
        await simulator.stop()
        if trace is not None:
            trace.close()


def run_demo(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    setup_logging(config.device.log_level)
    question = args.input or shipped_question()
    plan = scenario(args.scenario, question)
    options = SimulatorOptions(
        reply_text=args.reply_text, voice_engine=args.voice_engine, faults=tuple(args.fault)
    )
    try:
        result = asyncio.run(
            run_conversation(
                config,
                question,
                args.output,
                trace_path=args.trace,
                speed=args.speed,
                timeout_s=args.timeout,
                options=options,
                scenario=plan,
            )
        )
    except HardwareError as exc:
        print(f"edgevoice demo: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(result.timeline.render())
    for fault in result.faults_fired:
        print(f"fault fired: {fault}")
    print(f"question: {question}")
    if args.scenario != "question" or result.wake_words:
        print(
            f"scenario {args.scenario}: wake word heard {result.wake_words} time(s), "
            f"{result.barge_ins} barge-in(s), {result.chunks_dropped_asleep} microphone "
            "chunk(s) dropped before an activation"
            + (
                f", {result.chunks_dropped_muted} while muted"
                if result.chunks_dropped_muted
                else ""
            )
        )
    print(f"reply WAV: {result.output} ({result.reply_audio_s:.1f} s of audible reply)")
    if args.trace:
        print(f"trace: {args.trace}")
    if result.replies < plan.turns or result.reply_audio_s <= 0:
        print("edgevoice demo: no reply was played; see the log above", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
