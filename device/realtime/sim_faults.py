"""Fault injection for the simulator: what the service (or the network) does wrong.

``drop@response.output_audio.delta#3`` aborts the TCP connection after the 3rd audio
delta; ``http:429:retry-after=2`` refuses the handshake. Grammar: ``SPEC_GRAMMAR``. WHEN is
``open`` (right after the upgrade, before ``session.created``; the default) or a server
event type, ``#K`` meaning after the K-th one on that connection; HTTP faults fire at the
handshake. Connections are counted by handshake from 1, refused ones included. A fault
fires at most once per connection, on connections ``conn`` .. ``conn + times - 1``
(``times=all``: every connection from ``conn`` on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal, get_args

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from device.realtime.sim_schema import SimError

if TYPE_CHECKING:
    from device.realtime.sim_session import SimulatorSession

FaultKind = Literal[
    "drop", "stall", "garbage", "unknown_event", "error", "fatal_error", "expire", "close",
    "http_status", "binary", "oversized", "non_object", "bad_field", "incomplete", "failed",
]  # fmt: skip
KINDS: tuple[str, ...] = get_args(FaultKind)

OVERSIZED_BYTES = 16 * 1024 * 1024 + 1  # one byte over the daemon's default frame limit
MAX_OVERSIZED_BYTES = 65 * 1024 * 1024
CLOSE_BETA = 4000
CLOSE_GOING_AWAY = 1001
BETA_MESSAGE = (
    "The Realtime Beta API is no longer supported. Please use the GA interface "
    "(remove the 'OpenAI-Beta' header)."
)
SPEC_GRAMMAR = (
    "KIND[:ARG][@open|@EVENT[#K]][,conn=N][,times=N|all] with KIND one of "
    "drop, stall[:SECONDS], garbage, non_object, binary, oversized[:BYTES], "
    "unknown_event[:TYPE], bad_field[:FIELD|:-FIELD], error[:CODE], fatal_error, expire, "
    "close[:CODE], incomplete[:content_filter|:max_output_tokens], failed[:CODE], "
    "http:STATUS[:retry-after=SECONDS]"
)

# GA server event types (protocol reference, section 4): a trigger must name one.
_SERVER_EVENT_TABLE = """
    session.created session.updated error rate_limits.updated
    conversation.item.added conversation.item.done conversation.item.retrieved
    conversation.item.truncated conversation.item.deleted
    input_audio_buffer.speech_started input_audio_buffer.speech_stopped
    input_audio_buffer.committed input_audio_buffer.cleared input_audio_buffer.timeout_triggered
    conversation.item.input_audio_transcription.delta
    conversation.item.input_audio_transcription.completed
    conversation.item.input_audio_transcription.failed
    conversation.item.input_audio_transcription.segment
    response.created response.done response.output_item.added response.output_item.done
    response.content_part.added response.content_part.done
    response.output_audio.delta response.output_audio.done
    response.output_audio_transcript.delta response.output_audio_transcript.done
    response.output_text.delta response.output_text.done
    response.function_call_arguments.delta response.function_call_arguments.done
    response.mcp_call_arguments.delta response.mcp_call_arguments.done
    response.mcp_call.in_progress response.mcp_call.completed response.mcp_call.failed
    mcp_list_tools.in_progress mcp_list_tools.completed mcp_list_tools.failed
"""
SERVER_EVENTS = frozenset(_SERVER_EVENT_TABLE.split())
_HTTP_ERRORS = frozenset(int(status) for status in HTTPStatus if status >= 400)
_SENDABLE_CLOSE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
_CODE = re.compile(r"[a-z][a-z0-9_]*")
_EVENT_TYPE = re.compile(r"[a-z_]+(\.[a-z_]+)*")
_DEFAULTS: dict[str, str | int | None] = {
    "close": 1000, "error": "server_error", "oversized": OVERSIZED_BYTES,
    "unknown_event": "conversation.item.annotated",
    "incomplete": "content_filter", "failed": "server_error",
}  # fmt: skip
_HTTP_MESSAGES = {
    401: ("Incorrect API key provided.", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "unsupported_country_region_territory"),
    429: ("Rate limit reached for requests. Please try again later.", "rate_limit_exceeded"),
}
_ERROR_MESSAGES = {
    "server_error": "The server had an error while processing your request. Sorry about that!",
    "rate_limit_exceeded": "Rate limit reached for tokens. Please try again later.",
}

Event = dict[str, Any]
Frame = Event | str | bytes  # an Event is a protocol event; str/bytes go out as they are


@dataclass(frozen=True)
class Trigger:
    """When a fault fires: ``event`` None means as soon as the connection opens."""

    event: str | None = None
    nth: int = 1  # after the nth ``event`` on that connection
    connection: int = 1  # the first connection (by handshake, from 1) it fires on

    def __post_init__(self) -> None:
        if self.event is not None and self.event not in SERVER_EVENTS:
            beta = " (a beta name?)" if _EVENT_TYPE.fullmatch(self.event) else ""
            raise ValueError(f"{self.event!r} is not a GA server event type{beta}")
        if self.nth < 1 or self.connection < 1:
            raise ValueError("#K and conn=N count from 1")


@dataclass(frozen=True)
class Fault:
    """One fault; ``value`` is kind-specific (see ``SPEC_GRAMMAR``), defaults filled in."""

    kind: FaultKind
    at: Trigger = field(default_factory=Trigger)
    value: str | int | float | None = None
    retry_after_s: int | None = None  # http_status only: the Retry-After header
    times: int | None = 1  # connections it fires on; None: every one from at.connection

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.value is None and self.kind in _DEFAULTS:
            object.__setattr__(self, "value", _DEFAULTS[self.kind])
        _check_value(self)
        if self.retry_after_s is not None and (
            self.kind != "http_status" or self.retry_after_s < 0
        ):
            raise ValueError("retry-after takes whole seconds >= 0 and only for http faults")
        if self.kind == "http_status" and self.at.event is not None:
            raise ValueError("http faults fire at the handshake; drop the @ part")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or all)")

    def fires_on(self, connection: int) -> bool:
        first = self.at.connection
        return connection >= first and (self.times is None or connection < first + self.times)

    def __str__(self) -> str:
        """The spec that ``parse_fault`` reads back to this fault."""
        text: str = "http" if self.kind == "http_status" else self.kind
        if self.value is not None and self.value != _DEFAULTS.get(self.kind):
            text += f":{self.value:g}" if isinstance(self.value, float) else f":{self.value}"
        if self.retry_after_s is not None:
            text += f":retry-after={self.retry_after_s}"
        if self.at.event is not None:
            text += f"@{self.at.event}" + (f"#{self.at.nth}" if self.at.nth != 1 else "")
        if self.at.connection != 1:
            text += f",conn={self.at.connection}"
        if self.times != 1:
            text += f",times={'all' if self.times is None else self.times}"
        return text


def _check_value(fault: Fault) -> None:
    kind, value = fault.kind, fault.value
    if kind in ("drop", "garbage", "non_object", "binary", "fatal_error", "expire"):
        if value is not None:
            raise ValueError(f"{kind} takes no argument")
    elif (
        kind == "stall"
        and value is not None
        and (isinstance(value, str) or not 0 < value < math.inf)
    ):
        raise ValueError("stall takes seconds > 0 (none: until the client gives up)")
    elif kind == "close":
        if not isinstance(value, int) or not (value in _SENDABLE_CLOSE or 3000 <= value < 5000):
            hint = "; use drop for 1006" if value == 1006 else ""
            raise ValueError(f"close code {value} cannot be sent{hint}")
    elif kind == "http_status":
        if not isinstance(value, int) or value not in _HTTP_ERRORS:
            raise ValueError(f"http takes an HTTP error status 400-599, got {value}")
    elif kind == "oversized":
        if not isinstance(value, int) or not 1 <= value <= MAX_OVERSIZED_BYTES:
            raise ValueError(f"oversized takes 1..{MAX_OVERSIZED_BYTES} bytes")
    elif kind == "incomplete":
        if value not in ("content_filter", "max_output_tokens"):
            raise ValueError("incomplete takes content_filter or max_output_tokens")
    elif kind in ("error", "failed"):
        if not isinstance(value, str) or not _CODE.fullmatch(value):
            raise ValueError("error takes an error code such as server_error")
    elif kind == "unknown_event":
        if (
            not isinstance(value, str)
            or not _EVENT_TYPE.fullmatch(value)
            or (value in SERVER_EVENTS)
        ):
            raise ValueError(f"unknown_event needs a type the protocol lacks, got {value!r}")
    elif (
        kind == "bad_field"
        and value is not None
        and (not isinstance(value, str) or not _CODE.fullmatch(value.removeprefix("-")))
    ):
        raise ValueError("bad_field takes a field name, or -FIELD to leave it out")


def parse_fault(spec: str) -> Fault:
    """Read a fault spec; a bad one raises one ValueError line that shows the grammar."""
    try:
        return _parse(spec.strip())
    except ValueError as exc:
        raise ValueError(f"bad fault {spec!r}: {exc}; expected {SPEC_GRAMMAR}") from None


def _parse(spec: str) -> Fault:
    head, *options = spec.split(",")
    what, at_sign, when = head.partition("@")
    name, *args = what.split(":")
    kind = {"http": "http_status"}.get(name, name)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {name!r}")
    if at_sign and not when:
        raise ValueError("@ needs open or a server event type")
    if at_sign and (when == "handshake") != (kind == "http_status"):
        raise ValueError("http faults fire @handshake only; other faults @open or @EVENT")
    value: str | int | float | None = None
    retry_after: int | None = None
    if kind == "http_status":
        if not args:
            raise ValueError("http needs a status, e.g. http:503")
        value = _int(args[0], "HTTP status")
        for arg in args[1:]:
            key, eq, seconds = arg.partition("=")
            if key.lower() != "retry-after" or not eq or retry_after is not None:
                raise ValueError(f"unexpected {arg!r}; http takes retry-after=SECONDS")
            retry_after = _int(seconds, "retry-after")
    elif len(args) > 1:
        raise ValueError(f"{kind} takes at most one argument")
    elif args and kind in ("close", "oversized"):
        value = _int(args[0], f"{kind} argument")
    elif args:
        value = _float(args[0]) if kind == "stall" else args[0]
    connection, times = _options(options)
    trigger = _trigger("" if kind == "http_status" else when, connection)
    return Fault(kind, trigger, value, retry_after, times)  # type: ignore[arg-type]


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"stall takes seconds, got {text!r}") from None


def _trigger(when: str, connection: int) -> Trigger:
    if when in ("", "open"):
        return Trigger(None, 1, connection)
    event, _, nth = when.partition("#")
    return Trigger(event, _int(nth, "#K") if nth else 1, connection)


def _options(options: list[str]) -> tuple[int, int | None]:
    given: dict[str, str] = {}
    for option in options:
        key, eq, text = option.partition("=")
        if not eq or key not in ("conn", "times") or key in given:
            raise ValueError(f"unexpected option {option!r}; use conn=N or times=N|all")
        given[key] = text
    times = given.get("times", "1")
    return _int(given.get("conn", "1"), "conn"), None if times == "all" else _int(times, "times")


def _int(text: str, what: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{what} must be a whole number, got {text!r}")
    return int(text)


# -- running faults ------------------------------------------------------------------


class ConnectionFaults:
    """The faults of one connection: counts the events sent and says what fires when."""

    def __init__(self, faults: Sequence[Fault], connection: int) -> None:
        # Each armed fault with the count of its event on this connection it fires at.
        self._armed = [
            (f, f.at.nth) for f in faults if f.kind != "http_status" and f.fires_on(connection)
        ]
        self._sent: Counter[str] = Counter()

    def arm(self, fault: Fault) -> None:
        """Arm ``fault`` on this open connection now: its ``#K`` counts from here."""
        event = fault.at.event
        if fault.kind == "http_status" or event is None:
            raise ValueError(f"{fault} cannot fire on an open connection; give it @EVENT")
        self._armed.append((fault, self._sent[event] + fault.at.nth))

    def at_open(self) -> list[Fault]:
        return self._take(lambda trigger, nth: trigger.event is None)

    def after(self, event_type: str) -> list[Fault]:
        """Faults due now that one more ``event_type`` event went out."""
        count = self._sent[event_type] = self._sent[event_type] + 1
        return self._take(lambda trigger, nth: trigger.event == event_type and nth == count)

    def _take(self, due: Callable[[Trigger, int], bool]) -> list[Fault]:
        fired = [pair for pair in self._armed if due(pair[0].at, pair[1])]
        self._armed = [pair for pair in self._armed if pair not in fired]
        return [fault for fault, _ in fired]


def handshake_fault(faults: Sequence[Fault], connection: int) -> Fault | None:
    """The HTTP fault that answers this handshake, if any."""
    return next((f for f in faults if f.kind == "http_status" and f.fires_on(connection)), None)


def http_answer(fault: Fault) -> tuple[HTTPStatus, dict[str, Any], dict[str, str]]:
    """Status, JSON body and extra headers for an HTTP fault."""
    assert isinstance(fault.value, int)
    status = HTTPStatus(fault.value)
    message, code = _HTTP_MESSAGES.get(status, (f"{status.phrase}.", None))
    error_type = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": error_type, "code": code}}
    headers = {} if fault.retry_after_s is None else {"Retry-After": str(fault.retry_after_s)}
    return status, body, headers


@dataclass(frozen=True)
class Action:
    """What a fault does on an open connection, in this order."""

    frames: tuple[Frame, ...] = ()
    close: tuple[int, str] | None = None  # then close with this code and reason
    abort: bool = False  # then abort the TCP connection (no close frame)
    stall_s: float | None = None  # then go silent this long (math.inf: until the client leaves)


class Stall:
    """A stalled connection: nothing is sent and nothing read, so pings go unanswered."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()  # the reader waits on this: cleared while stalled
        self.reading.set()
        self._over = asyncio.Event()

    async def run(self, ws: ServerConnection, seconds: float) -> None:
        """Stall for ``seconds`` (math.inf: until ``abort``), then carry on if still open."""
        self.reading.clear()
        ws.transport.pause_reading()
        if ws.keepalive_task is not None:
            ws.keepalive_task.cancel()  # the server's own pings stop too
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._over.wait(), None if seconds == math.inf else seconds)
        if ws.state is State.OPEN:
            if not ws.recv_messages.paused:
                ws.transport.resume_reading()
            ws.start_keepalive()
        self.reading.set()

    def abort(self, ws: ServerConnection) -> None:
        """End a stall by dropping the connection (the simulator is stopping)."""
        if not self.reading.is_set():
            ws.transport.abort()
            self._over.set()


def action(fault: Fault, trigger: Event | None, session: SimulatorSession) -> Action:
    """The frames and the ending for ``fault``; ``trigger`` is the event it fired after."""
    kind, value = fault.kind, fault.value
    if kind == "drop":
        return Action(abort=True)
    if kind == "stall":
        return Action(stall_s=math.inf if value is None else float(value))
    if kind == "close":
        assert isinstance(value, int)
        return Action(close=(value, "closed by the service"))
    if kind == "expire":
        return Action(tuple(session.expired()), close=(CLOSE_GOING_AWAY, "session_expired"))
    if kind == "fatal_error":
        event = session.error(SimError("beta_api_shape_disabled", BETA_MESSAGE), None)
        return Action((event,), close=(CLOSE_BETA, "beta_api_shape_disabled"))
    if kind in ("incomplete", "failed"):  # the streaming (or next) reply ends at its next step
        session.endings.add(kind, str(value))
        return Action()
    if kind == "error":
        code = str(value)
        message = _ERROR_MESSAGES.get(code, f"The request failed ({code}).")
        error_type = "server_error" if code == "server_error" else "invalid_request_error"
        return Action((session.error(SimError(code, message, None, error_type), None),))
    return Action((_bad_frame(fault, trigger, session.new_id("event")),))


def _bad_frame(fault: Fault, trigger: Event | None, event_id: str) -> str | bytes:
    kind = fault.kind
    if kind == "garbage":
        return '{"type": "response.output_audio.delta", "delta": "AAAA'  # cut short
    if kind == "non_object":
        return json.dumps([{"type": "session.updated", "event_id": event_id}])
    if kind == "binary":
        return bytes(480)  # 10 ms of 24 kHz PCM16 silence, as a binary frame
    if kind == "unknown_event":
        return json.dumps({"type": fault.value, "event_id": event_id, "item_id": "item_0"})
    if kind == "oversized":
        assert isinstance(fault.value, int)
        head = f'{{"type": "conversation.item.retrieved", "event_id": "{event_id}", "padding": "'
        text = head + "A" * max(0, fault.value - len(head) - 2) + '"}'
        return text[: fault.value]  # ASCII: characters are bytes
    return json.dumps(_wrong_field(fault, trigger, event_id))


def _wrong_field(fault: Fault, trigger: Event | None, event_id: str) -> Event:
    """A copy of ``trigger`` (or an audio delta) with one field of the wrong type, or none."""
    event = (
        dict(trigger)
        if trigger is not None
        else {
            "type": "response.output_audio.delta",
            "response_id": "resp_0",
            "item_id": "item_0",
            "output_index": 0,
            "content_index": 0,
            "delta": "AAAA",
        }
    )
    event["event_id"] = event_id
    named = fault.value if isinstance(fault.value, str) else ""
    payload = [key for key in event if key not in ("type", "event_id")]
    fallback = "delta" if "delta" in event else (payload or ["event_id"])[0]
    target = named.removeprefix("-") or fallback
    if named.startswith("-"):
        event.pop(target, None)
    else:
        event[target] = _wrong_type(event.get(target))
    return event


def _wrong_type(value: Any) -> Any:
    """A string, object or array becomes a number; a number, boolean or null a string."""
    return 5 if isinstance(value, (str, dict, list)) else json.dumps(value)
