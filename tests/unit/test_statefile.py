"""State files: all of the old or all of the new, whatever fails on the way."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from device.statefile import (
    MAX_STATE_BYTES,
    StateWriteError,
    read_json,
    remove_stale_temp_files,
    write_json_atomic,
)

OLD = {"day": "2025-09-01", "cost_usd": 0.41}
NEW = {"day": "2025-09-01", "cost_usd": 0.52, "note": "café"}


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state file that holds OLD."""
    path = tmp_path / "usage.json"
    write_json_atomic(path, OLD)
    return path


def test_write_then_read(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    write_json_atomic(path, NEW)
    assert read_json(path) == (NEW, None)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert "café" in text  # readable with cat, not escaped
    assert names(tmp_path) == ["usage.json"]


def test_replacing_keeps_no_trace_of_the_old_content(state: Path) -> None:
    write_json_atomic(state, NEW)
    assert read_json(state) == (NEW, None)
    write_json_atomic(state, [1, 2, 3])
    assert read_json(state) == ([1, 2, 3], None)
    assert names(state.parent) == ["usage.json"]


def test_a_new_file_is_private_and_a_replaced_one_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    write_json_atomic(path, OLD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o640)
    write_json_atomic(path, NEW)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_the_file_and_its_directory_are_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_json_atomic(tmp_path / "usage.json", NEW)
    assert synced == ["file", "dir"]


def test_a_full_disk_midway_keeps_the_old_file(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    calls = 0

    def write(fd: int, data: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:  # part of the data reaches the disk, then it is full
            return real_write(fd, bytes(data[:7]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(StateWriteError) as caught:
        write_json_atomic(state, NEW)
    monkeypatch.undo()
    error = caught.value
    assert calls == 2
    assert isinstance(error, OSError)
    assert error.errno == errno.ENOSPC
    assert error.path == state
    assert error.filename == str(state)
    assert str(error) == f"cannot save {state}: No space left on device"
    assert read_json(state) == (OLD, None)
    assert names(state.parent) == ["usage.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("call", "code"),
    [("fsync", errno.EIO), ("replace", errno.EROFS), ("replace", errno.EACCES)],
)
def test_a_failing_flush_or_rename_keeps_the_old_file(
    state: Path, monkeypatch: pytest.MonkeyPatch, call: str, code: int
) -> None:
    def fail(*args: Any) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, call, fail)
    with pytest.raises(StateWriteError, match=f"cannot save {state}: {os.strerror(code)}"):
        write_json_atomic(state, NEW)
    monkeypatch.undo()
    assert read_json(state) == (OLD, None)
    assert names(state.parent) == ["usage.json"]


def test_a_missing_directory_is_a_write_error(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "usage.json"
    with pytest.raises(StateWriteError, match=f"cannot save {path}: No such file"):
        write_json_atomic(path, NEW)


def test_a_directory_that_cannot_be_flushed_is_tolerated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_json_atomic(tmp_path / "usage.json", NEW)
    assert read_json(tmp_path / "usage.json") == (NEW, None)


@pytest.mark.parametrize("data", [{"a": {1, 2}}, {"cost": float("nan")}, object()])
def test_data_that_is_not_json_fails_before_anything_is_written(state: Path, data: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        write_json_atomic(state, data)
    assert read_json(state) == (OLD, None)
    assert names(state.parent) == ["usage.json"]


# --- reading ------------------------------------------------------------------------


def test_a_missing_file_is_no_problem(tmp_path: Path) -> None:
    assert read_json(tmp_path / "usage.json") == (None, None)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b'{"day": "2025-09-01", "cost', "is not valid JSON (Unterminated string starting at"),
        (b'{"day": 1,}', "is not valid JSON (Expecting property name enclosed in double quotes"),
        (b"\x00\x00\x00\x00", "is not valid JSON (Expecting value at line 1, column 1)"),
        (b'{"note": "caf\xe9"}', "is not UTF-8 text (byte 0xe9 at offset 13)"),
        (b"[" * 100_000, "is not valid JSON (nested too deeply)"),
    ],
)
def test_a_corrupt_file_says_why(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "usage.json"
    path.write_bytes(content)
    value, problem = read_json(path)
    assert value is None
    assert problem is not None
    assert problem.startswith(why)


def test_any_json_value_is_returned_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    path.write_text(json.dumps([1, "two", None]))
    assert read_json(path) == ([1, "two", None], None)


def test_an_oversized_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    path.write_bytes(b" " * (MAX_STATE_BYTES + 1))
    assert read_json(path) == (None, "is larger than 1024 KiB")


def test_a_directory_in_place_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "usage.json").mkdir()
    assert read_json(tmp_path / "usage.json") == (None, "is a directory, not a state file")


def test_an_unreadable_file(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def deny(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "open", deny)
    assert read_json(state) == (None, "cannot be read (Permission denied)")


# --- leftovers of a power cut -------------------------------------------------------


def test_stale_temporary_files_are_removed(state: Path) -> None:
    directory = state.parent
    for name in (".usage.json.k3j2_x.tmp", ".usage.json.a.tmp", ".other.json.b.tmp", "notes.tmp"):
        (directory / name).write_text("{")
    removed = remove_stale_temp_files(state)
    assert sorted(p.name for p in removed) == [".usage.json.a.tmp", ".usage.json.k3j2_x.tmp"]
    assert names(directory) == [".other.json.b.tmp", "notes.tmp", "usage.json"]
    assert read_json(state) == (OLD, None)
    assert remove_stale_temp_files(directory / "missing" / "usage.json") == []


def test_saver_writes_the_newest_state_and_keeps_the_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from device import statefile
    from device.statefile import JsonSaver

    path = tmp_path / "state.json"

    async def body() -> JsonSaver:
        saver = JsonSaver(path, "kept in memory")
        for n in range(5):  # saves pile up faster than they are written
            saver.save({"n": n})
        await saver.flush()
        assert json.loads(path.read_text()) == {"n": 4}

        def full_disk(_path: Path, _data: object) -> None:
            raise statefile.StateWriteError(_path, OSError(28, "No space left on device"))

        monkeypatch.setattr(statefile, "write_json_atomic", full_disk)
        saver.save({"n": 5})
        await saver.flush()
        return saver

    saver = asyncio.run(body())
    assert saver.failures == 1
    assert json.loads(path.read_text()) == {"n": 4}
