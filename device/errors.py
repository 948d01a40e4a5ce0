"""One error tree for the daemon, and one function that decides retry or give up.

    EdgevoiceError
    ├── ConfigError          the installer's config is wrong (exit 78, no restart loop)
    ├── CredentialError      the API key is missing or unreadable (exit 78)
    ├── LocalProtocolError   we were asked to send something the protocol forbids
    ├── RemoteProtocolError  the server sent something the protocol forbids
    └── ServiceError         the service refused us (auth, quota, bad request)

Hardware faults are ``hw.ports.HardwareError`` (the hardware layer never
imports the daemon). Each class names whose fault it was; ``classify`` turns an exception or a
WebSocket close code into a decision the reconnect loop follows.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h; the unit uses RestartPreventExitStatus=78


class EdgevoiceError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(EdgevoiceError):
    """A config file, key, type or value is wrong.

    ``str()`` is one line: file, key, what is wrong, what is allowed.
    """

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {reason}")


class CredentialError(EdgevoiceError):
    """The API key is missing, empty or unreadable."""


class LocalProtocolError(EdgevoiceError, ValueError):
    """We tried to send something the Realtime protocol does not allow."""


class RemoteProtocolError(EdgevoiceError, ValueError):
    """The server sent a frame we cannot understand (not JSON, wrong shape...)."""


class ServiceError(EdgevoiceError):
    """The service refused the session: ``status`` is the HTTP status or close code."""

    def __init__(
        self, message: str, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(message)


@dataclass(frozen=True)
class Decision:
    """What to do after a failure: retry after ``delay_s`` (0 = use backoff) or stop."""

    retry: bool
    reason: str
    delay_s: float = 0.0
    slow: bool = False  # retry, but slowly: needs a person (bad key...) yet may recover


# Close codes worth reconnecting on (RFC 6455 and the Realtime service's use of them).
_RETRY_CLOSE = {
    1000: "server closed the session",
    1001: "server going away (session expired)",
    1005: "closed without status",
    1006: "connection dropped",
    # One oversized frame is no reason for minutes of silence: reconnect as usual
    # (the backoff still grows if the service keeps doing it).
    1009: "the service sent a message over our size limit",
    1011: "server error or keepalive timeout",
    1012: "service restart",
    1013: "try again later",
}
_FATAL_CLOSE = {
    1002: "protocol error",
    1003: "unsupported data",
    1007: "invalid payload",
    1008: "policy violation",
    1010: "extension negotiation",
    4000: "the service rejected the client's protocol",
}


def classify_close(code: int | None) -> Decision:
    """Decide what a WebSocket close code means for the reconnect loop."""
    if code is None:
        return Decision(True, "connection lost")
    if code in _RETRY_CLOSE:
        return Decision(True, f"close {code}: {_RETRY_CLOSE[code]}")
    if code in _FATAL_CLOSE:
        # Still retried, slowly: a speaker on a shelf should recover when the
        # service or a software update fixes it, without hammering the service.
        return Decision(True, f"close {code}: {_FATAL_CLOSE[code]}", slow=True)
    return Decision(True, f"close {code}")


def classify_status(status: int, retry_after_s: float | None = None) -> Decision:
    """Decide what an HTTP status at the WebSocket upgrade means."""
    if status in (401, 403):
        return Decision(True, f"HTTP {status}: the API key was refused", slow=True)
    if status == 429:
        return Decision(True, "HTTP 429: rate limited", delay_s=retry_after_s or 0.0)
    if status >= 500:
        return Decision(True, f"HTTP {status}: server error")
    return Decision(True, f"HTTP {status}: unexpected answer", slow=True)


def classify(exc: BaseException) -> Decision:
    """Decide retry or stop for an exception raised by the session loop."""
    if isinstance(exc, (ConfigError, CredentialError)):
        return Decision(False, str(exc))
    if isinstance(exc, ServiceError) and exc.status is not None:
        return classify_status(exc.status, exc.retry_after_s)
    if isinstance(exc, RemoteProtocolError):
        return Decision(True, f"protocol error from server: {exc}")
    if isinstance(exc, (OSError, TimeoutError, EOFError)):
        return Decision(True, f"network: {exc.__class__.__name__}: {exc}")
    return Decision(True, f"{exc.__class__.__name__}: {exc}")
