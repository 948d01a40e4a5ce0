"""The real-time soak benchmark starts, runs the daemon with its faults, and reports.

Three seconds only: a smoke test that the script works, not a measurement (the
numbers of a run this short mean nothing, and tests never judge timings).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_soak_script_runs_and_prints_its_targets() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench/soak.py"), "--minutes", "0.05"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("edgevoice soak  0.05 min")
    [end] = [line for line in lines if line.strip().startswith("end  rss")]
    assert "connections   1" in end and "xruns in/out" in end
    [peak] = [line for line in lines if line.startswith("resident memory, peak")]
    assert peak.split()[-1] in ("yes", "NO") and "x" in peak.split()[-2]
    assert "Traceback" not in done.stderr
