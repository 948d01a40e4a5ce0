"""The audio supervisor on virtual time: faults noticed, streams reopened, backoff capped.

``SteppedDuplex`` is the shipped FakeDuplex with its blocks run by the test's
clock instead of its own thread: each virtual ``sleep`` steps as many blocks as
fit in it while the stream is running. Unplugging stops the blocks and makes
``start`` fail until the device is plugged in again, as on the real thing.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

import numpy as np
import pytest

from device.audio.supervisor import AudioSupervisor, reopen_delay_s
from hw.fake import FakeDuplex
from hw.ports import AudioError, DuplexCallback, DuplexFormat, PcmBlock, StreamTime, XrunCounters

FMT = DuplexFormat(rate_hz=16000, block_frames=320, in_channels=2, out_channels=2)
BLOCK_S = FMT.block_frames / FMT.rate_hz
WAIT_S = 10.0  # bounds a hung test only


P = ParamSpec("P")


def in_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test on a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


def silence(mic: PcmBlock, when: StreamTime) -> PcmBlock:
    return np.zeros((FMT.block_frames, FMT.out_channels), np.int16)


class SteppedDuplex(FakeDuplex):
    """FakeDuplex whose blocks run when virtual time advances, not on a thread."""

    def __init__(self) -> None:
        super().__init__(FMT)
        self.running = False
        self.plugged = True
        self.starts = 0
        self.closes = 0

    def start(self, callback: DuplexCallback) -> None:
        if not self.plugged:
            raise AudioError("fake audio device is unplugged")
        self.starts += 1
        self.set_callback(callback)
        self.running = True

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        self.closes += 1
        self.stop()

    def unplug(self) -> None:
        self.plugged = False
        super().unplug()  # stops the stream

    def plug(self) -> None:
        self.plugged = True
        super().plug()


class VirtualTime:
    """The supervisor's sleep: advances a frame clock, runs due actions, steps the duplex."""

    def __init__(self, duplex: SteppedDuplex, end_s: float) -> None:
        self.duplex = duplex
        self.frame = 0
        self.end_s = end_s
        self.sleeps: list[float] = []
        self.actions: list[tuple[float, Callable[[], None]]] = []
        self.finished = asyncio.Event()

    @property
    def now_s(self) -> float:
        return self.frame / FMT.rate_hz

    def at(self, when_s: float, action: Callable[[], None]) -> None:
        self.actions.append((when_s, action))
        self.actions.sort(key=lambda pair: pair[0])

    async def sleep(self, delay_s: float) -> None:
        self.sleeps.append(delay_s)
        block = FMT.block_frames
        target = self.frame + round(delay_s * FMT.rate_hz)
        while self.frame < target:
            while self.actions and self.actions[0][0] <= self.now_s:
                self.actions.pop(0)[1]()
            following = min(target, (self.frame // block + 1) * block)
            if following % block == 0 and self.duplex.running:
                self.duplex.step()  # a block completes at ``following``
            self.frame = following
        if self.now_s >= self.end_s:
            self.finished.set()
            await asyncio.Event().wait()  # the test cancels the supervisor here
        await asyncio.sleep(0)


class Events:
    def __init__(self, clock: VirtualTime) -> None:
        self.clock = clock
        self.log: list[tuple[str, float, str]] = []

    def fault(self, reason: str) -> None:
        self.log.append(("fault", self.clock.now_s, reason))

    def recovered(self) -> None:
        self.log.append(("recovered", self.clock.now_s, ""))


async def supervise(
    supervisor: AudioSupervisor, duplex: FakeDuplex, clock: VirtualTime, events: Events
) -> None:
    task = asyncio.create_task(
        supervisor.run(duplex, silence, on_fault=events.fault, on_recovered=events.recovered)
    )
    finished = asyncio.create_task(clock.finished.wait())
    done, _ = await asyncio.wait(
        {task, finished}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED
    )
    assert finished in done, "the supervisor ended or hung before the end of virtual time"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def make(end_s: float, **kwargs: Any) -> tuple[SteppedDuplex, VirtualTime, Events, AudioSupervisor]:
    duplex = SteppedDuplex()
    clock = VirtualTime(duplex, end_s)
    supervisor = AudioSupervisor(sleep=clock.sleep, rand=lambda: 1.0, **kwargs)
    return duplex, clock, Events(clock), supervisor


@in_loop
async def test_a_healthy_stream_is_left_alone() -> None:
    duplex, clock, events, supervisor = make(end_s=30.0)
    await supervise(supervisor, duplex, clock, events)
    assert events.log == []
    assert duplex.starts == 1 and duplex.closes == 0
    assert (supervisor.reopen_attempts, supervisor.reopens) == (0, 0)
    assert supervisor.blocks == duplex.callbacks >= int(29 / BLOCK_S)
    assert not duplex.running  # cancelling run stops the stream


@in_loop
async def test_unplug_faults_once_backs_off_and_recovers_once_after_plug() -> None:
    duplex, clock, events, supervisor = make(end_s=60.0, check_period_s=0.3)
    blocks_at: dict[str, int] = {}

    def plug() -> None:
        blocks_at["plug"] = duplex.callbacks
        duplex.plug()

    clock.at(5.0, duplex.unplug)
    clock.at(30.0, plug)
    await supervise(supervisor, duplex, clock, events)

    assert [kind for kind, _, _ in events.log] == ["fault", "recovered"]
    _, fault_at_s, reason = events.log[0]
    assert "no audio blocks" in reason
    assert 5.0 < fault_at_s <= 5.0 + 4 * 0.3  # three idle check periods, plus the partial one
    assert duplex.closes == 1  # the dead stream was closed before reopening

    backoff = [s for s in clock.sleeps if s != 0.3]
    assert backoff[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]  # doubling, then capped
    assert all(s == 10.0 for s in backoff[5:])
    assert supervisor.reopens == 1 and supervisor.reopen_attempts == len(backoff)
    _, recovered_at_s, _ = events.log[1]
    assert 30.0 <= recovered_at_s <= 30.0 + 10.0 + 0.3  # the next retry, then one check period
    assert duplex.callbacks > blocks_at["plug"]  # audio flows again
    assert supervisor.blocks == duplex.callbacks
    assert not supervisor.faulted


@in_loop
async def test_each_outage_faults_once_and_backoff_restarts_after_recovery() -> None:
    duplex, clock, events, supervisor = make(end_s=40.0, check_period_s=0.3)
    for unplug_s, plug_s in ((2.0, 6.0), (20.0, 24.0)):
        clock.at(unplug_s, duplex.unplug)
        clock.at(plug_s, duplex.plug)
    await supervise(supervisor, duplex, clock, events)
    assert [kind for kind, _, _ in events.log] == ["fault", "recovered", "fault", "recovered"]
    backoff = [s for s in clock.sleeps if s != 0.3]
    # fault at ~2.9 s, retries at 3.4, 4.4 and 6.4 s; the second outage starts again at 0.5 s
    assert backoff == [0.5, 1.0, 2.0] * 2
    assert supervisor.reopens == 2


@in_loop
async def test_device_missing_at_start_is_retried_until_it_appears() -> None:
    duplex, clock, events, supervisor = make(end_s=20.0)
    duplex.plugged = False
    clock.at(3.0, duplex.plug)  # retries at 0.5, 1.5, 3.5 s: the third one opens it
    await supervise(supervisor, duplex, clock, events)
    assert [kind for kind, _, _ in events.log] == ["fault", "recovered"]
    assert events.log[0][1] == 0.0 and events.log[0][2].startswith("cannot open audio")
    assert "unplugged" in events.log[0][2]
    assert (supervisor.reopen_attempts, supervisor.reopens) == (3, 1)
    assert duplex.starts == 1


class ScriptedDuplex:
    """A duplex whose start fails a given number of times, then runs a caller's steps."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.callback: DuplexCallback | None = None
        self.active = False
        self.starts = self.stops = self.closes = 0

    format = FMT
    xruns = XrunCounters()
    latency_s = (0.0, 0.0)

    def start(self, callback: DuplexCallback) -> None:
        self.starts += 1
        if self.failures:
            self.failures -= 1
            raise AudioError("Device or resource busy")
        self.callback, self.active = callback, True

    def stop(self) -> None:
        self.stops += 1
        self.active = False

    def close(self) -> None:
        self.closes += 1
        self.active = False

    def tick(self) -> None:
        if self.active and self.callback is not None:
            self.callback(np.zeros((FMT.block_frames, 2), np.int16), StreamTime(0, 0, 0))


async def run_scripted(
    duplex: ScriptedDuplex, sleeps: int, **kwargs: Any
) -> tuple[AudioSupervisor, list[str], list[float]]:
    """Run the supervisor for ``sleeps`` sleeps; each sleep delivers one block if active."""
    log: list[str] = []
    delays: list[float] = []
    done = asyncio.Event()

    async def sleep(delay_s: float) -> None:
        delays.append(delay_s)
        duplex.tick()
        if len(delays) >= sleeps:
            done.set()
            await asyncio.Event().wait()
        await asyncio.sleep(0)

    supervisor = AudioSupervisor(sleep=sleep, rand=lambda: 0.0, **kwargs)
    task = asyncio.create_task(
        supervisor.run(
            duplex,
            silence,
            on_fault=lambda r: log.append(f"fault: {r}"),
            on_recovered=lambda: log.append("recovered"),
        )
    )
    await asyncio.wait_for(done.wait(), WAIT_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return supervisor, log, delays


@in_loop
async def test_start_failing_n_times_backs_off_with_jitter_then_recovers() -> None:
    duplex = ScriptedDuplex(failures=3)
    supervisor, log, delays = await run_scripted(duplex, sleeps=8)
    assert log == ["fault: cannot open audio: Device or resource busy", "recovered"]
    assert delays[:3] == [0.25, 0.5, 1.0]  # rand 0: half of each step
    assert (supervisor.reopen_attempts, supervisor.reopens) == (3, 1)
    assert duplex.starts == 4
    assert duplex.stops >= 1  # cancelling run stopped it


@in_loop
async def test_a_stream_that_ends_by_itself_is_reopened_at_the_next_check() -> None:
    ended = ScriptedDuplex(failures=0)
    ticks = 0
    deliver = ended.tick

    def tick_then_die() -> None:
        nonlocal ticks
        ticks += 1
        deliver()
        if ticks == 2:
            ended.active = False  # the host API ended the stream: no callback says so

    ended.tick = tick_then_die  # type: ignore[method-assign]
    supervisor, log, delays = await run_scripted(ended, sleeps=6, stall_periods=5)
    assert log[0].startswith("fault: the audio stream stopped")
    assert log[1:] == ["recovered"]
    assert ended.closes == 1 and ended.starts == 2
    assert delays[:3] == [1.0, 1.0, 0.25]  # two checks, then the first backoff step
    assert supervisor.reopens == 1


@in_loop
async def test_a_stream_active_but_silent_counts_as_stalled_after_n_periods() -> None:
    wedged = ScriptedDuplex(failures=0)
    wedged.tick = lambda: None  # type: ignore[method-assign]  # active, but no callbacks
    supervisor, log, delays = await run_scripted(wedged, sleeps=8, stall_periods=4)
    assert len(log) == 1 and log[0] == "fault: no audio blocks for 4 s (the stream stalled)"
    assert delays[:5] == [1.0, 1.0, 1.0, 1.0, 0.25]
    assert wedged.closes >= 1 and supervisor.reopens >= 1  # reopened, still silent: no recovery


@in_loop
async def test_first_blocks_after_a_plain_start_do_not_report_recovery() -> None:
    duplex = ScriptedDuplex(failures=0)
    _, log, _ = await run_scripted(duplex, sleeps=10)
    assert log == []


def test_reopen_delay_doubles_from_half_a_second_to_ten_with_jitter() -> None:
    assert [reopen_delay_s(n, lambda: 1.0) for n in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert reopen_delay_s(3, lambda: 0.0) == 2.0
    assert reopen_delay_s(10_000, lambda: 0.5) == 7.5


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        AudioSupervisor(check_period_s=0)
    with pytest.raises(ValueError):
        AudioSupervisor(stall_periods=0)


@in_loop
async def test_real_threaded_fake_duplex_recovers_after_unplug_and_plug() -> None:
    """The shipped fake on its own thread: callbacks cross threads as in the daemon."""
    duplex = FakeDuplex(FMT, speed=20.0)
    faulted, recovered = asyncio.Event(), asyncio.Event()
    supervisor = AudioSupervisor(
        check_period_s=0.02, stall_periods=3, reopen_base_s=0.01, reopen_cap_s=0.05
    )
    audio_threads: set[int] = set()

    def callback(mic: PcmBlock, when: StreamTime) -> PcmBlock:
        audio_threads.add(threading.get_ident())
        return silence(mic, when)

    task = asyncio.create_task(
        supervisor.run(
            duplex, callback, on_fault=lambda _: faulted.set(), on_recovered=recovered.set
        )
    )
    try:
        await asyncio.sleep(0.05)
        duplex.unplug()
        await asyncio.wait_for(faulted.wait(), WAIT_S)
        assert not recovered.is_set()
        duplex.plug()
        await asyncio.wait_for(recovered.wait(), WAIT_S)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert supervisor.reopens >= 1
    assert threading.get_ident() not in audio_threads
