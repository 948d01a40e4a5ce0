"""An hour of conversation with random faults, on virtual time, in well under a minute.

The real daemon (``Daemon.run``) on fake hardware talks over 127.0.0.1 to the real
simulator. A seeded sequence of episodes (``episodes.py``) asks a question each and
makes one thing go wrong in most of them: bad frames, error events, a slow or a
stalled server, a drop in the middle of a reply, closes, expiry, refused handshakes,
a refused key, the audio device pulled and put back. The event loop's clock jumps
whenever it would wait (``virtual_time.py``), and the sound card is stepped from the
loop, one block per 20 ms of loop time, so an hour of audio is processed block by
block without an hour of waiting.

``[audio] aec = "none"``: the echo canceller costs about twice the rest of the
capture path per block, and it has its own tests; without it the microphone is held
while the speaker plays, so there is no barge-in here, and every reply either plays
to its end or is cut by its fault, which makes the reply count exact. The user is
silent between questions (the common case, and the cheap one for the voice detector).

After each episode the daemon must be back to idle and connected within a bound
(nothing stuck), every fault must have fired, and every event on the wire must
validate against the official SDK's types. Over the run: no task died and no
exception reached the loop, the watchdog would have been fed in time throughout, the
counters add up, memory grew at most 5 MB after warm-up, and the numbers of tasks
and threads stayed put.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import random
import statistics
import threading
import tracemalloc
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from device.demo import shipped_question
from device.realtime.sim_faults import parse_fault
from device.realtime.simulator import SimulatorOptions
from hw.fake import read_wav_mono
from tests.contract.oracle import client_problems, server_problems
from tests.soak.episodes import Episode, next_episode, warm_up
from tests.soak.rig import WATCHDOG_S, LogWatch, Rig, daemon_rig, watching_logs
from tests.soak.virtual_time import run_virtual

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("EDGEVOICE_SOAK_SEED", "20250101"))
SOAK_S = float(os.environ.get("EDGEVOICE_SOAK_S", "3600"))  # measured, after the warm-up
REAL_LIMIT_S = 300.0  # a run that takes longer than this fails rather than hangs CI
MEMORY_GROWTH_LIMIT_BYTES = 5 * 1024 * 1024
BLOCK_MS = 40  # a valid [audio] block_ms; half the blocks of the default 20 ms, half the time
# EDGEVOICE_SOAK_TRACEMALLOC=1 names the lines whose allocations grew (six times slower).
TRACEMALLOC = os.environ.get("EDGEVOICE_SOAK_TRACEMALLOC") == "1"
KEY = "sk-edgevoice-soak-4f1c2b9a7e6d5c3b"
TURN_WITHIN_S = 120.0  # a reply, or the fault, comes within this
SETTLE_WITHIN_S = 420.0  # back to idle: the slow retry of a refused key is 150..300 s
GAP_S = (2.0, 60.0)  # silence between questions
# What the daemon may log at ERROR during this soak: the faults it was given.
EXPECTED_ERRORS = ("audio fault:", "audio: ", "service fault:")


@dataclass
class Tally:
    """What the episodes promised, to hold the daemon's counters against."""

    replies: int = 0
    bad_frames: int = 0
    appends_received: int = 0
    events_checked: int = 0
    took_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    states: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def check_wire(rig: Rig, tally: Tally) -> None:
    """Every event both ways against the SDK's types; then forget them (memory)."""
    sim = rig.sim
    problems = [p for event in sim.sent for p in server_problems(event)]
    problems += [p for event in sim.received for p in client_problems(event)]
    assert problems == [], "\n".join(problems[:20])
    tally.events_checked += len(sim.sent) + len(sim.received)
    tally.appends_received += sum(
        1 for event in sim.received if event.get("type") == "input_audio_buffer.append"
    )
    sim.sent.clear()
    sim.received.clear()


def states_since(rig: Rig, since_s: float) -> set[str]:
    return {
        text.removeprefix("STATUS=").split(",")[0]
        for at, text in rig.notifier.messages
        if at >= since_s and text.startswith("STATUS=")
    }


async def play(rig: Rig, episode: Episode, rng: random.Random, question: np.ndarray,
               tally: Tally) -> None:  # fmt: skip
    """Ask one question with the episode's fault; wait until the daemon is idle again."""
    sim, daemon, duplex = rig.sim, rig.daemon, rig.duplex
    replies_before = daemon.replies_finished
    expected = [str(parse_fault(spec)) for spec in episode.inject]
    if episode.handshake:
        refusal = parse_fault(f"{episode.handshake},conn={sim.handshakes + 1}")
        sim.options = replace(sim.options, faults=(refusal,))
        expected.append(str(refusal))
    # A stalled connection the daemon left lingers on the simulator's side until its
    # stall ends; the fault must go to the daemon's connection alone.
    await rig.until(lambda: sim.open_connections == 1, 60, "one open connection")
    for spec in episode.inject:
        assert sim.inject(parse_fault(spec)) == 1
    started_s = rig.now_s
    duplex.feed(question, at_s=duplex.time_s + rng.uniform(0.3, 1.0))
    if episode.unplug_s:
        await rig.until(lambda: rig.now_s >= started_s + episode.unplug_after_s, 10, "unplug")
        duplex.unplug()
        plug_s = started_s + episode.unplug_after_s + episode.unplug_s
        await rig.until(lambda: rig.now_s >= plug_s, 30, "plug")
        duplex.plug()
    if episode.reply:
        await rig.until(lambda: daemon.replies_finished > replies_before, TURN_WITHIN_S,
                        f"reply ({episode.name})")  # fmt: skip
    await rig.until(lambda: len(sim.faults_fired) >= len(expected), TURN_WITHIN_S,
                    f"faults {expected} to fire")  # fmt: skip
    settled_s = await rig.until(rig.settled, SETTLE_WITHIN_S, f"idle after {episode.name}")
    assert sim.faults_fired == expected, episode
    sim.faults_fired.clear()
    sim.options = replace(sim.options, faults=())
    assert daemon.replies_finished == replies_before + int(episode.reply), episode
    assert duplex.errors == 0, "the audio callback raised or returned a bad block"
    tally.replies += int(episode.reply)
    tally.bad_frames += episode.bad_frames
    tally.took_s[episode.name].append(settled_s - started_s)
    tally.states[episode.name] |= states_since(rig, started_s)
    check_wire(rig, tally)
    rig.leds.frames.clear()
    replies = daemon.replies_finished
    await rig.until(lambda: rig.now_s >= settled_s + rng.uniform(*GAP_S), 61, "the gap")
    assert daemon.replies_finished == replies, f"a reply nobody asked for after {episode}"
    assert rig.settled(), f"not idle in the silence after {episode}"


def check_counters(rig: Rig, tally: Tally) -> None:
    daemon, sim = rig.daemon, rig.sim
    stats = daemon.stats
    assert daemon.replies_finished == tally.replies
    assert stats.bad_frames == tally.bad_frames
    assert stats.connections == sim.connections
    # Every chunk produced has exactly one outcome: sent, or one of the counted drops.
    outcomes = {
        name: value for name, value in vars(stats).items()
        if name.startswith("chunks_") and name != "chunks_produced"
    }  # fmt: skip
    assert stats.chunks_produced == sum(outcomes.values()), stats
    # Sent chunks reach the service unless their connection broke under them.
    assert tally.appends_received <= stats.chunks_sent
    assert stats.chunks_produced > 0 and stats.chunks_sent > 0


def rss_bytes() -> int:
    """The process's resident memory, as the device's own limit sees it, once the C
    allocator has handed back what it keeps free (else its free lists read as growth)."""
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def census() -> Counter[str]:
    """Live objects by type: what grew, when memory grew."""
    gc.collect()
    return Counter(type(obj).__qualname__ for obj in gc.get_objects())


# Ends the turn's connection, so the simulator (same process) holds a fresh, empty
# session when memory is read: the service keeps a session's audio, and so does it.
FRESH_CONNECTION = Episode("fresh connection", ("close:1012@response.done",), reply=False)


@dataclass
class Growth:
    """What grew between the end of the warm-up and the end of the soak."""

    rss_bytes: int
    objects: Counter[str]
    traced: list[tracemalloc.Statistic] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"resident memory grew {self.rss_bytes / 1024:.0f} KiB; objects that grew:"]
        lines += [f"  {name}: +{count}" for name, count in self.objects.most_common(6)]
        for stat in self.traced:
            lines += [f"  {stat}", *("    " + line for line in stat.traceback.format()[-6:])]
        return "\n".join(lines)


@dataclass
class Soaked:
    """The run's measurements, read after the daemon stopped."""

    rig: Rig
    tally: Tally
    growth: Growth
    episodes: int
    virtual_s: float
    task_counts: Counter[int]
    tasks_at_start: int
    threads: tuple[int, int]  # at the start, at the end
    end_s: float  # the loop's clock when the soak ended


async def one_connection(rig: Rig) -> int:
    """The number of tasks, counted with the simulator serving the daemon alone."""
    await rig.until(lambda: rig.sim.open_connections == 1, 60, "one open connection")
    return len(asyncio.all_tasks())


async def soak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: LogWatch) -> Soaked:
    rng = random.Random(SEED)
    random.seed(SEED)  # the audio supervisor's reopen jitter
    options = SimulatorOptions(voice_engine="tone", reply_text="Okay.")
    tally = Tally()
    async with daemon_rig(
        monkeypatch, tmp_path / "state", KEY, options,
        audio={"aec": "none", "block_ms": BLOCK_MS}, listen={"mode": "always"},
    ) as rig:  # fmt: skip
        question = read_wav_mono(shipped_question(), rig.duplex.format.rate_hz)
        await rig.until(rig.settled, 30, "the first session")
        tally.replies = rig.daemon.replies_finished  # whatever the device said by itself
        for episode in [*warm_up(), FRESH_CONNECTION]:
            await play(rig, episode, rng, question, tally)
        objects_at_start, rss_at_start = census(), rss_bytes()
        tasks_at_start = await one_connection(rig)
        threads_at_start = threading.active_count()
        if TRACEMALLOC:
            tracemalloc.start(10)
        start_s = rig.now_s
        task_counts: Counter[int] = Counter()
        episodes = 0
        while rig.now_s - start_s < SOAK_S:
            await play(rig, next_episode(rng), rng, question, tally)
            task_counts[await one_connection(rig)] += 1
            episodes += 1
        await play(rig, FRESH_CONNECTION, rng, question, tally)
        growth = Growth(rss_bytes() - rss_at_start, census() - objects_at_start)
        if TRACEMALLOC:
            growth.traced = tracemalloc.take_snapshot().statistics("traceback")[:5]
            tracemalloc.stop()
        threads = (threads_at_start, threading.active_count())
        virtual_s, end_s = rig.now_s - start_s, rig.now_s
    return Soaked(
        rig, tally, growth, episodes, virtual_s, task_counts, tasks_at_start, threads, end_s
    )


def print_summary(run: Soaked) -> None:
    tally, stats = run.tally, run.rig.daemon.stats
    gap_s = run.rig.notifier.longest_watchdog_gap_s(0.0, run.end_s)
    print(f"\nsoak: {run.episodes} episodes over {run.virtual_s:.0f} s of virtual time, "
          f"{tally.replies} replies in all, {tally.events_checked} events checked, "
          f"{stats.connections} connections, longest watchdog gap {gap_s:.1f} s")  # fmt: skip
    print(run.growth.describe())
    for name, took in sorted(tally.took_s.items()):
        states = " ".join(sorted(tally.states[name]))
        print(f"  {name:34} x{len(took):<3} idle again {statistics.median(took):6.1f} s "
              f"(max {max(took):6.1f} s) after the question; states {states}")  # fmt: skip


def test_an_hour_of_conversation_with_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with watching_logs(KEY) as logs:
        run: Soaked = run_virtual(
            lambda: soak(tmp_path, monkeypatch, logs), real_limit_s=REAL_LIMIT_S
        )
    print_summary(run)
    rig, tally = run.rig, run.tally
    check_counters(rig, tally)
    assert rig.loop_errors == [], rig.loop_errors[:3]
    assert logs.leaks == []
    unexpected = [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in logs.serious
        if r.exc_info or not r.getMessage().startswith(EXPECTED_ERRORS)
    ]
    assert unexpected == []
    assert len(rig.notifier.times("READY=1")) == 1
    assert rig.notifier.longest_watchdog_gap_s(0.0, run.end_s) < WATCHDOG_S
    assert run.growth.rss_bytes <= MEMORY_GROWTH_LIMIT_BYTES, run.growth.describe()
    assert set(run.task_counts) == {run.tasks_at_start}, run.task_counts
    assert run.threads[1] <= run.threads[0]
    for name, states in tally.states.items():
        if name.startswith(("fatal", "key refused", "unplugged")):
            assert "fault" in states, (name, states)
        elif name in ("drop mid-reply", "stalled server", "session expired"):
            assert "offline" in states, (name, states)
