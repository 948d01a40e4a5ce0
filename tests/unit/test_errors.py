from __future__ import annotations

import itertools

import pytest

from device.errors import (
    ConfigError,
    CredentialError,
    Decision,
    RemoteProtocolError,
    ServiceError,
    classify,
    classify_close,
    classify_status,
)
from device.link import BACKOFF_CAP_S, SLOW_RETRY_S, backoff_delay_s


def test_config_error_is_one_line_with_file_key_reason() -> None:
    err = ConfigError("/etc/edgevoice/edgevoice.toml", "realtime.voice", "bad voice")
    assert str(err) == "/etc/edgevoice/edgevoice.toml: realtime.voice: bad voice"
    assert "\n" not in str(err)


@pytest.mark.parametrize("code", [1000, 1001, 1006, 1009, 1011, 1012, 1013, None])
def test_transient_closes_retry_at_normal_pace(code: int | None) -> None:
    decision = classify_close(code)
    assert decision.retry and not decision.slow


@pytest.mark.parametrize("code", [1008, 4000])
def test_client_side_closes_retry_slowly(code: int) -> None:
    decision = classify_close(code)
    assert decision.retry and decision.slow
    assert str(code) in decision.reason


def test_http_statuses() -> None:
    assert classify_status(401).slow and classify_status(403).slow
    assert classify_status(429, 7.0).delay_s == 7.0
    assert not classify_status(503).slow and classify_status(503).delay_s == 0


def test_classify_exceptions() -> None:
    assert not classify(ConfigError("f", "k", "r")).retry
    assert not classify(CredentialError("no key")).retry
    assert classify(ServiceError("nope", 401)).slow
    assert classify(ServiceError("busy", 429, retry_after_s=7.5)).delay_s == 7.5
    assert classify(ConnectionRefusedError("refused")).retry
    assert classify(RemoteProtocolError("garbage")).retry


def test_backoff_grows_is_capped_and_jittered() -> None:
    retry = Decision(True, "x")
    low = [backoff_delay_s(a, retry, lambda: 0.0) for a in range(12)]
    high = [backoff_delay_s(a, retry, lambda: 1.0) for a in range(12)]
    assert low[0] == 0.5 and high[0] == 1.0
    assert all(b >= a for a, b in itertools.pairwise(high))
    assert max(high) == BACKOFF_CAP_S
    assert all(lo == hi / 2 for lo, hi in zip(low, high, strict=True))


def test_backoff_honours_retry_after_and_slow() -> None:
    assert backoff_delay_s(3, Decision(True, "429", delay_s=12.0), lambda: 0.3) == 12.0
    assert backoff_delay_s(0, Decision(True, "401", slow=True), lambda: 1.0) == SLOW_RETRY_S


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("2", 2.0),
        (" 7.5 ", 7.5),
        ("-1", None),
        ("nan", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
        ("999999", 3600.0),
    ],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    from device.realtime.client import retry_after

    assert retry_after(header) == seconds
