#!/usr/bin/env python3
"""Real-time soak: the daemon on fake hardware against the simulator, with faults.

The daemon runs as it does on a speaker: its audio paced in real time by the fake
duplex's own thread, its default config (but ``[listen] mode = "always"``, so a
question needs no wake word). The simulator runs in a child process, so the
resident memory and the CPU time measured here are the daemon's (with the fake
sound card's thread). Every turn asks the shipped question; most turns get one
fault (bad frames, error events, a slow server, drops mid-reply, closes, expiry,
refused handshakes) and now and then the audio device is pulled for a few seconds.

A line a minute: resident memory, replies, connections, faults fired, xruns,
audio blocks the event loop fell behind on, and CPU seconds per second of audio.
At the end the targets, with the ratio of what was measured to what is allowed:
resident memory at most 80 MiB on x86 (what ``MemoryMax=80M`` would allow).

Usage: scripts/bench/soak.py [--minutes N] [--seed S] [--config FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from device.app import Daemon  # noqa: E402
from device.config import load_config, with_overrides  # noqa: E402
from device.demo import LOCAL_KEY, shipped_question  # noqa: E402
from device.logs import setup_logging  # noqa: E402
from device.realtime.sim_faults import parse_fault  # noqa: E402
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions  # noqa: E402
from hw.factory import HardwareRequest, build_fake  # noqa: E402
from hw.fake import FakeDuplex, read_wav_mono  # noqa: E402

RSS_TARGET_MIB = 80.0
REPORT_EVERY_S = 60.0
TURN_WITHIN_S = 30.0  # a reply not heard by then: the turn's fault ate it, go on
GAP_S = (3.0, 15.0)
# (fault armed on the open connection, HTTP fault for the next handshake); None: no fault
FAULTS: tuple[tuple[str | None, str | None], ...] = (
    (None, None), (None, None), (None, None),
    ("garbage@response.created", None), ("binary@response.output_audio.delta#2", None),
    ("bad_field@response.output_audio.delta#3", None), ("unknown_event@response.created", None),
    ("error@response.created", None), ("stall:3@response.output_audio.delta#2", None),
    ("drop@response.output_audio.delta#3", None), ("close:1011@response.done", None),
    ("expire@response.done", None), ("close:1012@response.done", "http:503"),
    ("close:1012@response.done", "http:429:retry-after=2"),
)  # fmt: skip


def rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- the simulator, in its own process --------------------------------------------------


def serve_simulator(conn: Connection) -> None:
    """Child process: run the simulator; arm the faults the parent sends; report counts."""

    async def main() -> None:
        options = SimulatorOptions(voice_engine="tone", reply_text="Okay, here is my answer.")
        async with RealtimeSimulator(options) as sim:
            conn.send(sim.url)
            loop = asyncio.get_running_loop()
            while (command := await loop.run_in_executor(None, conn.recv)) is not None:
                inject, handshake = command
                if handshake:
                    refusal = parse_fault(f"{handshake},conn={sim.handshakes + 1}")
                    sim.options = replace(sim.options, faults=(refusal,))
                if inject:
                    sim.inject(parse_fault(inject))
                sim.sent.clear()  # the recordings are for tests; an hour of them is big
                sim.received.clear()
                conn.send((sim.connections, len(sim.faults_fired)))

    asyncio.run(main())


class Simulator:
    """The parent's handle on the child process."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve_simulator, args=(child,), daemon=True)
        self._process.start()
        self.url: str = self._conn.recv()
        self.connections = self.faults_fired = 0

    async def arm(self, inject: str | None, handshake: str | None) -> None:
        loop = asyncio.get_running_loop()
        self._conn.send((inject, handshake))
        self.connections, self.faults_fired = await loop.run_in_executor(None, self._conn.recv)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()


# -- the daemon and the conversation ----------------------------------------------------


class Bench:
    def __init__(self, daemon: Daemon, duplex: FakeDuplex, sim: Simulator) -> None:
        self.daemon, self.duplex, self.sim = daemon, duplex, sim
        self.block_s = duplex.format.block_frames / duplex.format.rate_hz
        self.rss_mib: list[float] = []
        self.start_cpu_s = time.process_time()
        self.start_blocks = 0
        self.turns = self.unplugs = 0

    def cpu_per_audio_s(self) -> float:
        audio_s = (self.duplex.callbacks - self.start_blocks) * self.block_s
        return (time.process_time() - self.start_cpu_s) / audio_s if audio_s else 0.0

    def line(self, label: str) -> str:
        stats, xruns = self.daemon.stats, self.duplex.xruns
        self.rss_mib.append(rss_mib())
        return (
            f"{label:>8}  rss {self.rss_mib[-1]:6.1f} MiB  turns {self.turns:4d}  "
            f"replies {self.daemon.replies_finished:4d}  connections {stats.connections:3d}  "
            f"faults {self.sim.faults_fired:3d}  unplugs {self.unplugs:2d}  "
            f"xruns in/out {xruns.input_overflows}/{xruns.output_underflows}  "
            f"blocks behind {stats.audio_blocks - self.duplex.callbacks:+d}  "
            f"cpu {self.cpu_per_audio_s():.4f} s/s"
        )


async def converse(bench: Bench, rng: random.Random, question: Any) -> None:
    daemon, duplex = bench.daemon, bench.duplex
    while True:
        inject, handshake = rng.choice(FAULTS)
        await bench.sim.arm(inject, handshake)
        replies = daemon.replies_finished
        duplex.feed(question, at_s=duplex.time_s + 0.3)
        bench.turns += 1
        if rng.random() < 0.08:  # the device pulled for a moment, mid-turn
            await asyncio.sleep(rng.uniform(0.0, 2.0))
            duplex.unplug()
            bench.unplugs += 1
            await asyncio.sleep(rng.uniform(1.0, 5.0))
            duplex.plug()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TURN_WITHIN_S):
                await daemon.wait_for_replies(replies + 1)
        await asyncio.sleep(rng.uniform(*GAP_S))


async def report(bench: Bench) -> None:
    minute = 0
    while True:
        await asyncio.sleep(REPORT_EVERY_S)
        minute += 1
        print(bench.line(f"min {minute}"), flush=True)


async def soak(args: argparse.Namespace) -> Bench:
    sim = Simulator()
    try:
        with tempfile.TemporaryDirectory(prefix="edgevoice-soak-") as state_dir:
            config = with_overrides(
                load_config(args.config),
                device={"hardware": "fake", "state_dir": state_dir},
                realtime={"url": sim.url}, listen={"mode": "always"},
            )  # fmt: skip
            request = HardwareRequest(
                "fake", board=config.device.board, block_ms=config.audio.block_ms
            )
            hardware = build_fake(request)
            duplex = FakeDuplex(
                hardware.duplex.format, mic_channels=hardware.board.mic_channels,
                loopback_channels=hardware.board.loopback_channels, keep_output=False,
            )  # fmt: skip
            hardware.duplex = duplex
            daemon = Daemon(config, hardware, LOCAL_KEY)
            bench = Bench(daemon, duplex, sim)
            question = read_wav_mono(shipped_question(), duplex.format.rate_hz)
            stop = asyncio.Event()
            task = asyncio.create_task(daemon.run(stop))
            helpers = [
                asyncio.create_task(converse(bench, random.Random(args.seed), question)),
                asyncio.create_task(report(bench)),
            ]
            try:
                await asyncio.wait([task], timeout=args.minutes * 60)
                if task.done():
                    task.result()
                    raise RuntimeError("the daemon stopped on its own")
            finally:
                for helper in helpers:
                    helper.cancel()
                stop.set()
                await asyncio.gather(task, *helpers, return_exceptions=True)
                hardware.close()
            await sim.arm(None, None)  # the child's latest counts
            print(bench.line("end"), flush=True)
            return bench
    finally:
        sim.stop()


def print_targets(bench: Bench) -> None:
    peak = max(bench.rss_mib)
    ratio = peak / RSS_TARGET_MIB
    print("\ntarget                       need          measured   ratio  met")
    print(
        f"resident memory, peak        <= {RSS_TARGET_MIB:.0f} MiB   {peak:7.1f} MiB  "
        f"{ratio:5.2f}x  {'yes' if ratio <= 1 else 'NO'}"
    )
    print(f"resident memory, first/last  (to watch)    {bench.rss_mib[0]:7.1f} / "
          f"{bench.rss_mib[-1]:.1f} MiB")  # fmt: skip
    print(f"CPU per audio second         (to watch)    {bench.cpu_per_audio_s():7.4f} s/s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="the fault sequence's seed")
    parser.add_argument("--config", type=Path, help="config file to start from")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("error")  # each fault logs a warning; errors are worth seeing here
    print(f"edgevoice soak  {args.minutes:g} min  seed {args.seed}  python "
          f"{sys.version.split()[0]}  rss at start {rss_mib():.1f} MiB", flush=True)  # fmt: skip
    bench = asyncio.run(soak(args))
    print_targets(bench)
    if bench.daemon.replies_finished == 0 and args.minutes >= 1:
        print("no reply was heard: see the log above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
