"""sd_notify: telling systemd that the daemon is ready, alive, or stopping.

With ``Type=notify`` systemd waits for ``READY=1`` before it calls the unit
started, shows ``STATUS=...`` in ``systemctl status``, and with ``WatchdogSec=``
restarts the daemon when ``WATCHDOG=1`` stops arriving. The channel is a
datagram sent to the AF_UNIX socket named by ``NOTIFY_SOCKET``.

systemd-python is used when it is installed (it is the reference
implementation and passes credentials the way systemd expects); otherwise the
datagram is sent directly, which is all the protocol needs. A missing socket is
normal (run from a shell, under the fakes, in tests): ``notify`` then returns
False and never raises, so a notification can never take the daemon down.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

_log = logging.getLogger(__name__)


def _load_sd_daemon() -> Any | None:
    """systemd.daemon, or None where systemd-python is not installed (laptops, CI)."""
    try:
        return importlib.import_module("systemd.daemon")
    except ImportError:
        return None


_SD_DAEMON: Any | None = _load_sd_daemon()


def _socket_address(path: str) -> str | None:
    """The address to send to: "@name" is Linux's abstract namespace ("\\0name")."""
    if path.startswith("@") and len(path) > 1:
        return "\0" + path[1:]
    if path.startswith("/"):
        return path
    return None  # systemd itself only ever hands out these two forms


def _send_datagram(path: str, message: str) -> bool:
    address = _socket_address(path)
    if address is None:
        _log.debug("NOTIFY_SOCKET=%r is neither a path nor an abstract name", path)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode("utf-8"), address)
    except OSError as exc:
        _log.debug("sd_notify to %r failed: %s", path, exc)
        return False
    return True


class SystemdNotifier:
    """Notifier that talks to the service manager through ``NOTIFY_SOCKET``.

    ``env`` defaults to ``os.environ``. An explicit mapping lets a caller (or a
    test) name the socket without touching the process environment; since
    systemd-python only ever reads the process environment, such a socket is
    then written to directly.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        source = os.environ if env is None else env
        self._socket_path = source.get("NOTIFY_SOCKET") or None

    @property
    def socket_path(self) -> str | None:
        """The notification socket, or None when no service manager listens."""
        return self._socket_path

    def notify(self, message: str) -> bool:
        """Send ``message`` (e.g. "READY=1" or "STATUS=listening"; lines joined by \\n).

        Returns True when the datagram was sent, False when there is no socket
        or sending failed. Never raises: the watchdog ping runs in the daemon's
        hot path and a dead service manager must not kill the daemon.
        """
        path = self._socket_path
        if path is None:
            return False
        if _SD_DAEMON is not None and os.environ.get("NOTIFY_SOCKET") == path:
            try:
                return bool(_SD_DAEMON.notify(message))
            except Exception as exc:  # OSError from sd_notify, or a broken binding
                _log.debug("systemd.daemon.notify(%r) failed: %s", message, exc)
                return False
        return _send_datagram(path, message)


class NullNotifier:
    """Notifier for runs outside systemd: every notification goes nowhere."""

    def notify(self, message: str) -> bool:
        return False


def watchdog_interval_s(env: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout systemd set for process ``pid``, in seconds, or None.

    systemd-python 235 has no ``watchdog_enabled()``, so ``WATCHDOG_USEC`` is
    read here. systemd sets ``WATCHDOG_PID`` when the variable may be inherited
    by a child: a timeout meant for another process is not ours to honour.
    Absent, malformed or non-positive values mean no watchdog. Ping at about
    half the returned interval.
    """
    usec_text = env.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid_text = env.get("WATCHDOG_PID")
    if pid_text:
        try:
            watched_pid = int(pid_text)
        except ValueError:
            return None
        if watched_pid != pid:
            return None
    return usec / 1_000_000
