"""Logging: structured journal entries under systemd, plain lines everywhere else.

Under the unit, stderr is a stream into journald. A plain line there loses its
level (journald files every stream line at the stream's default priority) and
any structure. So when stderr *is* the journal stream and systemd-python is
installed, records go to journald directly through its ``JournalHandler``:
PRIORITY from the level, ``SYSLOG_IDENTIFIER=edgevoice``, LOGGER, CODE_* and
every upper-case ``extra`` field, e.g. ``extra={STATE_FIELD: "listening"}``
becomes ``EDGEVOICE_STATE=listening`` (``journalctl EDGEVOICE_STATE=offline``).

"Stderr is the journal" is decided the documented way: systemd sets
``JOURNAL_STREAM=<device>:<inode>`` of the stream it connected, and that must
match stderr's own ``fstat``. The variable alone proves nothing: it is
inherited by children whose stderr was redirected elsewhere (a shell in a
unit, a test runner capturing output).

Anywhere else (a terminal, a test, CI) records are lines on stderr:
``LEVEL logger: message``. Under the journal without systemd-python, the lines
carry the ``<N>`` syslog prefix that journald reads the priority from.

Secrets never reach a log call in the first place (the key is a ``Secret``);
nothing here adds fields beyond what the caller logged.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

SYSLOG_IDENTIFIER = "edgevoice"
# The journal field carrying the device state, for ``extra={STATE_FIELD: ...}``.
STATE_FIELD = "EDGEVOICE_STATE"

PLAIN_FORMAT = "%(levelname)s %(name)s: %(message)s"
# journald stores the level as PRIORITY and shows it by colour; the logger name
# stays in the text because plain `journalctl -u edgevoice` shows MESSAGE only.
JOURNAL_FORMAT = "%(name)s: %(message)s"

# sd-daemon(3) priorities, for the "<N>" prefix of lines on a journal stream.
_SYSLOG_PRIORITY = ((logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3))
_SYSLOG_CRIT = 2


def _level_number(level: str) -> int:
    return LEVELS.get(level.lower(), logging.INFO)


def stream_is_journal(stream: TextIO | None, env: Mapping[str, str]) -> bool:
    """True when ``stream`` is the journal stream systemd named in ``JOURNAL_STREAM``."""
    device_inode = env.get("JOURNAL_STREAM", "")
    device_text, sep, inode_text = device_inode.partition(":")
    if not sep:
        return False
    try:
        device, inode = int(device_text), int(inode_text)
        status = os.fstat(stream.fileno()) if stream is not None else None
    except (ValueError, OSError, AttributeError):
        # A malformed variable, or a stream without a descriptor (io.StringIO,
        # a closed or replaced stderr): not the journal.
        return False
    return status is not None and (status.st_dev, status.st_ino) == (device, inode)


def _load_journal() -> Any | None:
    """systemd.journal, or None where systemd-python is not installed."""
    try:
        return importlib.import_module("systemd.journal")
    except ImportError:
        return None


class SyslogPrefixFormatter(logging.Formatter):
    """Prefixes each record with ``<N>`` so journald files it at the right priority."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_CRIT
        for levelno, value in _SYSLOG_PRIORITY:
            if record.levelno <= levelno:
                priority = value
                break
        return f"<{priority}>{super().format(record)}"


def _journal_handler(journal: Any) -> logging.Handler:
    # The sender is looked up now rather than bound when systemd-python was
    # imported, so a replaced ``systemd.journal.send`` (tests) is honoured.
    handler: logging.Handler = journal.JournalHandler(
        SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER, sender_function=journal.send
    )
    handler.setFormatter(logging.Formatter(JOURNAL_FORMAT))
    return handler


def _choose_handler() -> logging.Handler:
    stream = sys.stderr
    if stream_is_journal(stream, os.environ):
        journal = _load_journal()
        if journal is not None:
            return _journal_handler(journal)
        prefixed = logging.StreamHandler(stream)
        prefixed.setFormatter(SyslogPrefixFormatter(PLAIN_FORMAT))
        return prefixed
    plain = logging.StreamHandler(stream)
    plain.setFormatter(logging.Formatter(PLAIN_FORMAT))
    return plain


def setup_logging(level: str = "info") -> None:
    """Send every record to the journal or stderr (see above), from ``level`` up.

    Replaces the root logger's handlers, so calling it again is safe.
    """
    logging.getLogger().handlers[:] = [_choose_handler()]
    reconfigure_level(level)


def reconfigure_level(level: str) -> None:
    """Apply a new ``device.log_level`` (on config reload) without touching the handlers.

    An unknown name means "info", as at start: the config was validated already.
    """
    root = logging.getLogger()
    root.setLevel(_level_number(level))
    # websockets logs every frame at debug: too much even when debugging the daemon.
    logging.getLogger("websockets").setLevel(max(root.level, logging.INFO))
