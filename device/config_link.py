"""[link] and the token keys of [realtime]: how the speaker keeps its link to the service.

Declared here rather than in ``device.config`` to keep that module small; [link] is
one section of ``Config`` like the others, checked by the same rules. It covers the
life of sessions rather than what a session is asked to do: keepalive pings, the
rotation before the service's 60-minute limit (and the recent turns carried over
into the next session), and the sentence the speaker says at its first session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from device.config_rules import (
    _float_range,
    _int_range,
    _key,
    _secret_url,
    _string,
    _text,
)

DEFAULT_DISCLOSURE = "Hello! Just so you know: you are talking with an AI voice, not a person."
MAX_DISCLOSURE_CHARS = 500
SESSION_LIFETIME_S = 3600  # the service ends every session after 60 minutes
TOKEN_LIFETIME_RANGE_S = (10, 7200)  # what POST /v1/realtime/client_secrets accepts


def _token_url(value: Any) -> str:
    """ "" (off), an https:// URL, or http:// to this machine (a local simulator or proxy)."""
    text = _string(value)
    if text == "":
        return text
    return _secret_url(
        text,
        allowed='"" (off) or https://host/path',
        secret_from="the device's credential comes from realtime.token_auth_file or the API key",
        crossing="the credential",
    )


TOKEN_URL = _token_url
TOKEN_LIFETIME_S = _int_range(*TOKEN_LIFETIME_RANGE_S)


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """[link]: keepalive, session rotation with re-seeding, and the AI disclosure."""

    ping_interval_s: float = _key(20.0, _float_range(0.1, 300))
    """How often the device pings the service, so a silent server is noticed."""
    ping_timeout_s: float = _key(20.0, _float_range(0.1, 300))
    """How long a ping may go unanswered before the device reconnects."""
    rotate_before_s: float = _key(300.0, _float_range(0, SESSION_LIFETIME_S - 60))
    """A new session is opened this long before the service ends the current one (at
    60 minutes), at the first quiet moment; 0: only when the service ends it."""
    reseed_turns: int = _key(10, _int_range(0, 100))
    """Recent turns (user and assistant, as text) carried into the next session."""
    reseed_chars: int = _key(4000, _int_range(0, 100_000))
    """At most this much text of them, the newest kept."""
    disclosure: str = _key(DEFAULT_DISCLOSURE, _text(MAX_DISCLOSURE_CHARS))
    """Said once, at the device's first session, until heard to the end; "" says nothing."""
