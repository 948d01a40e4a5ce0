#!/usr/bin/env python3
"""Coverage-guided fuzzing of what the service sends: the event parser and the session.

Each input is one WebSocket frame: text when it is UTF-8, else binary. The rule
is the one the connection loop relies on, the same as websockets' and h11's fuzzers:
the frame parses to a known event or an ``Unknown`` one, or is refused with
``RemoteProtocolError``. Any other exception, a hang or a crash is a finding; atheris
stops and writes the input to ``crash-<hash>``. The session is fed every frame in a
row, so state that a frame leaves behind (a half-known response, a truncated item)
meets the frames that follow.

Optional, and not part of CI: needs ``pip install atheris`` (3.0.0 was tried, on
CPython 3.11, x86-64 Linux). Run from the repository root:

    .venv/bin/python scripts/fuzz/parse_fuzz.py -max_total_time=300 out/fuzz/corpus
    .venv/bin/python scripts/fuzz/parse_fuzz.py crash-1a2b...   # replay one finding

Any libFuzzer option works (``-runs=N``, ``-max_len=65536``, ``-jobs=2``). The corpus
folder is seeded from the GA event fixtures the unit tests use, so the fuzzer starts
from real events instead of from nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:
    import atheris
except ImportError:
    sys.exit("atheris is not installed: pip install atheris (it is not needed by CI)")

from device.errors import RemoteProtocolError  # noqa: E402
from device.realtime.events import ServerEvent  # noqa: E402
from device.realtime.parse import parse_server_event  # noqa: E402
from device.realtime.session import RealtimeSession, SessionSettings  # noqa: E402

SESSION = RealtimeSession(SessionSettings())


def seed_corpus(folder: Path) -> None:
    """Write the GA fixtures (one event per file) into an empty corpus folder."""
    from tests.unit.test_events import GA_FIXTURES

    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        return
    for kind, event in GA_FIXTURES.items():
        (folder / kind).write_text(json.dumps(event), encoding="utf-8")


def test_one_input(data: bytes) -> None:
    global SESSION
    # As the socket delivers it: valid UTF-8 comes as a text frame, the rest as binary.
    frame: str | bytes
    try:
        frame = data.decode("utf-8")
    except UnicodeDecodeError:
        frame = data
    try:
        event = parse_server_event(frame)
    except RemoteProtocolError:
        pass
    else:
        assert isinstance(event, ServerEvent), type(event)
    try:
        for event in SESSION.receive(frame):
            assert isinstance(event, ServerEvent), type(event)
    except RemoteProtocolError:
        pass
    if len(SESSION.data_to_send()) > 1000:  # answers the session queued; keep it small
        SESSION = RealtimeSession(SessionSettings())


def main() -> None:
    folders = [Path(arg) for arg in sys.argv[1:] if not arg.startswith("-")]
    for folder in folders:
        if not folder.is_file():
            seed_corpus(folder)
    atheris.instrument_all()  # coverage of every function loaded, the parser's included
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
