#!/usr/bin/env python3
"""Listening benchmark: barge-in latency and false barge-ins, the device's own reply
latency, and the CPU of the whole capture loop.

Scenes (16 kHz, built here and cached under ``out/bench/``): the device talks
(espeak-ng sentences in four voices at -20 dBFS at the DAC, through a small
loudspeaker pushed hard: ``scenes.loudspeaker``), its echo reaches the mic 7 cm
away through a pyroomacoustics room (RT60 0.35 s) and a 40 ms bulk delay, at
-21 dBFS active level; pink room noise at -50 dBFS; the user, 1 m away, 10 dB
below the echo. The capture loop runs as in the daemon: 20 ms blocks through the
capture pipeline (our echo canceller, the webrtc voice detector, soxr to 24 kHz)
and the listening core (the wake word, the barge-in detector), and every chunk
is encoded as the session would send it.

- Barge-in latency: the user starts talking over the reply (after 3 s of it,
  the canceller warm). From the user's speech onset at the mic (the first 10 ms
  frame within 35 dB of the utterance's loudest) to the reply going silent at
  the loudspeaker: the end of the block that decided, the loop's real
  processing time of that block rounded up to whole blocks (the buffer is
  cleared once the loop is done, and the next callback hands the DAC silence),
  and the output latency (2 blocks, as the fake duplex and a typical
  PortAudio setup).
- False barge-ins: the device talking over room noise for ``--minutes``, nobody
  else in the room; every barge-in is false. Reported per hour.
- Device-added reply latency: the real daemon on fake hardware against the local
  simulator at real-time speed: from the first ``response.output_audio.delta`` to
  the audio callback that hands the first reply sample to the DAC
  (FIRST_AUDIO_DELTA to FIRST_DAC_SAMPLE in the timeline).
- CPU: ``time.process_time`` of the capture loop (AEC, VAD, wake word, barge-in,
  resampling, base64 and JSON of every chunk) over all audio above, per second.

Usage: scripts/bench/bargein.py [--quick] [--minutes M] [--trials N] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scenes as sc
from metrics import active_level_dbfs

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from device.audio.capture import CapturePipeline, GateSettings  # noqa: E402
from device.audio.playback import PlaybackBuffer  # noqa: E402
from device.audio.wakeword import make_detector  # noqa: E402
from device.config import load_config, with_overrides  # noqa: E402
from device.config_listen import ListenConfig  # noqa: E402
from device.listen import Listening  # noqa: E402
from device.realtime.session import RealtimeSession, SessionSettings  # noqa: E402

Signal = npt.NDArray[np.float64]
RATE_HZ = 16000
FRAME = RATE_HZ // 100
BLOCK_MS = 20
BLOCK = RATE_HZ * BLOCK_MS // 1000
OUTPUT_LATENCY_BLOCKS = 2
BULK_DELAY_MS = 40
ECHO_DBFS = -21.0
USER_BELOW_ECHO_DB = 10.0
NOISE_DBFS = -50.0
WARM_S = 3.0  # reply played before the user talks over it
TRIAL_S = 5.0
MISS_MS = 1000.0

TARGET_LATENCY_MS = 150.0
TARGET_FALSE_PER_HOUR = 0.0
TARGET_REPLY_MS = 40.0
TARGET_CPU = 0.02

USER_VOICES = ("en-gb-x-rp+f4", "en-us", "en-us+m3", "en+f3")


@dataclass
class Loop:
    """One capture loop as the daemon runs it, timed."""

    settings: ListenConfig
    capture: CapturePipeline = field(init=False)
    listening: Listening = field(init=False)
    session: RealtimeSession = field(init=False)
    playback: PlaybackBuffer = field(init=False)
    cpu_s: float = 0.0
    audio_s: float = 0.0
    cpu_parts: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("capture", "listening", "encoding"), 0.0)
    )

    def __post_init__(self) -> None:
        self.capture = CapturePipeline(RATE_HZ, GateSettings(), 40, "ours", "webrtc")
        wake = make_detector("okay_nabu", None, RATE_HZ, refractory_s=2.0, source="bench")
        self.listening = Listening(self.settings, wake=wake, send_chunk_ms=40)
        self.session = RealtimeSession(SessionSettings())
        self.playback = PlaybackBuffer(RATE_HZ)

    def block(
        self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16], playing: bool
    ) -> tuple[bool, float]:
        """One block; (barge-in decided, wall seconds the loop took for it)."""
        start_wall = time.perf_counter()
        t0 = time.process_time()
        result = self.capture.process(mic, ref)
        t1 = time.process_time()
        heard = self.listening.block(
            result,
            playing=playing,
            muted=False,
            cancels_echo=self.capture.cancels_echo,
            gate_open=self.capture.is_open,
        )
        if heard.barge_in:
            self.playback.clear()
        t2 = time.process_time()
        for chunk in result.chunks:  # every chunk the gate produced, as it would be sent
            self.session.append_audio(chunk)
        for event in self.session.data_to_send():
            json.dumps(event)
        t3 = time.process_time()
        wall = time.perf_counter() - start_wall
        self.cpu_parts["capture"] += t1 - t0
        self.cpu_parts["listening"] += t2 - t1
        self.cpu_parts["encoding"] += t3 - t2
        self.cpu_s += t3 - t0
        self.audio_s += len(mic) / RATE_HZ
        return heard.barge_in, wall


def scale_to(x: Signal, dbfs: float) -> Signal:
    return x * 10 ** ((dbfs - active_level_dbfs(x, FRAME)) / 20)


class Room:
    """Echo and user paths of a smart speaker in the benchmark's room."""

    def __init__(self, cache: Path) -> None:
        geo = sc.geometry(0.07)
        user_pos = (np.asarray(geo["mic_a"]) + np.asarray(sc.USER_OFFSET)).tolist()
        real = sc.pyroomacoustics_available()
        self.notes = [] if real else ["pyroomacoustics missing: a synthetic room"]
        make = sc.room_rir if real else (lambda s, m, r: sc.synthetic_rir(s, m, r, 3))
        self.echo_rir = self._cached(cache, "echo", make, geo["spk_a"], geo["mic_a"])
        self.user_rir = self._cached(cache, "user", make, user_pos, geo["mic_a"])

    @staticmethod
    def _cached(cache: Path, name: str, make: Any, src: list[float], mic: list[float]) -> Signal:
        path = cache / "bargein" / f"rir-{name}-{RATE_HZ}.npy"
        if path.exists():
            return np.asarray(np.load(path), dtype=np.float64)
        path.parent.mkdir(parents=True, exist_ok=True)
        h = np.asarray(make(src, mic, RATE_HZ), dtype=np.float64)
        np.save(path, h)
        return h

    def echo(self, far: Signal) -> Signal:
        wet = sc.fft_convolve(sc.loudspeaker(far), self.echo_rir)
        return sc.delay(wet, BULK_DELAY_MS * RATE_HZ // 1000)


def far_speech(seconds: float, cache: Path, seed: int, espeak: bool) -> Signal:
    rng = np.random.default_rng(seed)
    return sc.speech_stream(sc.FAR_SENTENCES, sc.FAR_VOICES, RATE_HZ, seconds, cache, rng, espeak)


def onset_index(clean: Signal) -> int:
    energies = np.add.reduceat(clean * clean, np.arange(0, len(clean), FRAME))
    return int(np.flatnonzero(energies >= energies.max() * 10 ** (-35 / 10))[0]) * FRAME


@dataclass
class Trial:
    latency_ms: float | None  # None: missed
    decide_ms: float = 0.0  # onset to the end of the deciding block
    processing_ms: float = 0.0


def latency_trials(
    room: Room, settings: ListenConfig, count: int, cache: Path, espeak: bool, loops: list[Loop]
) -> list[Trial]:
    trials = []
    rng = np.random.default_rng(11)
    noise_all = sc.pink_noise(int(TRIAL_S * RATE_HZ), rng) * 10 ** (NOISE_DBFS / 20)
    for i in range(count):
        far = scale_to(far_speech(TRIAL_S, cache, 100 + i, espeak), -20.0)
        echo = room.echo(far)
        echo = echo * 10 ** ((ECHO_DBFS - active_level_dbfs(echo, FRAME)) / 20)
        text = sc.NEAR_SENTENCES[i % len(sc.NEAR_SENTENCES)]
        voice = USER_VOICES[i % len(USER_VOICES)]
        if espeak:
            said = sc.espeak_utterance(text, voice, RATE_HZ, cache)
        else:
            said = sc.synthetic_utterance(RATE_HZ, 2.0, 180.0, rng)
        user = sc.fft_convolve(said, room.user_rir)
        user = user * 10 ** ((ECHO_DBFS - USER_BELOW_ECHO_DB - active_level_dbfs(user, FRAME)) / 20)
        at = int((WARM_S + 0.01 * (i % 7)) * RATE_HZ)  # onsets not aligned with blocks
        near = np.zeros(len(far))
        part = user[: len(far) - at]
        near[at : at + len(part)] = part
        onset = at + onset_index(part)
        mic, ref = sc.to_pcm(echo + near + noise_all), sc.to_pcm(far)
        loop = Loop(settings)
        loops.append(loop)
        trial = Trial(None)
        for start in range(0, len(mic) - BLOCK + 1, BLOCK):
            decided, wall_s = loop.block(
                mic[start : start + BLOCK], ref[start : start + BLOCK], playing=True
            )
            if not decided:
                continue
            end = start + BLOCK
            if end < onset:  # before the user spoke: a false barge-in, counted as a miss
                break
            # the first callback after the loop is done hands the DAC silence
            blocks_to_silence = max(1, math.ceil(wall_s / (BLOCK_MS / 1000)))
            trial.decide_ms = (end - onset) * 1000 / RATE_HZ
            trial.processing_ms = wall_s * 1000
            trial.latency_ms = trial.decide_ms + BLOCK_MS * (
                blocks_to_silence + OUTPUT_LATENCY_BLOCKS
            )
            if trial.latency_ms > MISS_MS:
                trial.latency_ms = None
            break
        trials.append(trial)
    return trials


def false_barge_ins(
    room: Room, settings: ListenConfig, minutes: float, cache: Path, espeak: bool, loops: list[Loop]
) -> tuple[int, float]:
    """Barge-ins while the device talks over room noise and nobody else speaks."""
    seconds = minutes * 60
    far = scale_to(far_speech(seconds, cache, 7, espeak), -20.0)
    echo = room.echo(far)
    echo = echo * 10 ** ((ECHO_DBFS - active_level_dbfs(echo, FRAME)) / 20)
    noise = sc.pink_noise(len(far), np.random.default_rng(5)) * 10 ** (NOISE_DBFS / 20)
    mic, ref = sc.to_pcm(echo + noise), sc.to_pcm(far)
    loop = Loop(settings)
    loops.append(loop)
    count = 0
    for start in range(0, len(mic) - BLOCK + 1, BLOCK):
        decided, _ = loop.block(mic[start : start + BLOCK], ref[start : start + BLOCK], True)
        count += decided
    return count, seconds


def reply_latency_ms(runs: int) -> list[float]:
    """FIRST_AUDIO_DELTA to FIRST_DAC_SAMPLE of the real daemon, at real-time speed."""
    from device.demo import run_conversation, shipped_question

    logging.disable(logging.WARNING)
    found = []
    config = with_overrides(load_config(None), listen={"mode": "always"}, link={"disclosure": ""})
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            result = asyncio.run(
                run_conversation(
                    config, shipped_question(), Path(tmp) / "reply.wav", speed=1.0, timeout_s=30.0
                )
            )
            found += [
                t.first_delta_to_dac_ms
                for t in result.timeline.turns()
                if t.first_delta_to_dac_ms is not None
            ]
    logging.disable(logging.NOTSET)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2 minutes, 8 trials, 1 reply")
    parser.add_argument("--minutes", type=float, help="device speech for false barge-ins")
    parser.add_argument("--trials", type=int, help="barge-ins to time")
    parser.add_argument("--replies", type=int, help="daemon runs for the reply latency")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--cache", type=Path, default=sc.DEFAULT_CACHE)
    args = parser.parse_args(argv)
    minutes = args.minutes or (2.0 if args.quick else 10.0)
    count = args.trials or (8 if args.quick else 24)
    replies = args.replies or (1 if args.quick else 3)
    espeak = sc.espeak_available()
    notes = [] if espeak else ["espeak-ng missing: synthetic speech, numbers not comparable"]
    settings = ListenConfig(mode="wake_word")  # the shipped defaults
    room = Room(args.cache)
    notes += room.notes
    loops: list[Loop] = []
    trials = latency_trials(room, settings, count, args.cache, espeak, loops)
    false_count, false_s = false_barge_ins(room, settings, minutes, args.cache, espeak, loops)
    reply_ms = reply_latency_ms(replies)
    cpu_s = sum(loop.cpu_s for loop in loops)
    audio_s = sum(loop.audio_s for loop in loops)
    parts = {k: sum(loop.cpu_parts[k] for loop in loops) / audio_s for k in loops[0].cpu_parts}
    report = summarize(trials, false_count, false_s, reply_ms, cpu_s / audio_s, parts, settings)
    print_report(report, notes, minutes)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**report, "notes": notes}, indent=2))
    return 0


def summarize(
    trials: list[Trial],
    false_count: int,
    false_s: float,
    reply_ms: list[float],
    cpu: float,
    parts: dict[str, float],
    settings: ListenConfig,
) -> dict[str, Any]:
    heard = [t.latency_ms for t in trials if t.latency_ms is not None]
    return {
        "settings": {
            "barge_in_min_speech_ms": settings.barge_in_min_speech_ms,
            "barge_in_echo_margin_db": settings.barge_in_echo_margin_db,
        },
        "latency_ms": heard,
        "latency_median_ms": float(np.median(heard)) if heard else None,
        "latency_p90_ms": float(np.percentile(heard, 90)) if heard else None,
        "decide_median_ms": float(np.median([t.decide_ms for t in trials if t.latency_ms])),
        "processing_max_ms": max(t.processing_ms for t in trials),
        "missed": sum(t.latency_ms is None for t in trials),
        "trials": len(trials),
        "false_barge_ins": false_count,
        "false_audio_s": false_s,
        "false_per_hour": false_count * 3600 / false_s,
        "reply_latency_ms": reply_ms,
        "cpu_s_per_s": cpu,
        "cpu_parts": parts,
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def print_report(r: dict[str, Any], notes: list[str], minutes: float) -> None:
    print(f"edgevoice listening benchmark  python {r['python']}  machine {r['machine']}")
    for note in notes:
        print(f"note: {note}")
    s = r["settings"]
    print(
        f"barge-in: min speech {s['barge_in_min_speech_ms']} ms, echo margin "
        f"{s['barge_in_echo_margin_db']:g} dB; user 10 dB under the echo (-21 dBFS), "
        "room noise -50 dBFS, loudspeaker 7 cm, soft clipping, RT60 0.35 s"
    )
    lat = r["latency_ms"]
    print(
        f"barge-in latency over {r['trials']} trials: median {r['latency_median_ms']:.0f} ms, "
        f"p90 {r['latency_p90_ms']:.0f} ms, max {max(lat):.0f} ms, missed {r['missed']}; "
        f"of it onset->decision median {r['decide_median_ms']:.0f} ms, output latency "
        f"{OUTPUT_LATENCY_BLOCKS * BLOCK_MS} ms, loop at most {r['processing_max_ms']:.1f} ms "
        "per block"
        if lat
        else "barge-in latency: every trial missed"
    )
    parts = r["cpu_parts"]
    print("CPU per audio second: " + ", ".join(f"{k} {v:.4f}" for k, v in parts.items()))
    reply = r["reply_latency_ms"]
    rows = [
        (
            "barge-in latency, onset to silence (p90)",
            f"<= {TARGET_LATENCY_MS:.0f} ms",
            f"{r['latency_p90_ms']:.0f} ms" if lat else "missed",
            bool(lat) and r["latency_p90_ms"] <= TARGET_LATENCY_MS and not r["missed"],
        ),
        (
            f"false barge-ins per hour ({minutes:g} min of device speech)",
            "0",
            f"{r['false_per_hour']:.1f} ({r['false_barge_ins']})",
            r["false_per_hour"] <= TARGET_FALSE_PER_HOUR,
        ),
        (
            "device-added reply latency (max)",
            f"<= {TARGET_REPLY_MS:.0f} ms",
            f"{max(reply):.1f} ms" if reply else "-",
            bool(reply) and max(reply) <= TARGET_REPLY_MS,
        ),
        (
            "CPU of the capture loop per audio second",
            f"<= {TARGET_CPU} s",
            f"{r['cpu_s_per_s']:.4f} s",
            r["cpu_s_per_s"] <= TARGET_CPU,
        ),
    ]
    print()
    print(f"{'target':<50} {'need':<10} {'measured':<14} met")
    print("-" * 80)
    for what, need, got, met in rows:
        print(f"{what:<50} {need:<10} {got:<14} {'yes' if met else 'NO'}")


if __name__ == "__main__":
    raise SystemExit(main())
