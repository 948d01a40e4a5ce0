"""The command line as installers and systemd meet it: exit codes and messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device.cli import main
from device.errors import EXIT_CONFIG

SAMPLE = Path(__file__).parents[2] / "device" / "data" / "edgevoice.sample.toml"


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "OPENAI_API_KEY",
            "CREDENTIALS_DIRECTORY",
            "EDGEVOICE_CONFIG",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
        )
    }
    env.update(extra)
    return env


def test_config_check_accepts_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(SAMPLE)]) == 0
    assert "config ok" in capsys.readouterr().out


def test_config_check_names_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "edgevoice.toml"
    bad.write_text('[realtime]\nvoice = "bob"\n')
    assert main(["config", "check", str(bad)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert str(bad) in err and "realtime.voice" in err and "marin" in err
    assert len(err.strip().splitlines()) == 1


def test_config_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "nope.toml")]) == EXIT_CONFIG
    assert "nope.toml" in capsys.readouterr().err


def test_run_without_key_exits_78_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "edgevoice.toml"
    cfg.write_text('[device]\nhardware = "fake"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "device", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert proc.returncode == EXIT_CONFIG
    assert "Traceback" not in proc.stderr
    assert "openai-api-key" in proc.stderr and "OPENAI_API_KEY" in proc.stderr


def test_run_on_missing_audio_device_is_a_clear_failure(tmp_path: Path) -> None:
    pytest.importorskip("pyaudio")
    cfg = tmp_path / "edgevoice.toml"
    cfg.write_text(
        '[device]\nboard = "respeaker-2mic"\n[audio]\ninput_device = "no-such-card-xyz"\n'
    )
    key = tmp_path / "creds"
    key.mkdir()
    (key / "openai-api-key").write_text("sk-test-not-real\n")
    proc = subprocess.run(
        [sys.executable, "-m", "device", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(CREDENTIALS_DIRECTORY=str(key)),
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "no-such-card-xyz" in proc.stderr


def test_run_on_fake_hardware_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    cfg = tmp_path / "edgevoice.toml"
    # nothing listens on this port: the daemon runs offline and keeps retrying
    cfg.write_text(
        '[device]\nhardware = "fake"\n[realtime]\nurl = "ws://127.0.0.1:9/v1/realtime"\n'
    )
    key = tmp_path / "creds"
    key.mkdir()
    (key / "openai-api-key").write_text("sk-test-not-real\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "device", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(CREDENTIALS_DIRECTORY=str(key)),
    )
    try:
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        seen = ""
        while "reconnecting" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert "FAKE hardware" in seen
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "sk-test-not-real" not in seen + err


def test_run_with_an_echo_canceller_that_is_not_installed_is_a_config_error(
    tmp_path: Path,
) -> None:
    pytest.importorskip("device.audio.aec_webrtc")
    import importlib.util

    if importlib.util.find_spec("livekit") is not None:
        pytest.skip("livekit is installed here: the webrtc backend is available")
    cfg = tmp_path / "edgevoice.toml"
    cfg.write_text('[device]\nhardware = "fake"\n[audio]\naec = "webrtc"\n')
    key = tmp_path / "creds"
    key.mkdir()
    (key / "openai-api-key").write_text("sk-test-not-real\n")
    proc = subprocess.run(
        [sys.executable, "-m", "device", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(CREDENTIALS_DIRECTORY=str(key)),
    )
    assert proc.returncode == EXIT_CONFIG
    assert "Traceback" not in proc.stderr and "audio.aec" in proc.stderr
