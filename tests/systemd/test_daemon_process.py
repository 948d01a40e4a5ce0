"""The daemon as systemd runs it: a process talking sd_notify to the manager.

Each test starts ``python -m device run`` on the fake hardware with the
environment systemd gives a ``Type=notify`` service with ``WatchdogSec=`` and a
credential: ``NOTIFY_SOCKET`` (a datagram socket this test binds and reads),
``WATCHDOG_USEC`` and ``CREDENTIALS_DIRECTORY``. ``WATCHDOG_PID`` stays unset,
as it must: the child's pid is unknown before it is spawned, and an unset
``WATCHDOG_PID`` means "whoever reads this".

Every wait is bounded by a generous timeout that fails the test; nothing is
timed.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from device.errors import EXIT_CONFIG
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions

REPO = Path(__file__).parents[2]
TEST_KEY = "sk-test-process-0123456789"
WATCHDOG_USEC = 2_000_000  # pets every second
START_TIMEOUT_S = 60.0  # a cold start imports numpy and the audio stack
STOP_TIMEOUT_S = 10.0  # the unit allows 5 s (TimeoutStopSec); this only catches a hang
AF_UNIX_PATH_MAX = 107

# Inherited variables that would change what the child does.
_SCRUBBED = (
    "OPENAI_API_KEY",
    "CREDENTIALS_DIRECTORY",
    "EDGEVOICE_CONFIG",
    "EDGEVOICE_HW",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "LISTEN_FDS",
    "LISTEN_PID",
)


# -- the service manager's side ---------------------------------------------------------
@dataclass
class Manager:
    """The notification socket, and every assignment received on it, in order."""

    sock: socket.socket
    address: str
    messages: list[str] = field(default_factory=list)

    def receive_until(
        self, done: Callable[[list[str]], bool], timeout_s: float, daemon: DaemonProcess
    ) -> list[str]:
        """Collect messages until ``done(messages)``; fail on timeout or an early exit."""
        remaining_s = timeout_s
        while not done(self.messages):
            if remaining_s <= 0:
                pytest.fail(
                    f"gave up waiting; received {self.messages}; stderr:\n{daemon.stderr}",
                    pytrace=False,
                )
            if daemon.process.poll() is not None:
                self.drain()
                if done(self.messages):
                    break
                pytest.fail(
                    f"the daemon exited with {daemon.process.returncode}; received "
                    f"{self.messages}; stderr:\n{daemon.stderr}",
                    pytrace=False,
                )
            # Blocking receive in short slices, so an early exit is noticed.
            slice_s = min(0.5, remaining_s)
            remaining_s -= slice_s
            self.sock.settimeout(slice_s)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self._add(data)
        return self.messages

    def drain(self) -> list[str]:
        """Whatever is already queued, without waiting."""
        self.sock.setblocking(False)
        try:
            while True:
                self._add(self.sock.recv(4096))
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        return self.messages

    def _add(self, data: bytes) -> None:
        # One datagram may carry several newline-separated assignments.
        self.messages.extend(line for line in data.decode("utf-8").split("\n") if line)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    if len(path) <= AF_UNIX_PATH_MAX:
        sock.bind(path)
        address = path
    else:  # a deep temporary directory: Linux's abstract namespace has no path limit
        name = f"edgevoice-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        address = "@" + name
    with sock:
        yield Manager(sock, address)


@dataclass
class DaemonProcess:
    process: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self) -> int:
        """SIGTERM, as `systemctl stop` sends; the exit code, or fail if it hangs."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"no exit {STOP_TIMEOUT_S} s after SIGTERM; stderr:\n{self.stderr}", pytrace=False
            )


@pytest.fixture
def start_daemon(tmp_path: Path, manager: Manager) -> Iterator[Callable[..., DaemonProcess]]:
    """Starts the daemon with a config text and a key (or none); kills leftovers."""
    started: list[DaemonProcess] = []

    def start(
        config_text: str, *, key: str | None = TEST_KEY, command: list[str] | None = None
    ) -> DaemonProcess:
        config = tmp_path / "edgevoice.toml"
        config.write_text(config_text, encoding="utf-8")
        credentials = tmp_path / "credentials"
        credentials.mkdir(exist_ok=True)
        if key is not None:
            (credentials / "openai-api-key").write_text(key + "\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        env.update(
            NOTIFY_SOCKET=manager.address,
            WATCHDOG_USEC=str(WATCHDOG_USEC),
            CREDENTIALS_DIRECTORY=str(credentials),
        )
        stderr_path = tmp_path / f"stderr-{len(started)}.txt"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [*(command or [sys.executable, "-m", "device"]), "run", "--config", str(config)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        daemon = DaemonProcess(process, stderr_path)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(timeout=STOP_TIMEOUT_S)


def fake_config(url: str) -> str:
    return f'[device]\nhardware = "fake"\n[realtime]\nurl = "{url}"\n'


# -- the Realtime service's side --------------------------------------------------------
class SimulatorThread:
    """The local Realtime simulator on its own event loop in a background thread."""

    def __init__(self) -> None:
        self.simulator = RealtimeSimulator(SimulatorOptions(voice_engine="tone"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="simulator", daemon=True
        )

    def __enter__(self) -> RealtimeSimulator:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.simulator.start(), self._loop).result(30)
        return self.simulator

    def __exit__(self, *exc_info: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop).result(30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


@pytest.fixture
def simulator() -> Iterator[RealtimeSimulator]:
    with SimulatorThread() as simulator:
        yield simulator


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A local URL whose connections are refused: the port is bound, never listened on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}/v1/realtime"


# -- what systemd must see --------------------------------------------------------------
def pets_after_ready(messages: list[str]) -> int:
    if "READY=1" not in messages:
        return 0
    return messages[messages.index("READY=1") :].count("WATCHDOG=1")


def statuses(messages: list[str]) -> list[str]:
    return [m.removeprefix("STATUS=") for m in messages if m.startswith("STATUS=")]


def assert_clean_start(messages: list[str]) -> None:
    assert messages[0].startswith("STATUS="), messages  # something for `systemctl status`
    assert messages.count("READY=1") == 1, messages
    ready = messages.index("READY=1")
    assert "WATCHDOG=1" not in messages[:ready], messages
    assert "STOPPING=1" not in messages, messages


def assert_clean_stop(daemon: DaemonProcess, manager: Manager) -> None:
    sent_before_stop = len(manager.messages)
    assert daemon.terminate() == 0, daemon.stderr
    after = manager.drain()[sent_before_stop:]
    assert "STOPPING=1" in after, after
    assert "READY=1" not in after, after
    assert "Traceback" not in daemon.stderr, daemon.stderr
    assert TEST_KEY not in daemon.stderr


def test_online_ready_watchdog_and_clean_stop(
    start_daemon: Callable[..., DaemonProcess], manager: Manager, simulator: RealtimeSimulator
) -> None:
    daemon = start_daemon(fake_config(simulator.url))
    messages = manager.receive_until(
        lambda m: pets_after_ready(m) >= 2 and "idle, connected" in statuses(m),
        START_TIMEOUT_S,
        daemon,
    )
    assert_clean_start(messages)
    assert statuses(messages)[0] == "offline, not connected"
    assert simulator.connections >= 1
    assert_clean_stop(daemon, manager)


def test_offline_still_ready_and_petting(
    start_daemon: Callable[..., DaemonProcess], manager: Manager, refused_url: str
) -> None:
    """A network outage must not look like a dead daemon: the watchdog keeps going."""
    daemon = start_daemon(fake_config(refused_url))
    messages = manager.receive_until(lambda m: pets_after_ready(m) >= 2, START_TIMEOUT_S, daemon)
    assert_clean_start(messages)
    assert statuses(messages) and all("not connected" in s for s in statuses(messages))
    assert "reconnecting" in daemon.stderr
    assert_clean_stop(daemon, manager)


def test_config_error_exits_78_without_ready(
    start_daemon: Callable[..., DaemonProcess], manager: Manager, refused_url: str
) -> None:
    daemon = start_daemon(fake_config(refused_url) + 'voice = "nobody"\n')
    assert daemon.process.wait(timeout=START_TIMEOUT_S) == EXIT_CONFIG
    assert "READY=1" not in manager.drain()
    lines = daemon.stderr.strip().splitlines()
    assert len(lines) == 1 and "realtime.voice" in lines[0], daemon.stderr
    assert "Traceback" not in daemon.stderr


def test_missing_key_exits_78_without_ready(
    start_daemon: Callable[..., DaemonProcess], manager: Manager, refused_url: str
) -> None:
    daemon = start_daemon(fake_config(refused_url), key=None)
    assert daemon.process.wait(timeout=START_TIMEOUT_S) == EXIT_CONFIG
    assert "READY=1" not in manager.drain()
    assert "openai-api-key" in daemon.stderr
    assert "Traceback" not in daemon.stderr


# The kernel's form of MemoryDenyWriteExecute=yes (Linux 6.3+): no memory may be
# writable and executable, nor become executable later.
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
_UNDER_MDWE = f"""\
import ctypes, runpy, sys
if ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0):
    sys.exit("PR_SET_MDWE failed")
runpy.run_module("device", run_name="__main__")
"""


def test_runs_without_writable_executable_memory(
    start_daemon: Callable[..., DaemonProcess], manager: Manager, refused_url: str
) -> None:
    """The unit sets MemoryDenyWriteExecute=yes: the daemon must start and run under it."""
    if ctypes.CDLL(None).prctl(PR_GET_MDWE, 0, 0, 0, 0) < 0:
        pytest.skip("this kernel has no PR_SET_MDWE (it came with Linux 6.3)")
    daemon = start_daemon(fake_config(refused_url), command=[sys.executable, "-c", _UNDER_MDWE])
    messages = manager.receive_until(lambda m: pets_after_ready(m) >= 1, START_TIMEOUT_S, daemon)
    assert_clean_start(messages)
    assert_clean_stop(daemon, manager)
