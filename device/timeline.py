"""The event timeline of a conversation, and the per-turn latencies it shows.

The daemon marks what happens (local VAD, server events, the first reply
sample reaching the DAC...) with a monotonic time; ``turns()`` pairs the marks
into turns and ``render()`` prints them for a person.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Mark names, in the order a turn normally runs.
LOCAL_SPEECH_START = "local speech start"
LOCAL_SPEECH_END = "local speech end"
SPEECH_STARTED = "server speech_started"
SPEECH_STOPPED = "server speech_stopped"
RESPONSE_CREATED = "response.created"
FIRST_AUDIO_DELTA = "first audio delta"
FIRST_DAC_SAMPLE = "first reply sample at DAC"
RESPONSE_DONE = "response.done"
PLAYBACK_FINISHED = "reply playback finished"
PLAYBACK_INTERRUPTED = "reply playback interrupted"
# Marks that explain a turn without being part of its latencies.
TALK_PRESSED = "talk button pressed"
TALK_RELEASED = "talk button released"
USER_TRANSCRIPT = "user transcript"
IDLE_TIMEOUT = "server idle timeout"
REPLY_ENDED_EARLY = "reply ended early"
MIC_MUTED = "microphone muted"
MIC_UNMUTED = "microphone unmuted"


@dataclass(frozen=True)
class Mark:
    at_s: float
    name: str
    detail: str = ""


@dataclass(frozen=True)
class Turn:
    """Latencies of one user turn and its reply, in milliseconds (None = not seen)."""

    index: int
    speech_end_to_server_stop_ms: float | None  # server VAD's end-of-turn decision
    server_stop_to_first_delta_ms: float | None  # the service's time to first audio
    first_delta_to_dac_ms: float | None  # what the device adds before the speaker plays
    speech_end_to_dac_ms: float | None  # what the user waits: silence until the reply
    reply_played_ms: float | None  # first to last reply sample at the DAC


def _ms(start: Mark | None, end: Mark | None) -> float | None:
    if start is None or end is None:
        return None
    return (end.at_s - start.at_s) * 1000.0


class Timeline:
    """Collects marks; safe to use from the event loop only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.origin_s = clock()
        self.marks: list[Mark] = []

    def mark(self, name: str, detail: str = "", *, at_s: float | None = None) -> None:
        self.marks.append(Mark(self._clock() if at_s is None else at_s, name, detail))

    def count(self, name: str) -> int:
        return sum(1 for m in self.marks if m.name == name)

    def turns(self) -> list[Turn]:
        """One Turn per response.created, with the marks around it."""
        ordered = sorted(self.marks, key=lambda m: m.at_s)
        turns = []
        for index, created in enumerate(m for m in ordered if m.name == RESPONSE_CREATED):

            def last_before(name: str, at_s: float = created.at_s) -> Mark | None:
                found = [m for m in ordered if m.name == name and m.at_s <= at_s]
                return found[-1] if found else None

            def first_after(name: str, at_s: float = created.at_s) -> Mark | None:
                return next((m for m in ordered if m.name == name and m.at_s >= at_s), None)

            speech_end = last_before(LOCAL_SPEECH_END)
            server_stop = last_before(SPEECH_STOPPED)
            delta = first_after(FIRST_AUDIO_DELTA)
            dac = first_after(FIRST_DAC_SAMPLE)
            end = first_after(PLAYBACK_FINISHED) or first_after(PLAYBACK_INTERRUPTED)
            turns.append(
                Turn(
                    index=index + 1,
                    speech_end_to_server_stop_ms=_ms(speech_end, server_stop),
                    server_stop_to_first_delta_ms=_ms(server_stop, delta),
                    first_delta_to_dac_ms=_ms(delta, dac),
                    speech_end_to_dac_ms=_ms(speech_end, dac),
                    reply_played_ms=_ms(dac, end),
                )
            )
        return turns

    def render(self) -> str:
        """The timeline and per-turn latencies as text for a terminal."""
        lines = ["timeline (seconds from start):"]
        for m in sorted(self.marks, key=lambda m: m.at_s):
            detail = f"  {m.detail}" if m.detail else ""
            lines.append(f"  {m.at_s - self.origin_s:8.3f}  {m.name}{detail}")
        for turn in self.turns():
            lines.append(f"turn {turn.index}:")
            for label, value in (
                ("end of speech -> server end of turn", turn.speech_end_to_server_stop_ms),
                ("server end of turn -> first audio delta", turn.server_stop_to_first_delta_ms),
                ("first audio delta -> first sample at DAC", turn.first_delta_to_dac_ms),
                ("end of speech -> reply at DAC (user waits)", turn.speech_end_to_dac_ms),
                ("reply played", turn.reply_played_ms),
            ):
                shown = "-" if value is None else f"{value:7.0f} ms"
                lines.append(f"  {label:<44} {shown}")
        return "\n".join(lines)
