"""sd_notify against a datagram socket bound by the test, standing in for systemd."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hw.notify
from hw.notify import NullNotifier, SystemdNotifier, watchdog_interval_s
from hw.ports import Notifier

MESSAGES = [
    "READY=1",
    "STATUS=listening",
    "WATCHDOG=1",
    "STOPPING=1",
    "READY=1\nSTATUS=ok\nMAINPID=4242",
    "STATUS=Grüße, speaker",
]


def _bound_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2)
    return sock


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """(NOTIFY_SOCKET value, the socket systemd would read)."""
    if request.param == "path":
        name = str(tmp_path / "notify.sock")
        sock = _bound_socket(name)
    else:
        name = f"@edgevoice-test-{uuid.uuid4().hex}"
        sock = _bound_socket("\0" + name[1:])
    with sock:
        yield name, sock


@pytest.fixture(params=["systemd-python", "plain-socket"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test with and without systemd-python."""
    if request.param == "systemd-python":
        if hw.notify._SD_DAEMON is None:
            pytest.skip("systemd-python is not installed")
    else:
        monkeypatch.setattr(hw.notify, "_SD_DAEMON", None)
    return str(request.param)


def test_notifiers_implement_the_port() -> None:
    assert isinstance(SystemdNotifier({}), Notifier)
    assert isinstance(NullNotifier(), Notifier)


@pytest.mark.parametrize("message", MESSAGES)
def test_messages_arrive_exactly_through_process_environment(
    message: str,
    listener: tuple[str, socket.socket],
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    notifier = SystemdNotifier()
    assert notifier.socket_path == name
    assert notifier.notify(message) is True
    assert sock.recv(4096) == message.encode("utf-8")


@pytest.mark.parametrize("message", MESSAGES)
def test_messages_arrive_exactly_through_explicit_env(
    message: str,
    listener: tuple[str, socket.socket],
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, sock = listener
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert SystemdNotifier({"NOTIFY_SOCKET": name}).notify(message) is True
    assert sock.recv(4096) == message.encode("utf-8")


def test_sender_credentials_are_ours(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd attributes a notification to a unit by the sender's pid."""
    path = str(tmp_path / "creds.sock")
    with _bound_socket(path) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert SystemdNotifier().notify("READY=1") is True
        data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    assert data == b"READY=1"
    creds = [
        d
        for level, kind, d in ancillary
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
    ]
    assert creds and int.from_bytes(creds[0][:4], "little") == os.getpid()


def test_a_sequence_arrives_in_order(listener: tuple[str, socket.socket], backend: str) -> None:
    name, sock = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": name})
    for message in MESSAGES:
        assert notifier.notify(message)
    assert [sock.recv(4096).decode() for _ in MESSAGES] == MESSAGES


def test_no_socket_returns_false(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert SystemdNotifier().socket_path is None
    assert SystemdNotifier().notify("READY=1") is False
    assert SystemdNotifier({}).notify("READY=1") is False
    assert SystemdNotifier({"NOTIFY_SOCKET": ""}).notify("READY=1") is False


@pytest.mark.parametrize("via_process_env", [True, False])
def test_unreachable_socket_returns_false(
    tmp_path: Path, backend: str, via_process_env: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "nobody-listens.sock")
    if via_process_env:
        monkeypatch.setenv("NOTIFY_SOCKET", missing)
        notifier = SystemdNotifier()
    else:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": missing})
    assert notifier.notify("WATCHDOG=1") is False


def test_socket_that_went_away_returns_false(tmp_path: Path, backend: str) -> None:
    path = str(tmp_path / "gone.sock")
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    with _bound_socket(path):
        assert notifier.notify("READY=1") is True
    os.unlink(path)
    assert notifier.notify("WATCHDOG=1") is False


@pytest.mark.parametrize("value", ["relative/notify.sock", "@"])
def test_malformed_socket_name_returns_false(value: str, backend: str) -> None:
    assert SystemdNotifier({"NOTIFY_SOCKET": value}).notify("READY=1") is False


def test_library_failure_does_not_raise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class Broken:
        @staticmethod
        def notify(message: str) -> bool:
            raise OSError(111, "Connection refused")

    path = str(tmp_path / "n.sock")
    monkeypatch.setattr(hw.notify, "_SD_DAEMON", Broken())
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert SystemdNotifier().notify("READY=1") is False


def test_null_notifier() -> None:
    assert NullNotifier().notify("READY=1") is False


@pytest.mark.parametrize(
    ("env", "expected_s"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1234"}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "999"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "not-a-pid"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": ""}, 30.0),
        ({}, None),
        ({"WATCHDOG_PID": "1234"}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "thirty"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "1.5"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected_s: float | None) -> None:
    assert watchdog_interval_s(env, 1234) == expected_s
