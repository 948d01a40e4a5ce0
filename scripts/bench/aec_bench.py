#!/usr/bin/env python3
"""Echo-cancellation benchmark: our canceller against WebRTC AEC3 and SpeexDSP, one run.

Generates its scenes (scenes.py), runs every backend on each, and prints one row
per scene and backend, then one row per product target with our value, each
anchor's value measured in this same run, ours relative to each anchor, and
whether the target is met. Column meanings: scripts/bench/README.md.

Usage: python scripts/bench/aec_bench.py [--quick] [--rate 16000[,48000]]
           [--backends ours,webrtc,speex+rs,speex,none] [--scenes NAME,...]
           [--repeats N] [--json OUT] [--cache DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import metrics as mt
import numpy as np
import scenes as sc

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ANCHORS = ("webrtc", "speex+rs", "speex")
DEFAULT_BACKENDS = ("ours", *ANCHORS, "none")
BACKEND_SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "ours": ("ours", {}),
    "webrtc": ("webrtc", {}),
    "speex+rs": ("speex", {"residual_suppressor": True}),
    "speex": ("speex", {}),
    "none": ("none", {}),
}
"""Column label -> (make_canceller backend name, options)."""

THRESHOLD_DB = 20.0
CURVE_WINDOW_MS = 50
STEADY_MIN_ECHO_TO_NOISE_DB = 10.0
CURVE_MIN_ECHO_TO_NOISE_DB = 30.0
MAX_LATENCY_MS = 50


class Canceller(Protocol):
    name: str
    rate_hz: int
    frame_frames: int

    def process(self, mic: sc.Pcm, reference: sc.Pcm) -> sc.Pcm: ...

    def reset(self) -> None: ...


Factory = Callable[[int], Canceller]


@dataclass
class Backend:
    label: str
    factory: Factory | None
    problem: str = ""


def resolve_backends(labels: list[str]) -> list[Backend]:
    """Look each label up in device.audio.aec; say why one cannot run."""
    try:
        from device.audio import aec
    except ImportError as exc:
        return [
            Backend(label, None, f"device.audio.aec not importable ({exc})") for label in labels
        ]
    out = []
    for label in labels:
        name, options = BACKEND_SPECS[label]

        def factory(rate_hz: int, name: str = name, options: dict[str, Any] = options) -> Any:
            return aec.make_canceller(name, rate_hz, **options)

        try:
            factory(16000)
        except aec.AecUnavailable as exc:
            out.append(Backend(label, None, f"unavailable: {exc}"))
            continue
        except (TypeError, ValueError) as exc:
            out.append(Backend(label, None, f"cannot be made: {exc}"))
            continue
        except ImportError as exc:
            out.append(Backend(label, None, f"module missing: {exc}"))
            continue
        out.append(Backend(label, factory))
    return out


def run_canceller(canceller: Canceller, scene: sc.Scene) -> tuple[sc.Pcm, float]:
    """Feed the scene frame by frame; return the output and the CPU seconds spent."""
    if canceller.rate_hz != scene.rate_hz:
        raise ValueError(
            f"{canceller.name} runs at {canceller.rate_hz} Hz, scene at {scene.rate_hz} Hz"
        )
    step = canceller.frame_frames
    n = (scene.mic.shape[0] // step) * step
    out = np.zeros(scene.mic.shape[0], dtype=np.int16)
    mic, ref = scene.mic, scene.reference
    with mt.cpu_timer() as timer:
        for i in range(0, n, step):
            out[i : i + step] = canceller.process(mic[i : i + step], ref[i : i + step])
    return out, timer.seconds


def run_scene(
    scene: sc.Scene, backends: list[Backend], repeats: int
) -> tuple[list[dict[str, Any]], dict[str, sc.Pcm]]:
    """Every backend on one scene, each run ``repeats`` times on a fresh canceller,
    backends taking turns so a change in machine load hits them alike. The metrics
    come from the first run; CPU is the least of the runs (the first pays for cold
    caches and lazy set-up, later ones are no more favourable than the daemon's
    steady state). One broken backend does not stop the others."""
    runnable = [b for b in backends if b.factory is not None]
    outs: dict[str, sc.Pcm] = {}
    cpu: dict[str, float] = {}
    errors: dict[str, str] = {}
    for _ in range(repeats):
        for b in runnable:
            if b.label in errors or b.factory is None:
                continue
            try:
                out, cpu_s = run_canceller(b.factory(scene.rate_hz), scene)
            except Exception as exc:
                errors[b.label] = f"{type(exc).__name__}: {exc}"
                continue
            outs.setdefault(b.label, out)
            cpu[b.label] = min(cpu.get(b.label, float("inf")), cpu_s)
    rows: list[dict[str, Any]] = []
    for b in runnable:
        row: dict[str, Any] = {
            "scene": scene.spec.name,
            "rate_hz": scene.rate_hz,
            "backend": b.label,
            "ceil_db": ceiling_db(scene),
            "scene_notes": scene.notes,
            "metrics": {},
        }
        try:
            if b.label in errors:
                raise RuntimeError(errors[b.label])
            row["metrics"] = measure(scene, outs[b.label], cpu[b.label])
        except Exception as exc:
            row["error"] = str(exc) if b.label in errors else f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows, outs


def ceiling_db(scene: sc.Scene) -> float:
    """The steady-state ERLE of a canceller that removes all echo and keeps the noise."""
    frame = scene.frame_frames
    a, b = scene.marks["steady_start"], scene.marks["change"]
    mask = mt.echo_active_mask(
        scene.echo[a:b], scene.noise[a:b], frame, STEADY_MIN_ECHO_TO_NOISE_DB
    )
    return mt.erle_db(scene.mic[a:b], scene.noise[a:b], frame, mask)


def _time_to_20(scene: sc.Scene, out: sc.Pcm, start: str, stop: str) -> float | str | None:
    """Seconds until the output stays 20 dB under the mic, from the first echo frame
    after ``start``; "n/a" when the echo never stands clear of the noise."""
    frame = scene.frame_frames
    a, b = scene.marks[start], scene.marks[stop]
    mask = mt.echo_active_mask(scene.echo[a:b], scene.noise[a:b], frame, CURVE_MIN_ECHO_TO_NOISE_DB)
    if int(mask.sum()) < 50:
        return "n/a"
    curve = mt.erle_curve_db(scene.mic[a:b], out[a:b], frame, mask, CURVE_WINDOW_MS // 10)
    # The clock starts when the echo reaches the mic (after the bulk delay), not when
    # the reference starts: before that there is nothing to cancel.
    first_echo = int(np.argmax(mask))
    return mt.time_to_threshold_s(curve, 0.01, first_echo, THRESHOLD_DB)


def measure(scene: sc.Scene, out: sc.Pcm, cpu_s: float) -> dict[str, Any]:
    frame = scene.frame_frames
    m = scene.marks
    steady = slice(m["steady_start"], m["change"])
    mask = mt.echo_active_mask(
        scene.echo[steady], scene.noise[steady], frame, STEADY_MIN_ECHO_TO_NOISE_DB
    )
    near_only = slice(m["near_only_start"], m["end"])
    lag = mt.best_lag(scene.near[near_only], out[near_only], scene.rate_hz * MAX_LATENCY_MS // 1000)
    dt_ref = scene.near[m["double_start"] : m["far_stop"]]
    dt_out = mt.as_signal(out[m["double_start"] + lag : m["far_stop"] + lag])
    dt_ref = dt_ref[: dt_out.size]
    ne_in = scene.mic[near_only]
    ne_out = out[m["near_only_start"] + lag : m["end"]]
    return {
        "erle_db": mt.erle_db(scene.mic[steady], out[steady], frame, mask),
        "t20_s": _time_to_20(scene, out, "far_start", "change"),
        "reconverge_s": _time_to_20(scene, out, "change", "double_start"),
        "dt_si_sdr_db": mt.si_sdr_db(dt_ref, dt_out),
        "dt_pesq_wb": mt.pesq_wb(dt_ref, dt_out, scene.rate_hz),
        "near_level_db": mt.level_difference_db(ne_in[: ne_out.size], ne_out),
        "latency_ms": 1000.0 * lag / scene.rate_hz,
        "cpu_per_s": mt.cpu_per_audio_second(cpu_s, scene.duration_s),
    }


# --- targets -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    text: str
    scene: str
    key: str
    need: float
    kind: str
    """"db_min": at least need dB; "s_max"/"cpu_max": at most need; "abs_max": |x| <= need."""

    def met(self, value: Any) -> bool | None:
        if not isinstance(value, float | int):
            return False if value is None else None
        if self.kind == "db_min":
            return bool(value >= self.need)
        if self.kind == "abs_max":
            return bool(abs(value) <= self.need)
        return bool(value <= self.need)

    def need_text(self) -> str:
        unit = {"db_min": " dB", "abs_max": " dB", "s_max": " s", "cpu_max": " s/s"}[self.kind]
        sign = {"db_min": ">= ", "abs_max": "|x| <= ", "s_max": "<= ", "cpu_max": "<= "}
        return f"{sign[self.kind]}{self.need:g}{unit}"


TARGETS = (
    Target("ERLE, 7 cm, 40 ms", "near-40ms", "erle_db", 45.0, "db_min"),
    Target("ERLE, 120 ms bulk delay", "near-120ms", "erle_db", 40.0, "db_min"),
    Target("ERLE, loudspeaker non-linearity", "near-nonlinear", "erle_db", 40.0, "db_min"),
    Target("ERLE, loudspeaker 1.5 m away", "far-1.5m", "erle_db", 40.0, "db_min"),
    Target("time to 20 dB ERLE", "near-40ms", "t20_s", 0.5, "s_max"),
    Target("back to 20 dB after path change", "near-40ms", "reconverge_s", 1.0, "s_max"),
    Target("double-talk near-end SI-SDR", "near-40ms", "dt_si_sdr_db", 10.0, "db_min"),
    Target("near-end only, level kept", "near-40ms", "near_level_db", 1.0, "abs_max"),
    Target("CPU per audio second, 16 kHz", "near-40ms", "cpu_per_s", 0.01, "cpu_max"),
)


DIGITS = {"db": 1, "db_min": 1, "abs_max": 1, "s": 2, "s_max": 2, "pesq": 2, "cpu": 4, "cpu_max": 4}


def fmt(value: Any, kind: str) -> str:
    """A number with the digits its kind deserves; None (never reached) as "never"."""
    if value is None:
        return "never"
    if isinstance(value, str):
        return value
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.{DIGITS[kind]}f}"


def relative(target: Target, ours: Any, anchor: Any) -> str:
    """Ours against an anchor: a ratio for times and CPU, a difference in dB (the log of
    the power ratio) for dB values."""
    if not isinstance(ours, float | int) or not isinstance(anchor, float | int):
        return "-"
    if target.kind == "abs_max":
        return f"{abs(ours) - abs(anchor):+.1f} dB"
    if target.kind == "db_min":
        return f"{ours - anchor:+.1f} dB"
    if anchor <= 0:
        return "-"
    return f"{ours / anchor:.2f}x"


# --- printing --------------------------------------------------------------------------


def table(rows: list[list[str]], header: list[str]) -> str:
    """Plain text columns: the first two left-aligned, numbers right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    head = line(header)
    return "\n".join([head, "-" * len(head), *[line(r) for r in rows]])


SCENE_HEADER = [
    "scene",
    "backend",
    "ERLE dB",
    "ceil dB",
    "t20 s",
    "reconv s",
    "DT SI-SDR dB",
    "PESQ-WB",
    "NE dB",
    "lat ms",
    "CPU s/s",
]


def scene_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in results:
        m = r["metrics"]
        tag = f"{r['scene']}@{r['rate_hz'] // 1000}k"
        if "error" in r:
            rows.append([tag, r["backend"], *["error"] * (len(SCENE_HEADER) - 2)])
            continue
        rows.append(
            [
                tag,
                r["backend"],
                fmt(m["erle_db"], "db"),
                fmt(r["ceil_db"], "db"),
                fmt(m["t20_s"], "s"),
                fmt(m["reconverge_s"], "s"),
                fmt(m["dt_si_sdr_db"], "db"),
                "-" if m["dt_pesq_wb"] is None else fmt(m["dt_pesq_wb"], "pesq"),
                f"{m['near_level_db']:+.1f}",
                f"{m['latency_ms']:.0f}",
                fmt(m["cpu_per_s"], "cpu"),
            ]
        )
    return rows


def summary(
    results: list[dict[str, Any]], labels: list[str], missing: set[str]
) -> tuple[list[str], list[list[str]], list[dict[str, Any]]]:
    """The target table: rows as text, and the same numbers as data for --json."""

    def value(scene: str, label: str, key: str) -> Any:
        if label in missing:
            return "missing"
        for r in results:
            if r["scene"] == scene and r["rate_hz"] == 16000 and r["backend"] == label:
                return r["metrics"].get(key, "error") if "error" not in r else "error"
        return "not run"

    anchors = [a for a in ANCHORS if a in labels]
    header = ["target", "need", "ours", *anchors, *[f"vs {a}" for a in anchors], "met"]
    rows, data = [], []
    for t in TARGETS:
        ours = value(t.scene, "ours", t.key)
        vals = {a: value(t.scene, a, t.key) for a in anchors}
        met = t.met(ours) if isinstance(ours, float | int) or ours is None else None
        rows.append(
            [
                t.text,
                t.need_text(),
                fmt(ours, t.kind),
                *[fmt(vals[a], t.kind) for a in anchors],
                *[relative(t, ours, vals[a]) for a in anchors],
                "-" if met is None else ("yes" if met else "NO"),
            ]
        )
        data.append(
            {
                "target": t.text,
                "scene": t.scene,
                "need": t.need_text(),
                "ours": ours,
                "anchors": vals,
                "met": met,
            }
        )
    return header, rows, data


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in ("numpy", "livekit", "pyroomacoustics", "pesq", "speexdsp", "soxr"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    try:
        first = subprocess.run(
            ["espeak-ng", "--version"], capture_output=True, text=True, check=False
        ).stdout.split("\n")[0]
        out["espeak-ng"] = first.split(":")[1].split()[0] if ":" in first else first
    except OSError:
        pass
    return out


# --- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a few short scenes, for smoke tests")
    p.add_argument(
        "--rate",
        type=str,
        default="",
        help="comma-separated rates; default 16000 for all and 48000 for a subset",
    )
    p.add_argument(
        "--backends",
        type=str,
        default=",".join(DEFAULT_BACKENDS),
        help=f"comma-separated, from {', '.join(BACKEND_SPECS)}",
    )
    p.add_argument("--scenes", type=str, default="", help="comma-separated scene names")
    p.add_argument(
        "--repeats",
        type=int,
        default=0,
        help="runs per backend and scene, CPU is the least (default 3, 1 with --quick)",
    )
    p.add_argument("--json", type=Path, help="write every number to this JSON file")
    p.add_argument("--cache", type=Path, default=sc.DEFAULT_CACHE, help="scene cache directory")
    args = p.parse_args(argv)
    unknown = [b for b in args.backends.split(",") if b not in BACKEND_SPECS]
    if unknown:
        p.error(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(BACKEND_SPECS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    labels = [b for b in args.backends.split(",") if b]
    rates = [int(r) for r in args.rate.split(",") if r]
    work = sc.plan(args.quick, rates or None)
    if args.scenes:
        names = set(args.scenes.split(","))
        work = [(s, r) for s, r in work if s.name in names]
    timeline = sc.QUICK if args.quick else sc.FULL
    repeats = args.repeats or (1 if args.quick else 3)
    info = versions()
    print("edgevoice AEC benchmark  " + "  ".join(f"{k} {v}" for k, v in info.items()))
    if not sc.espeak_available():
        print("WARNING: espeak-ng not found: speech is synthetic, numbers are not comparable")
    if not sc.pyroomacoustics_available():
        print(
            "WARNING: pyroomacoustics not found: synthetic rooms, numbers are not comparable"
            " (install the bench extra)"
        )
    backends = resolve_backends(labels)
    for b in backends:
        if b.factory is None:
            print(f"backend {b.label}: missing ({b.problem})")
    results: list[dict[str, Any]] = []
    outputs: dict[tuple[str, int, str], sc.Pcm] = {}
    for spec, rate in work:
        scene = sc.build_scene(spec, rate, timeline, args.cache)
        print(
            f"{spec.name}@{rate // 1000}k: {spec.description}; {scene.duration_s:.1f} s"
            + "".join(f"; {n}" for n in scene.notes),
            flush=True,
        )
        scene_results, outs = run_scene(scene, backends, repeats)
        results += scene_results
        outputs.update({(spec.name, rate, label): out for label, out in outs.items()})
    notes = identical_outputs(outputs)
    notes += [
        f"{r['backend']} failed on {r['scene']}@{r['rate_hz'] // 1000}k: {r['error']}"
        for r in results
        if "error" in r
    ]
    print()
    print(table(scene_rows(results), SCENE_HEADER))
    missing = {b.label for b in backends if b.factory is None}
    header, target_rows, data = summary(results, labels, missing)
    print()
    length = "quick" if args.quick else "full"
    print(
        f"Targets (16 kHz scenes, {length} timeline, CPU the best of {repeats} run(s);"
        " anchors measured in this run)"
    )
    print(table(target_rows, header))
    for n in notes:
        print(f"note: {n}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "versions": info,
            "quick": args.quick,
            "repeats": repeats,
            "notes": notes,
            "backends": {b.label: b.problem or "ok" for b in backends},
            "results": results,
            "targets": data,
        }
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


def identical_outputs(outputs: dict[tuple[str, int, str], sc.Pcm]) -> list[str]:
    """Flag speex+rs matching speex sample for sample: the option was then ignored."""
    notes = []
    for (scene, rate, label), out in outputs.items():
        if label != "speex+rs":
            continue
        plain = outputs.get((scene, rate, "speex"))
        if plain is not None and np.array_equal(plain, out):
            notes.append(f"speex+rs equals speex on {scene}@{rate}: residual_suppressor ignored?")
    return notes


if __name__ == "__main__":
    sys.exit(main())
