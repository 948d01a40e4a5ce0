"""Integration tests that need a real audio server.

Tests marked ``@pytest.mark.audio_server`` run against a PulseAudio server (with
no sound card: a null sink, whose monitor is the loopback mic). Without one they
skip, so a laptop without PulseAudio still runs the suite; ``scripts/test``
starts one and sets ``EDGEVOICE_REQUIRE_AUDIO_SERVER=1``, and then a missing
server fails the run instead of silently skipping the only real audio path.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

REQUIRE_ENV = "EDGEVOICE_REQUIRE_AUDIO_SERVER"
HOW_TO_START = "start one with `. scripts/pulse-null.sh`"


@functools.cache
def _audio_server_problem() -> str | None:
    """Why the audio-server tests cannot run here, or None when they can."""
    if shutil.which("pactl") is None:
        return "pactl is not installed (apt-get install pulseaudio pulseaudio-utils)"
    try:
        answer = subprocess.run(
            ["pactl", "info"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`pactl info` failed: {exc}"
    if answer.returncode != 0:
        detail = (answer.stderr or answer.stdout).strip().splitlines()
        return f"no PulseAudio server answers `pactl info` ({'; '.join(detail)})"
    try:
        import pyaudio  # noqa: F401
    except ImportError:
        return "PyAudio is not installed (pip install -e '.[hw]')"
    return None


def require_audio_server() -> None:
    """Skip, or fail when the environment demands the server, if none answers."""
    problem = _audio_server_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{problem}; {REQUIRE_ENV}=1 requires it; {HOW_TO_START}", pytrace=False)
    pytest.skip(f"{problem}; {HOW_TO_START}")


@pytest.fixture
def audio_server() -> None:
    """Request this (or mark the test ``audio_server``) to need a running PulseAudio."""
    require_audio_server()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # The marker alone is enough: no test can forget the fixture and then fail obscurely.
    if item.get_closest_marker("audio_server") is not None:
        require_audio_server()
