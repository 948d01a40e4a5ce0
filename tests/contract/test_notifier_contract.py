"""The same contract for the fake notifier and the real sd_notify sender."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hw.notify import SystemdNotifier
from hw.panel_fake import FakeNotifier
from hw.ports import Notifier

Rig = tuple[Notifier, Callable[[], str]]


@pytest.fixture(params=["fake", "systemd"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    if request.param == "fake":
        fake = FakeNotifier()
        yield fake, lambda: fake.messages.pop(0)
        return
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    try:
        yield SystemdNotifier({"NOTIFY_SOCKET": path}), lambda: sock.recv(4096).decode()
    finally:
        sock.close()


def test_is_a_notifier(rig: Rig) -> None:
    assert isinstance(rig[0], Notifier)


@pytest.mark.parametrize(
    "message",
    ["READY=1", "STATUS=idle, connected", "WATCHDOG=1", "STOPPING=1", "READY=1\nSTATUS=listening"],
)
def test_messages_arrive_as_sent_in_order(rig: Rig, message: str) -> None:
    notifier, received = rig
    assert notifier.notify(message) is True
    assert notifier.notify("STATUS=next") is True
    assert received() == message
    assert received() == "STATUS=next"
