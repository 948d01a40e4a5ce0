"""Where log records go: journald under systemd, plain stderr lines elsewhere.

journald is not running here, so ``systemd.journal.send`` is replaced by a
recorder, and stderr is a temporary file whose device and inode the test puts
into ``JOURNAL_STREAM`` (or deliberately does not).
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest

import device.logs
from device.logs import STATE_FIELD, reconfigure_level, setup_logging, stream_is_journal


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """setup_logging replaces the root handlers; give pytest its own back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    websockets_level = logging.getLogger("websockets").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("websockets").setLevel(websockets_level)


@pytest.fixture
def stderr_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TextIO]:
    """A real file standing in for stderr, so it has a device and an inode.

    It becomes ``sys.stderr`` only once the test body asks for ``sys.stderr``:
    pytest's own capture puts its stream back between fixture setup and the
    test call, so an assignment made here would not last.
    """
    with (tmp_path / "stderr.txt").open("w+", encoding="utf-8") as file:
        yield file


def as_stderr(file: TextIO, monkeypatch: pytest.MonkeyPatch) -> TextIO:
    monkeypatch.setattr(sys, "stderr", file)
    return file


def journal_stream_of(file: TextIO, *, inode_offset: int = 0) -> str:
    status = os.fstat(file.fileno())
    return f"{status.st_dev}:{status.st_ino + inode_offset}"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every message handed to journald: MESSAGE plus the fields, as keyword arguments.

    Without systemd-python nothing can reach journald and the list stays empty.
    """
    messages: list[dict[str, Any]] = []
    journal = device.logs._load_journal()
    if journal is not None:
        # Same parameter name as the real one: records carry a lower-case "message".
        def send(MESSAGE: str, **fields: Any) -> None:
            messages.append({"MESSAGE": MESSAGE, **fields})

        monkeypatch.setattr(journal, "send", send)
    return messages


@pytest.fixture
def journal_sent(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``sent``, for tests that need systemd-python (the ``hw`` extra)."""
    pytest.importorskip("systemd.journal")
    return sent


def written(file: TextIO) -> str:
    file.flush()
    file.seek(0)
    return file.read()


# -- the journal ------------------------------------------------------------------------
def test_journal_stream_gets_structured_journal_entries(
    stderr_file: TextIO, journal_sent: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    as_stderr(stderr_file, monkeypatch)
    monkeypatch.setenv("JOURNAL_STREAM", journal_stream_of(stderr_file))
    setup_logging("info")
    logging.getLogger("device.app").warning(
        "state %s -> %s", "idle", "offline", extra={STATE_FIELD: "offline"}
    )
    assert len(journal_sent) == 1
    entry = journal_sent[0]
    assert entry["MESSAGE"] == "device.app: state idle -> offline"
    assert entry["SYSLOG_IDENTIFIER"] == "edgevoice"
    assert entry["EDGEVOICE_STATE"] == "offline"
    assert entry["PRIORITY"] == "4"
    assert entry["LOGGER"] == "device.app"
    assert written(stderr_file) == ""  # not twice: journald would store stderr too


@pytest.mark.parametrize(
    ("level", "priority"),
    [(logging.DEBUG, "7"), (logging.INFO, "6"), (logging.ERROR, "3"), (logging.CRITICAL, "2")],
)
def test_journal_priority_follows_the_level(
    stderr_file: TextIO,
    journal_sent: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    level: int,
    priority: str,
) -> None:
    as_stderr(stderr_file, monkeypatch)
    monkeypatch.setenv("JOURNAL_STREAM", journal_stream_of(stderr_file))
    setup_logging("debug")
    logging.getLogger("device.test").log(level, "hello")
    assert [entry["PRIORITY"] for entry in journal_sent] == [priority]


def test_journal_entry_keeps_the_traceback(
    stderr_file: TextIO, journal_sent: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    as_stderr(stderr_file, monkeypatch)
    monkeypatch.setenv("JOURNAL_STREAM", journal_stream_of(stderr_file))
    setup_logging("info")
    try:
        raise RuntimeError("LED strip gone")
    except RuntimeError:
        logging.getLogger("device.app").exception("LED update failed")
    assert "RuntimeError: LED strip gone" in journal_sent[0]["MESSAGE"]


def test_journal_stream_without_systemd_python_prefixes_priorities(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_stderr(stderr_file, monkeypatch)
    monkeypatch.setenv("JOURNAL_STREAM", journal_stream_of(stderr_file))
    monkeypatch.setattr(device.logs, "_load_journal", lambda: None)
    setup_logging("info")
    log = logging.getLogger("device.app")
    log.warning("network down")
    log.info("connected")
    assert written(stderr_file).splitlines() == [
        "<4>WARNING device.app: network down",
        "<6>INFO device.app: connected",
    ]


# -- plain stderr -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "journal_stream",
    [None, "not-a-pair", "12:abc", "OTHER"],
    ids=["unset", "malformed", "not-numbers", "another-stream"],
)
def test_anything_but_our_stream_gets_plain_lines(
    stderr_file: TextIO,
    sent: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    journal_stream: str | None,
) -> None:
    as_stderr(stderr_file, monkeypatch)
    if journal_stream is None:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    elif journal_stream == "OTHER":
        # Inherited from a parent whose stderr was the journal: same device, other inode.
        monkeypatch.setenv("JOURNAL_STREAM", journal_stream_of(stderr_file, inode_offset=1))
    else:
        monkeypatch.setenv("JOURNAL_STREAM", journal_stream)
    setup_logging("info")
    logging.getLogger("device.app").warning("state %s", "offline", extra={STATE_FIELD: "x"})
    assert written(stderr_file) == "WARNING device.app: state offline\n"
    assert sent == []


def test_stderr_without_a_descriptor_is_not_the_journal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    monkeypatch.setenv("JOURNAL_STREAM", "1:1")
    setup_logging("info")
    logging.getLogger("edgevoice").info("API key from %s", "the credential")
    assert buffer.getvalue() == "INFO edgevoice: API key from the credential\n"


def test_stream_is_journal_compares_device_and_inode(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        env = {"JOURNAL_STREAM": journal_stream_of(a)}
        assert stream_is_journal(a, env)
        assert not stream_is_journal(b, env)
        assert not stream_is_journal(None, env)
        assert not stream_is_journal(a, {})


# -- levels -----------------------------------------------------------------------------
def test_setup_twice_leaves_one_handler(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_stderr(stderr_file, monkeypatch)
    setup_logging("info")
    setup_logging("warning")
    assert len(logging.getLogger().handlers) == 1
    logging.getLogger("device.app").info("hidden")
    logging.getLogger("device.app").warning("shown")
    assert written(stderr_file) == "WARNING device.app: shown\n"


def test_reconfigure_level_keeps_the_handler(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_stderr(stderr_file, monkeypatch)
    setup_logging("info")
    handler = logging.getLogger().handlers[0]
    log = logging.getLogger("device.app")
    log.debug("before")
    reconfigure_level("debug")
    log.debug("after")
    assert logging.getLogger().handlers == [handler]
    assert written(stderr_file) == "DEBUG device.app: after\n"


def test_websockets_frames_stay_out_even_at_debug(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_stderr(stderr_file, monkeypatch)
    setup_logging("debug")
    logging.getLogger("websockets.client").debug("> TEXT '{\"type\": ...}'")
    reconfigure_level("error")
    assert logging.getLogger("websockets").level == logging.ERROR
    assert written(stderr_file) == ""


def test_unknown_level_means_info(stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch) -> None:
    as_stderr(stderr_file, monkeypatch)
    setup_logging("chatty")
    assert logging.getLogger().level == logging.INFO
