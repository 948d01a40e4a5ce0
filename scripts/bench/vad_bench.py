#!/usr/bin/env python3
"""Voice activity detection benchmark: our backends against webrtcvad and Silero.

Generates its own labelled scenes at 16 kHz and prints one table:

- speech: espeak-ng sentences (several voices and speeds) separated by 0.4-2.5 s
  of silence, at -26 dBFS active level. Labels come from the clean speech: a
  10 ms frame is speech when its energy is within 40 dB of its sentence's
  loudest frame; gaps up to 100 ms inside a sentence are filled.
- noise: pink noise added at 10, 5 and 0 dB SNR (active speech level / noise).
- echo after AEC: no near-end speech; what an echo canceller leaves of the
  device's own speech (espeak-ng through a synthetic room response, the echo
  at the mic 10 dB above the user's level, left 30, 35 or 40 dB below the
  echo), over quiet-room pink noise at -55 dBFS. Every frame judged speech there
  is a false alarm. Detectors that take it are told, frame by frame, how loud the
  echo the canceller removed was, as the daemon's gate tells them.
- quiet talker: the same sentences 14 dB under the nominal level (-40 dBFS) over
  the quiet-room noise: what the level guard that keeps the echo out costs.

Columns: frame F1 (precision/recall) per SNR; onset latency = median over
sentences of the time from the labelled start to the end of the first frame
judged speech (within 500 ms; the number of sentences missed follows a slash);
echo false alarms = share of frames judged speech; CPU seconds per audio
second. Ratios are against the Silero anchor (its own 0.5/0.35 thresholds, no
level guard) in the same run.

Usage: scripts/bench/vad_bench.py [--quick] [--sentences N] [--seed S] [--detectors ours,...]

The webrtc backend's weights are fitted by ``vad_fit.py`` on other seeds (101-104);
the default seed 7 is held out.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr
import webrtcvad

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from device.audio.vad import EchoAware, SpeechClassifier  # noqa: E402
from device.audio.vad_backends import (  # noqa: E402
    SileroClassifier,
    VadUnavailable,
    make_classifier,
)

RATE_HZ = 16000
FRAME = RATE_HZ // 100
SPEECH_DBFS = -26.0
ECHO_OVER_USER_DB = 10.0
ECHO_NOISE_DBFS = -55.0
QUIET_TALKER_DBFS = -40.0
SNRS_DB = (10, 5, 0)
ECHO_RESIDUALS_DB = (30, 35, 40)
LABEL_RANGE_DB = 40.0
LABEL_GAP_FRAMES = 10
ONSET_WINDOW_FRAMES = 50

Floats = npt.NDArray[np.float64]
Labels = npt.NDArray[np.bool_]

VOICES = ("en-us", "en-gb", "en-us+f3", "en+m3", "en-gb+f2", "en-us+m7", "en+f4")
SENTENCES = (
    "Turn on the kitchen lights.",
    "What is the weather like tomorrow morning?",
    "Set a timer for ten minutes.",
    "Play some quiet music in the living room.",
    "How far is it to the nearest train station?",
    "Remind me to call my sister at six.",
    "Stop.",
    "Can you tell me a short story about a fox and a crow?",
    "Turn the volume down a little, please.",
    "What time is it in Tokyo right now?",
    "Add milk, eggs and bread to the shopping list.",
    "Is it going to rain this afternoon?",
    "Yes.",
    "Read me the news headlines.",
    "Switch off everything in the bedroom.",
    "Who wrote the book on the table?",
)
FAR_END = (
    "Here is the forecast for today: sunny spells with a light breeze from the west.",
    "The timer is set. I will let you know when ten minutes have passed.",
    "Once upon a time a crow found a piece of cheese and sat in a tall tree.",
    "Your next train leaves at seven fifteen from platform two.",
)


@dataclass
class Scene:
    name: str
    audio: npt.NDArray[np.int16]
    labels: Labels
    onsets: list[int]
    removed: Floats | None = None
    """Echo scenes: what the canceller took out (the echo less the residual left),
    handed to detectors that take it (``hear_echo``) as the daemon's gate does."""


def espeak(text: str, voice: str, speed: int) -> Floats:
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    # espeak-ng writes a streaming header with bogus sizes: read the data chunk by hand.
    data = out[out.index(b"data") + 8 :]
    rate = int.from_bytes(out[24:28], "little")
    pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    return np.asarray(soxr.resample(pcm, rate, RATE_HZ, quality="HQ"), dtype=np.float64)


def frame_power(x: Floats) -> Floats:
    n = x.shape[0] // FRAME
    return np.asarray(np.mean(x[: n * FRAME].reshape(n, FRAME) ** 2, axis=1), dtype=np.float64)


def sentence_labels(x: Floats) -> Labels:
    power = frame_power(x)
    labels: Labels = power >= power.max() * 10 ** (-LABEL_RANGE_DB / 10)
    idx = np.flatnonzero(labels)
    for a, b in itertools.pairwise(idx):
        if 1 < b - a <= LABEL_GAP_FRAMES + 1:
            labels[a:b] = True
    return labels


def speech_track(
    rng: np.random.Generator, count: int, texts: tuple[str, ...]
) -> tuple[Floats, Labels, list[int]]:
    pieces: list[Floats] = [np.zeros(FRAME * 50)]
    labels: list[Labels] = [np.zeros(50, dtype=bool)]
    onsets: list[int] = []
    frames = 50
    for i in range(count):
        voice = VOICES[i % len(VOICES)]
        sentence = espeak(texts[int(rng.integers(len(texts)))], voice, int(rng.integers(140, 200)))
        sentence = sentence[: sentence.shape[0] // FRAME * FRAME]
        lab = sentence_labels(sentence)
        gap = int(rng.integers(40, 250))
        onsets.append(frames + int(np.argmax(lab)))
        pieces += [sentence, np.zeros(gap * FRAME)]
        labels += [lab, np.zeros(gap, dtype=bool)]
        frames += lab.shape[0] + gap
    return np.concatenate(pieces), np.concatenate(labels), onsets


def scale_to(x: Floats, labels: Labels, dbfs: float) -> Floats:
    active = float(np.mean(frame_power(x)[labels]))
    scaled: Floats = x * (10 ** (dbfs / 20) / np.sqrt(active))
    return scaled


def pink(rng: np.random.Generator, n: int, dbfs: float) -> Floats:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE_HZ)
    spectrum[1:] /= np.sqrt(freqs[1:] / freqs[1])
    spectrum[0] = 0
    noise: Floats = np.fft.irfft(spectrum, n)
    scaled: Floats = noise * 10 ** (dbfs / 20) / np.sqrt(np.mean(noise**2))
    return scaled


def room_response(rng: np.random.Generator, rt60_s: float = 0.3) -> Floats:
    n = int(0.25 * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60_s) * 0.3
    tail[:40] = 0.0
    tail[8] = 1.0  # direct path, 0.5 ms
    return np.asarray(tail, dtype=np.float64)


def to_pcm(x: Floats) -> npt.NDArray[np.int16]:
    return np.clip(np.rint(x * 32768), -32768, 32767).astype(np.int16)


def make_scenes(count: int, seed: int) -> list[Scene]:
    rng = np.random.default_rng(seed)
    speech, labels, onsets = speech_track(rng, count, SENTENCES)
    speech = scale_to(speech, labels, SPEECH_DBFS)
    scenes = []
    for snr in SNRS_DB:
        noise = pink(rng, speech.shape[0], SPEECH_DBFS - snr)
        scenes.append(Scene(f"{snr} dB", to_pcm(speech + noise), labels, onsets))
    quiet = scale_to(speech, labels, QUIET_TALKER_DBFS)
    quiet += pink(rng, speech.shape[0], ECHO_NOISE_DBFS)
    scenes.append(Scene(f"talker {QUIET_TALKER_DBFS:.0f} dBFS", to_pcm(quiet), labels, onsets))
    far, far_labels, _ = speech_track(rng, max(count // 2, 4), FAR_END)
    echo = np.convolve(far, room_response(rng))[: far.shape[0]]
    echo = scale_to(echo, far_labels, SPEECH_DBFS + ECHO_OVER_USER_DB)
    none = np.zeros(far_labels.shape[0], dtype=bool)
    for residual in ECHO_RESIDUALS_DB:
        noise = pink(rng, echo.shape[0], ECHO_NOISE_DBFS)
        audio = to_pcm(echo * 10 ** (-residual / 20) + noise)
        removed = echo * (1 - 10 ** (-residual / 20))
        scenes.append(Scene(f"echo -{residual} dB", audio, none, [], removed))
    return scenes


Factory = Callable[[], SpeechClassifier]


def raw_webrtcvad(mode: int) -> SpeechClassifier:
    classify: SpeechClassifier = webrtcvad.Vad(mode).is_speech
    return classify


def detectors() -> dict[str, Factory]:
    found: dict[str, Factory] = {}
    for mode in range(4):
        found[f"webrtcvad mode {mode}"] = partial(raw_webrtcvad, mode)
    found["ours: webrtc"] = lambda: make_classifier("webrtc", RATE_HZ)
    try:
        make_classifier("silero", RATE_HZ)
    except VadUnavailable as exc:
        print(f"silero skipped: {exc}", file=sys.stderr)
        return found
    found["Silero (anchor)"] = lambda: SileroClassifier(
        RATE_HZ, min_speech_dbfs=None, onset_snr_db=None, trim_snr_db=None
    )
    found["ours: silero"] = lambda: make_classifier("silero", RATE_HZ)
    return found


def decide(
    factory: Factory, audio: npt.NDArray[np.int16], removed: Floats | None = None
) -> tuple[Labels, float]:
    classify = factory()
    data = audio.astype("<i2").tobytes()
    step = 2 * FRAME
    frames = range(0, len(data) - step + 1, step)
    started = time.process_time()
    if removed is not None and isinstance(classify, EchoAware):
        echo = frame_power(removed)
        out = []
        for n, i in enumerate(frames):
            classify.hear_echo(float(echo[n]))
            out.append(classify(data[i : i + step], RATE_HZ))
    else:
        out = [classify(data[i : i + step], RATE_HZ) for i in frames]
    return np.array(out, dtype=bool), time.process_time() - started


def f1(decisions: Labels, labels: Labels) -> tuple[float, float, float]:
    n = min(decisions.shape[0], labels.shape[0])
    d, lab = decisions[:n], labels[:n]
    tp = float(np.sum(d & lab))
    precision = tp / max(float(np.sum(d)), 1.0)
    recall = tp / max(float(np.sum(lab)), 1.0)
    return 2 * precision * recall / max(precision + recall, 1e-9), precision, recall


def onset_latencies_ms(decisions: Labels, onsets: list[int]) -> tuple[list[float], int]:
    found, missed = [], 0
    for onset in onsets:
        hits = np.flatnonzero(decisions[onset : onset + ONSET_WINDOW_FRAMES])
        if hits.size:
            found.append(float(hits[0] + 1) * 10.0)
        else:
            missed += 1
    return found, missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sentences", type=int, default=40, help="sentences per scene")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--quick", action="store_true", help="10 sentences per scene: a smoke run of under a minute"
    )
    parser.add_argument(
        "--detectors",
        default="",
        help="comma-separated substrings: run only the detectors whose "
        "name contains one (default: all)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sentences = 10
    if shutil.which("espeak-ng") is None:
        print("vad_bench: espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    scenes = make_scenes(args.sentences, args.seed)
    audio_s = sum(s.audio.shape[0] for s in scenes) / RATE_HZ
    rows: dict[str, dict[str, str | float]] = {}
    wanted = [w.strip() for w in args.detectors.split(",") if w.strip()]
    chosen = {n: f for n, f in detectors().items() if not wanted or any(w in n for w in wanted)}
    for name, factory in chosen.items():
        row: dict[str, str | float] = {}
        cpu = 0.0
        latencies: list[float] = []
        missed = 0
        for scene in scenes:
            decisions, spent = decide(factory, scene.audio, scene.removed)
            cpu += spent
            if scene.onsets:
                score, precision, recall = f1(decisions, scene.labels)
                row[scene.name] = score
                row[f"{scene.name} P/R"] = f"{precision:.3f}/{recall:.3f}"
                if scene.name in ("10 dB", "5 dB"):
                    lat, miss = onset_latencies_ms(decisions, scene.onsets)
                    latencies += lat
                    missed += miss
            else:
                row[scene.name] = float(np.mean(decisions))
        row["onset"] = f"{np.median(latencies):.0f} ms/{missed}" if latencies else "-"
        row["onset_ms"] = float(np.median(latencies)) if latencies and not missed else "-"
        row["cpu"] = cpu / audio_s
        rows[name] = row
    print_table(rows, scenes, audio_s, args)
    return 0


def print_table(
    rows: dict[str, dict[str, str | float]],
    scenes: list[Scene],
    audio_s: float,
    args: argparse.Namespace,
) -> None:
    noise = [s.name for s in scenes if s.onsets]
    echo = [s.name for s in scenes if not s.onsets]
    anchor = rows.get("Silero (anchor)")
    head = [
        "detector",
        *(f"F1 {n}" for n in noise),
        "P/R 5 dB",
        "P/R 0 dB",
        "onset 10+5 dB",
        *(f"FA {n}" for n in echo),
        "CPU s/s",
    ]
    if anchor:
        head += ["F1 5 dB vs Silero", "F1 0 dB vs Silero"]
    print(
        f"# VAD benchmark: {args.sentences} sentences per scene, seed {args.seed}, "
        f"{audio_s:.0f} s of 16 kHz audio per detector"
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, row in rows.items():
        cells = [
            name,
            *(f"{row[n]:.3f}" for n in noise),
            str(row["5 dB P/R"]),
            str(row["0 dB P/R"]),
            str(row["onset"]),
            *(f"{row[n]:.2%}" for n in echo),
            f"{row['cpu']:.4f}",
        ]
        if anchor:
            cells += [
                f"{float(row['5 dB']) / float(anchor['5 dB']):.3f}",
                f"{float(row['0 dB']) / float(anchor['0 dB']):.3f}",
            ]
        print("| " + " | ".join(cells) + " |")
    print("targets: F1 >= 0.96 at 5 dB, >= 0.95 at 0 dB; onset <= 90 ms; echo FA <= 1%")
    for name in (n for n in rows if n.startswith("ours")):
        row = rows[name]
        checks = [
            ("F1 5 dB", float(row["5 dB"]) >= 0.96),
            ("F1 0 dB", float(row["0 dB"]) >= 0.95),
            ("onset", row["onset_ms"] != "-" and float(row["onset_ms"]) <= 90),
            *((f"FA {n}", float(row[n]) <= 0.01) for n in echo),
        ]
        verdict = ", ".join(f"{what} {'met' if ok else 'MISSED'}" for what, ok in checks)
        print(f"{name}: {verdict} (F1 {float(row['5 dB']):.4f} / {float(row['0 dB']):.4f})")


if __name__ == "__main__":
    raise SystemExit(main())
