"""Small JSON state files that survive a power cut: all of the old or all of the new.

A speaker is unplugged whenever someone likes, so a state file is never written in
place. ``write_json_atomic`` writes a temporary file in the same directory, flushes
it to the storage, renames it over the old file and flushes the directory, so after
a crash the path holds either the previous content or the new one, never a mix.
A failed write (full SD card, read-only file system, no permission) leaves the old
file as it was and removes its temporary file.

These calls block on the storage (an fsync on an SD card can take a noticeable
fraction of a second): call them from a worker thread, never from the audio path.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_STATE_BYTES = 1024 * 1024  # state files are a few kB; the bound keeps a stray file out
_TEMP_SUFFIX = ".tmp"


class StateWriteError(OSError):
    """A state file could not be written; the previous file, if any, is unchanged."""

    def __init__(self, path: Path, cause: OSError) -> None:
        reason = cause.strerror or str(cause) or type(cause).__name__
        super().__init__(cause.errno, reason, str(path))
        self.path = path

    def __str__(self) -> str:
        return f"cannot save {self.path}: {self.strerror}"


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot sync a directory; the rename itself already happened.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and durably.

    A new file is private to the daemon's user (0600); a replaced one keeps its mode.

    Raises:
        StateWriteError: the directory is missing or not writable, the storage is
            full or failing; names the path. The old file is left intact (if only the
            final flush of the directory fails, the new content is in place but may
            not survive a power cut).
        TypeError, ValueError: ``data`` is not plain JSON (a bug of the caller);
            raised before anything is written.
    """
    text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False)
    payload = (text + "\n").encode("utf-8")
    directory = path.parent
    temp: str | None = None
    try:
        fd, temp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=_TEMP_SUFFIX, dir=directory)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(fd, stat.S_IMODE(path.stat().st_mode))
            _write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        temp = None
        _fsync_dir(directory)
    except OSError as exc:
        raise StateWriteError(path, exc) from exc
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def read_json(path: Path) -> tuple[Any | None, str | None]:
    """Read a state file: ``(value, None)``, ``(None, None)`` if missing, else ``(None, why)``.

    Never raises for what is in the file or for a file that cannot be read: a
    state file that is damaged must not stop the speaker; the caller logs ``why``
    and starts afresh.
    """
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        return None, "is a directory, not a state file"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if len(raw) > MAX_STATE_BYTES:
        return None, f"is larger than {MAX_STATE_BYTES // 1024} KiB"
    if not raw.strip():
        return None, "is empty"
    try:
        return json.loads(raw.decode("utf-8")), None
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    except RecursionError:
        return None, "is not valid JSON (nested too deeply)"


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Delete temporary files a power cut left behind next to ``path``; returns them.

    Call once at start, before anything writes ``path``.
    """
    prefix, removed = _temp_prefix(path), []
    with contextlib.suppress(OSError):
        for candidate in path.parent.iterdir():
            if candidate.name.startswith(prefix) and candidate.name.endswith(_TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    candidate.unlink()
                    removed.append(candidate)
    return removed


class JsonSaver:
    """Saves one JSON state file from the event loop: the write runs in a worker
    thread, one at a time, and only the newest state is written when saves pile up.
    A failed write is logged with ``consequence`` and counted; the old file stays."""

    def __init__(self, path: Path, consequence: str) -> None:
        self.path = path
        self._consequence = consequence
        self._pending: Any = None
        self._has_pending = False
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    def save(self, data: Any) -> None:
        """Queue ``data`` (a JSON value taken now) to be written; call on the loop."""
        self._pending, self._has_pending = data, True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write_pending())

    async def flush(self) -> None:
        """Wait until everything queued is written (or has failed)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _write_pending(self) -> None:
        while self._has_pending:
            data, self._pending, self._has_pending = self._pending, None, False
            try:
                await asyncio.to_thread(write_json_atomic, self.path, data)
            except StateWriteError as exc:
                self.failures += 1
                log.warning("%s; %s", exc, self._consequence)
