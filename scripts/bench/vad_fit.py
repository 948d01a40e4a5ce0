#!/usr/bin/env python3
"""Fits the webrtc voice detector's speech score (``device/audio/vad_features.py``).

Generates the VAD benchmark's noisy scenes (10, 5 and 0 dB SNR pink noise) from
training seeds, computes the detector's per-frame features exactly as the daemon
does, fits a logistic regression of the frame labels on them (Newton's method,
a little L2, features standardised and the scaling folded back into the
weights), then picks the start/stop thresholds and the stop count on separate
validation seeds by the mean of the 5 and 0 dB F1. The benchmark's own seed (7)
is in neither set, so its table stays a held-out test. Prints the weights and
thresholds to paste into the module, and the validation F1.

Usage: scripts/bench/vad_fit.py [--train 101,102,103] [--validate 104] [--sentences 40]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1 + 1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import vad_bench  # noqa: E402

from device.audio.vad_features import FEATURES, SpeechFeatures  # noqa: E402

Matrix = npt.NDArray[np.float64]
NOISY = ("10 dB", "5 dB", "0 dB")


def features(audio: npt.NDArray[np.int16]) -> Matrix:
    extract = SpeechFeatures()
    data = audio.astype("<i2").tobytes()
    step = 2 * vad_bench.FRAME
    return np.array(
        [extract.update(data[i : i + step]) for i in range(0, len(data) - step + 1, step)]
    )


Scenes = list[tuple[str, Matrix, npt.NDArray[np.bool_]]]


def scenes(seeds: list[int], count: int) -> Scenes:
    """The benchmark's noisy scenes for these seeds, as features and labels."""
    found = []
    for seed in seeds:
        for scene in vad_bench.make_scenes(count, seed):
            if scene.name in NOISY:
                x = features(scene.audio)
                found.append((scene.name, x, scene.labels[: x.shape[0]]))
    return found


def logistic(x: Matrix, y: Matrix, l2: float = 1e-3) -> Matrix:
    w = np.zeros(x.shape[1])
    for _ in range(40):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        hessian = x.T @ (x * (p * (1 - p) + 1e-9)[:, None]) + l2 * np.eye(w.shape[0])
        w -= np.linalg.solve(hessian, x.T @ (p - y) + l2 * w)
    return w


def decide(z: Matrix, start: float, stop: float, stop_frames: int) -> npt.NDArray[np.bool_]:
    """The classifier's hysteresis (without its level guard, which these scenes pass)."""
    out = np.zeros(z.shape[0], dtype=bool)
    active, quiet = False, 0
    for i, value in enumerate(z):
        if active:
            quiet = 0 if value >= stop else quiet + 1
            active = quiet < stop_frames
        else:
            active, quiet = bool(value >= start), 0
        out[i] = active
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--train", default="101,102,103")
    parser.add_argument("--validate", default="104")
    parser.add_argument("--sentences", type=int, default=40)
    args = parser.parse_args(argv)
    train = scenes([int(s) for s in args.train.split(",")], args.sentences)
    valid = scenes([int(s) for s in args.validate.split(",")], args.sentences)
    x = np.vstack([f for _, f, _ in train])
    y = np.concatenate([lab for _, _, lab in train]).astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    w = logistic(np.column_stack([(x - mean) / std, np.ones(x.shape[0])]), y)
    weights = w[:-1] / std
    bias = float(w[-1] - np.sum(weights * mean))
    scores = [(name, f @ weights + bias, lab) for name, f, lab in valid]
    best: tuple[float, float, float, int] | None = None
    for start, stop, frames in itertools.product(
        (0.5, 1.0, 1.5, 2.0), (-1.5, -1.0, -0.5, 0.0), (1, 2, 3, 4, 6)
    ):
        f1s = [
            vad_bench.f1(decide(z, start, stop, frames), lab)[0]
            for name, z, lab in scores
            if name in ("5 dB", "0 dB")
        ]
        if best is None or float(np.mean(f1s)) > best[0]:
            best = (float(np.mean(f1s)), start, stop, frames)
    assert best is not None
    _, start, stop, frames = best
    print("WEIGHTS: tuple[float, ...] = (")
    for name, value in zip(FEATURES, weights, strict=True):
        print(f"    {value:.4f},  # {name}")
    print(f")\nBIAS = {bias:.4f}")
    print(f"start >= {start}, stop after {frames} frames below {stop}")
    for name, z, lab in scores:
        print(f"validation {name}: F1 {vad_bench.f1(decide(z, start, stop, frames), lab)[0]:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
