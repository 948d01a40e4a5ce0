"""The API key appears in nothing the device writes, whatever goes wrong.

A recognisable fake key goes through the real daemon for a session full of error
paths: the key refused at the handshake (HTTP 401), a fatal error event, a tool that
crashes, bad frames, a server error event, the audio device pulled. Then every
output is searched for it: each log record as the plain, the journal-prefixed and
the journald handler render it (traceback and journal fields included), whatever
reached stdout and stderr, the event trace, the timeline, every file in the state
directory, the reprs of the daemon, its link, its config and a client. Config
errors and the ``edgevoice`` command line's own failures (a config error, a bad key
file, a crash with its traceback) are searched the same way, in subprocesses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from device.config import load_config
from device.demo import shipped_question
from device.errors import ConfigError
from device.logs import _journal_handler, reconfigure_level, setup_logging
from device.realtime.client import RealtimeClient
from device.realtime.sim_faults import parse_fault
from device.realtime.simulator import SimulatorOptions
from device.timeline import Timeline
from device.trace import Trace
from hw.fake import read_wav_mono
from tests.soak.rig import Rig, daemon_rig, watching_logs
from tests.soak.virtual_time import run_virtual

KEY = "sk-proj-edgevoiceKEYSCAN-7Qz3Xw9Lm2Pd5Rt8"
REAL_LIMIT_S = 120.0
SLOW_RETRY_WITHIN_S = 400.0  # a refused key is retried after 150..300 s


async def ask(rig: Rig, question: Any, *specs: str, reply: bool = True) -> None:
    """One question with these faults armed; back to idle (after any slow retry)."""
    replies = rig.daemon.replies_finished
    rig.sim.faults_fired.clear()
    for spec in specs:
        rig.sim.inject(parse_fault(spec))
    rig.duplex.feed(question, at_s=rig.duplex.time_s + 0.5)
    await rig.until(lambda: len(rig.sim.faults_fired) == len(specs), 120, "the faults")
    if reply:
        await rig.until(lambda: rig.daemon.replies_finished > replies, 120, "the reply")
    await rig.until(rig.settled, SLOW_RETRY_WITHIN_S, "idle again")


async def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The session; returns the reprs and texts to search besides the logs."""
    loop = asyncio.get_running_loop()
    trace = Trace(tmp_path / "trace.jsonl", clock=loop.time)
    timeline = Timeline(clock=loop.time)
    options = SimulatorOptions(
        voice_engine="tone", reply_text="Okay.", tool_call=("status", "{}"),
        faults=(parse_fault("http:401"),),
    )  # fmt: skip
    async with daemon_rig(
        monkeypatch, tmp_path / "state", KEY, options, trace=trace, timeline=timeline,
        listen={"mode": "always"}, audio={"aec": "none"},
    ) as rig:  # fmt: skip
        # A tool that crashes: the status tool's source of truth raises.
        def broken_status() -> dict[str, Any]:
            raise RuntimeError("the status source is broken")

        monkeypatch.setattr(rig.daemon.controls, "status", broken_status)
        question = read_wav_mono(shipped_question(), rig.duplex.format.rate_hz)
        # The key refused at the first handshake: FAULT, then the slow retry.
        await rig.until(rig.settled, SLOW_RETRY_WITHIN_S, "the session after the refusal")
        assert rig.sim.faults_fired == ["http:401"]
        await ask(rig, question)  # calls the crashing tool
        await ask(rig, question, "garbage@response.created", "error@response.done")
        await ask(rig, question, "fatal_error@response.created", reply=False)
        rig.duplex.unplug()
        await asyncio.sleep(5)
        rig.duplex.plug()
        await rig.until(rig.settled, 60, "audio back")
        assert rig.daemon.stats.bad_frames == 1
        client = RealtimeClient(rig.sim.url, KEY)
        texts = [repr(rig.daemon), repr(rig.daemon.link), repr(rig.daemon.config), repr(client)]
    trace.close()
    texts.append(timeline.render())
    texts += [f"{mark.name} {mark.detail}" for mark in timeline.marks]
    return texts


def test_no_output_of_a_faulty_session_holds_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    journal_fields: list[dict[str, Any]] = []

    def send(message: str, /, **fields: Any) -> None:
        # journald keeps the upper-case fields and drops the rest
        kept = {name: value for name, value in fields.items() if name.isupper()}
        journal_fields.append({"MESSAGE": message, **kept})

    import systemd.journal  # the [hw] extra; the same handler the unit uses

    fake_journal = types.SimpleNamespace(JournalHandler=systemd.journal.JournalHandler, send=send)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    with watching_logs(KEY, logging.DEBUG) as logs:
        setup_logging("debug")  # a plain handler on stderr, as on a terminal
        root.addHandler(logs)
        root.addHandler(_journal_handler(fake_journal))
        try:
            texts = run_virtual(lambda: session(tmp_path, monkeypatch), real_limit_s=REAL_LIMIT_S)
        finally:
            root.handlers[:], level = saved
            root.setLevel(level)
            reconfigure_level("info")
    out, err = capfd.readouterr()

    assert logs.levels["ERROR"] > 0 and logs.levels["WARNING"] > 0  # the errors were logged
    assert any(r.exc_info for r in logs.serious), "the tool's crash left a traceback"
    assert journal_fields and err, "the journald and stderr handlers saw the session"
    assert logs.leaks == []
    found = {
        "stderr/stdout": KEY in out + err,
        "journal fields": any(KEY in str(value) for f in journal_fields for value in f.values()),
        "trace": KEY in (tmp_path / "trace.jsonl").read_text(encoding="utf-8"),
        "reprs and timeline": any(KEY in text for text in texts),
        "state files": any(
            KEY.encode() in path.read_bytes() for path in (tmp_path / "state").rglob("*")
            if path.is_file()
        ),
    }  # fmt: skip
    assert (tmp_path / "trace.jsonl").stat().st_size > 0
    assert list((tmp_path / "state").rglob("*.json")), "state files were written"
    assert not any(found.values()), found


# -- config errors and the command line ------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        {"realtime": {"api_key_file": KEY}},
        {"realtime": {"model": KEY}},
        {"realtime": {"url": f"wss://user:{KEY}@api.openai.com/v1/realtime"}},
        {"realtime": {"api_key": KEY}},
        {"realtime": {KEY: "x"}},
        {KEY: {"x": 1}},
        {"device": {"log_level": [KEY]}},
        {"cost": {"prices": {KEY: {"audio_in_per_mtok": 1}}}},
    ],
)
def test_a_config_error_never_shows_a_pasted_key(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "edgevoice.toml"
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value)
    assert KEY not in str(error.value) and KEY[:12] not in str(error.value)


CRASH = """
import sys
import device.app

async def crash(self, stop):
    raise RuntimeError("the daemon crashed")

device.app.Daemon.run = crash
from device.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli(
    args: list[str], env: dict[str, str], *, crash: bool = False
) -> subprocess.CompletedProcess[str]:
    command = ["-c", CRASH, *args] if crash else ["-m", "device", *args]
    full_env = {**os.environ, "EDGEVOICE_HW": "fake", **env}
    full_env.pop("CREDENTIALS_DIRECTORY", None)
    return subprocess.run(
        [sys.executable, *command], env=full_env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def test_the_command_line_never_prints_the_key(tmp_path: Path) -> None:
    config = tmp_path / "edgevoice.toml"
    state = tmp_path / "state"
    config.write_text(
        tomli_w.dumps({
            "device": {"hardware": "fake", "state_dir": str(state), "log_level": "debug"},
            "realtime": {"url": "ws://127.0.0.1:9/v1/realtime"},
        }),
        encoding="utf-8",
    )  # fmt: skip
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text(tomli_w.dumps({"realtime": {"model": KEY}}), encoding="utf-8")
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"OPENAI_API_KEY={KEY}\n", encoding="utf-8")
    wrong_file = tmp_path / "wrong.toml"
    wrong_file.write_text(
        tomli_w.dumps({"realtime": {"api_key_file": str(key_file)}}), encoding="utf-8"
    )
    runs = {
        "crash": run_cli(["run", "--config", str(config)], {"OPENAI_API_KEY": KEY}, crash=True),
        "config check": run_cli(["config", "check", str(bad_config)], {}),
        "bad config": run_cli(["run", "--config", str(bad_config)], {"OPENAI_API_KEY": KEY}),
        "key file": run_cli(["run", "--config", str(wrong_file)], {}),
        "not a key": run_cli(["run", "--config", str(config)], {"OPENAI_API_KEY": KEY + " x"}),
    }
    assert (
        runs["crash"].returncode != 0 and "RuntimeError: the daemon crashed" in runs["crash"].stderr
    )
    assert "Traceback" in runs["crash"].stderr
    for name in ("config check", "bad config", "key file", "not a key"):
        assert runs[name].returncode == 78, (name, runs[name].stderr)
    assert "looks like NAME=value" in runs["key file"].stderr
    leaks = [name for name, run in runs.items() if KEY in run.stdout + run.stderr]
    assert leaks == []
