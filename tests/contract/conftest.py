"""Every event a contract test's simulator sent must be GA-valid, checked after the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.oracle import SENT_BY_SIMULATOR, server_problems


@pytest.fixture(autouse=True)
def every_server_event_is_ga_valid() -> Iterator[None]:
    SENT_BY_SIMULATOR.clear()
    yield
    problems = [p for event in SENT_BY_SIMULATOR for p in server_problems(event)]
    assert problems == [], "\n".join(problems)
