"""What happens during a soak: a seeded sequence of episodes, each one user turn with
at most one thing going wrong, and what the daemon must show for it afterwards.

Pure: a ``random.Random`` in, ``Episode`` values out. Faults use the simulator's
grammar (``device/realtime/sim_faults.py``); a spec with ``@EVENT#K`` is armed on
the open connection just before the turn, so ``#K`` counts within that turn.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# A one-word reply in the tone voice lasts 1.5 s: 15 audio deltas of 100 ms. A
# trigger on delta #2..#5 therefore always falls inside the reply.
MID_REPLY_DELTAS = (2, 3, 4, 5)
BAD_FRAMES = ("garbage", "non_object", "binary", "bad_field")
CLOSE_CODES_RETRIED = (1000, 1001, 1011, 1012, 1013)
STATUS_RETRIED = ("http:500", "http:503", "http:429")


@dataclass(frozen=True)
class Episode:
    """One turn and its fault.

    ``inject``: armed on the open connection before the question is spoken.
    ``handshake``: an HTTP fault for the next handshake (a closing fault in
    ``inject`` makes that handshake happen). ``unplug_s``: the audio device is
    pulled this long, ``unplug_after_s`` seconds after the question starts.
    ``reply``: the reply is heard to its end (the connection outlives the turn).
    ``bad_frames``: frames the daemon must count as bad. ``needs_person``: the
    daemon goes to FAULT and retries slowly (minutes).
    """

    name: str
    inject: tuple[str, ...] = ()
    handshake: str | None = None
    unplug_s: float = 0.0
    unplug_after_s: float = 0.0
    reply: bool = True
    bad_frames: int = 0
    needs_person: bool = False

    def faults(self) -> list[str]:
        """The fault specs the simulator reports as fired, in order."""
        fired = list(self.inject)
        return [*fired, self.handshake] if self.handshake else fired


def _delta(rng: random.Random) -> str:
    return f"response.output_audio.delta#{rng.choice(MID_REPLY_DELTAS)}"


def _clean(rng: random.Random) -> Episode:
    return Episode("turn")


def _bad_frame(rng: random.Random) -> Episode:
    kind = rng.choice(BAD_FRAMES)
    trigger = rng.choice(("response.created", _delta(rng)))
    return Episode(f"bad frame {kind}", (f"{kind}@{trigger}",), bad_frames=1)


def _unknown_event(rng: random.Random) -> Episode:
    return Episode("unknown event", (f"unknown_event@{_delta(rng)}",))


def _error_event(rng: random.Random) -> Episode:
    code = rng.choice(("", ":rate_limit_exceeded", ":invalid_value"))
    return Episode("error event", (f"error{code}@response.created",))


def _slow_server(rng: random.Random) -> Episode:
    # Silent for a few seconds mid-reply, well inside the keepalive's 40 s.
    seconds = rng.choice((2, 5, 10))
    return Episode("slow server", (f"stall:{seconds}@{_delta(rng)}",))


def _drop_mid_reply(rng: random.Random) -> Episode:
    return Episode("drop mid-reply", (f"drop@{_delta(rng)}",), reply=False)


def _stalled_server(rng: random.Random) -> Episode:
    # Silent for a minute: the keepalive (20 s ping, 20 s timeout) gives up first. (A
    # stall for good would keep the simulator's side of the socket until it stops.)
    return Episode("stalled server", ("stall:60@response.created",), reply=False)


def _close(rng: random.Random) -> Episode:
    code = rng.choice(CLOSE_CODES_RETRIED)
    return Episode(f"close {code}", (f"close:{code}@response.done",), reply=False)


def _expiry(rng: random.Random) -> Episode:
    return Episode("session expired", ("expire@response.done",), reply=False)


def _refused_handshake(rng: random.Random) -> Episode:
    status = rng.choice((*STATUS_RETRIED, "http:429:retry-after=" + str(rng.randint(1, 30))))
    return Episode(
        f"handshake {status}", ("close:1012@response.done",), handshake=status, reply=False
    )


def _unplug(rng: random.Random) -> Episode:
    # Pulled at any point of the turn, for a moment or for long: the question and the
    # reply pause with the stream (nothing is lost) and go on once it is reopened.
    return Episode(
        "unplugged", unplug_s=rng.uniform(0.5, 20.0), unplug_after_s=rng.uniform(0.0, 4.0)
    )


def _needs_person(rng: random.Random) -> Episode:
    if rng.random() < 0.5:
        return Episode(
            "key refused", ("close:1012@response.done",), handshake="http:401",
            reply=False, needs_person=True,
        )  # fmt: skip
    spec = rng.choice(("fatal_error@response.created", "close:1008@response.done"))
    return Episode("fatal close", (spec,), reply=False, needs_person=True)


# (weight, maker): most turns go well, most faults are the everyday ones; a
# refused key costs minutes of slow retry, so it comes rarely.
CATALOGUE: tuple[tuple[float, Callable[[random.Random], Episode]], ...] = (
    (6, _clean),
    (3, _bad_frame),
    (1, _unknown_event),
    (1.5, _error_event),
    (1, _slow_server),
    (2, _drop_mid_reply),
    (0.7, _stalled_server),
    (1.5, _close),
    (0.7, _expiry),
    (1.5, _refused_handshake),
    (1.5, _unplug),
    (0.25, _needs_person),
)


def next_episode(rng: random.Random) -> Episode:
    weights = [weight for weight, _ in CATALOGUE]
    [(_, make)] = rng.choices(CATALOGUE, weights=weights)
    return make(rng)


def warm_up() -> list[Episode]:
    """One of every kind, so each code path has run (and cached what it caches)
    before memory is measured."""
    rng = random.Random(0)
    return [make(rng) for _, make in CATALOGUE]
