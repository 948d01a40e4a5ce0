"""One simulated model response: the GA event sequence, one step at a time.

A response is streamed in steps (one audio delta plus the transcript words due by
then) so the connection can pace it and handle a cancel, a truncate or more
input audio between steps, as it must against the real service. Audio arrives
from a thread executor after the opening events, so ``ready`` tells the
connection when stepping may begin.

A response that calls a client function (``SimFunctionCall``) has no audio and
is complete from its first step.

Usage follows the service's token rates: input audio 1 token per 100 ms, output
audio 1 per 50 ms, input text ~1.3 tokens per instruction word, output text one
token per transcript word. Cached counts are always zero.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from device.realtime.sim_options import TOOL_REPLY

Event = dict[str, Any]
NewId = Callable[[str], str]

BYTES_PER_MS = 48  # PCM16 mono at 24 kHz
INPUT_AUDIO_MS_PER_TOKEN = 100
OUTPUT_AUDIO_MS_PER_TOKEN = 50
TEXT_TOKENS_PER_WORD = 1.3
RATE_LIMIT_REQUESTS = 5000
RATE_LIMIT_TOKENS = 40000

Status = Literal["in_progress", "completed", "cancelled", "incomplete", "failed"]
CancelReason = Literal["turn_detected", "client_cancelled"]


def _rate_limits(reserved_tokens: int) -> list[dict[str, Any]]:
    """What ``rate_limits.updated`` says once a response reserved its output tokens."""
    tokens_reset_s = round(reserved_tokens * 60 / RATE_LIMIT_TOKENS, 3)
    return [
        {"name": "requests", "limit": RATE_LIMIT_REQUESTS,
         "remaining": RATE_LIMIT_REQUESTS - 1, "reset_seconds": 0.012},
        {"name": "tokens", "limit": RATE_LIMIT_TOKENS,
         "remaining": RATE_LIMIT_TOKENS - reserved_tokens, "reset_seconds": tokens_reset_s},
    ]  # fmt: skip


@dataclass(frozen=True)
class ResponsePlan:
    """Everything fixed when the response starts; the session decides it."""

    response_id: str
    item_id: str
    conversation_id: str | None  # None: out of band, not part of the conversation
    previous_item_id: str | None
    modality: Literal["audio", "text"]
    output_format: dict[str, Any]
    voice: str
    speed: float
    max_output_tokens: int | Literal["inf"]
    metadata: dict[str, str] | None
    text: str
    instructions: str
    input_audio_ms: int
    delta_ms: int
    input_image_tokens: int = 0  # pictures in what the response reads (``sim_images``)


class SimResponse:
    """State of one response from ``response.created`` to ``response.done``."""

    def __init__(self, plan: ResponsePlan, new_id: NewId) -> None:
        self.plan = plan
        self.status: Status = "in_progress"
        self.audio = bytearray()  # what has been streamed so far
        self._new_id = new_id
        self._words = plan.text.split()
        self._pcm: bytes | None = None
        self._chunks = 0
        self._chunk_index = 0
        self._words_sent = 0
        self._word_budget = len(self._words)
        self._transcript: list[str] = []
        self._ending: Status = "completed"
        self._cancel_reason: CancelReason = "client_cancelled"
        self._failure = ""
        self._reason = ""  # why the service ended it early (``end_early``)
        self.output_index = 0  # the message's place in the output: 1 after an MCP call
        self.earlier_output: list[dict[str, Any]] = []  # items before it (``sim_mcp``)
        budget = plan.max_output_tokens
        if plan.modality == "text" and budget != "inf" and budget < self._word_budget:
            self._word_budget = budget
            self._ending = "incomplete"

    @property
    def in_conversation(self) -> bool:
        return self.plan.conversation_id is not None

    @property
    def ready(self) -> bool:
        """Whether stepping may begin (text needs no audio)."""
        return self.plan.modality == "text" or self._pcm is not None

    @property
    def active(self) -> bool:
        return self.status == "in_progress"

    @property
    def transcript(self) -> str:
        return "".join(self._transcript)

    def attach_audio(self, pcm: bytes) -> None:
        """Give the synthesised reply; capped by ``max_output_tokens`` like the service."""
        budget = self.plan.max_output_tokens
        limit_bytes = None if budget == "inf" else budget * OUTPUT_AUDIO_MS_PER_TOKEN * BYTES_PER_MS
        if limit_bytes is not None and len(pcm) > limit_bytes:
            self._word_budget = max(1, len(self._words) * limit_bytes // len(pcm))
            pcm = pcm[:limit_bytes]
            self._ending = "incomplete"
        self._pcm = pcm
        self._chunks = max(1, math.ceil(len(pcm) / (self.plan.delta_ms * BYTES_PER_MS)))

    def _event(self, kind: str, **fields: Any) -> Event:
        return {"type": kind, "event_id": self._new_id("event"), **fields}

    def _ids(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "response_id": plan.response_id,
            "item_id": plan.item_id,
            "output_index": self.output_index,
            "content_index": 0,
        }

    def item(self) -> dict[str, Any]:
        """The assistant item as events show it (never with audio bytes)."""
        content: list[dict[str, Any]] = []
        if self.status != "in_progress":
            if self.plan.modality == "audio":
                content = [{"type": "output_audio", "transcript": self.transcript}]
            else:
                content = [{"type": "output_text", "text": self.transcript}]
        status = self.status if self.status in ("completed", "in_progress") else "incomplete"
        return {
            "id": self.plan.item_id,
            "object": "realtime.item",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }

    def response(self) -> dict[str, Any]:
        plan = self.plan
        details: dict[str, Any] | None = None
        if self.status == "cancelled":
            details = {"type": "cancelled", "reason": self._cancel_reason}
        elif self.status == "incomplete":
            details = {"type": "incomplete", "reason": self._reason or "max_output_tokens"}
        elif self.status == "failed":
            code = self._reason or "audio_unavailable"
            error = {"type": "server_error", "code": code, "message": self._failure}
            details = {"type": "failed", "error": error}
        return {
            "object": "realtime.response",
            "id": plan.response_id,
            "status": self.status,
            "status_details": details,
            "output": [] if self.status == "in_progress" else [*self.earlier_output, self.item()],
            "conversation_id": plan.conversation_id,
            "output_modalities": [plan.modality],
            "max_output_tokens": plan.max_output_tokens,
            "audio": {"output": {"format": plan.output_format, "voice": plan.voice}},
            "usage": None if self.status == "in_progress" else self.usage(),
            "metadata": plan.metadata,
        }

    def usage(self) -> dict[str, Any]:
        plan = self.plan
        audio_in = round(plan.input_audio_ms / INPUT_AUDIO_MS_PER_TOKEN)
        text_in = round(len(plan.instructions.split()) * TEXT_TOKENS_PER_WORD)
        audio_out = round(len(self.audio) / BYTES_PER_MS / OUTPUT_AUDIO_MS_PER_TOKEN)
        text_out = self._words_sent
        image_in = plan.input_image_tokens
        zero = {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}
        return {
            "total_tokens": audio_in + text_in + image_in + audio_out + text_out,
            "input_tokens": audio_in + text_in + image_in,
            "output_tokens": audio_out + text_out,
            "input_token_details": {
                "text_tokens": text_in,
                "audio_tokens": audio_in,
                "image_tokens": image_in,
                "cached_tokens": 0,
                "cached_tokens_details": zero,
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }

    def _head(self, reserved: int) -> list[Event]:
        """``response.created`` to the output item's ``conversation.item.added``."""
        plan = self.plan
        events = [
            self._event("response.created", response=self.response()),
            self._event(
                "rate_limits.updated",
                rate_limits=_rate_limits(reserved),
            ),
            self._event(
                "response.output_item.added",
                response_id=plan.response_id,
                output_index=self.output_index,
                item=self.item(),
            ),
        ]
        if self.in_conversation:
            events.append(
                self._event(
                    "conversation.item.added",
                    previous_item_id=plan.previous_item_id,
                    item=self.item(),
                )
            )
        return events

    def opening(self) -> list[Event]:
        """From ``response.created`` to ``response.content_part.added``."""
        events = self._head(reserved=len(self._words) * 20)
        part: dict[str, Any] = (
            {"type": "audio", "transcript": ""}
            if self.plan.modality == "audio"
            else {"type": "text", "text": ""}
        )
        events.append(self._event("response.content_part.added", **self._ids(), part=part))
        return events

    def _next_words(self, upto: int) -> str:
        """Transcript text for words up to ``upto``, each after a space but the first."""
        first = self._words_sent
        new = self._words[first : min(upto, self._word_budget)]
        delta = "".join(word if first + i == 0 else f" {word}" for i, word in enumerate(new))
        self._words_sent = first + len(new)
        self._transcript.append(delta)
        return delta

    def step(self) -> list[Event]:
        """The next delta(s); the last step also closes the response."""
        if not self.active or not self.ready:
            return []
        if self.plan.modality == "text":
            return self._text_step()
        return self._audio_step()

    def _text_step(self) -> list[Event]:
        events: list[Event] = []
        if self._words_sent < self._word_budget:
            delta = self._next_words(self._words_sent + 1)
            events.append(self._event("response.output_text.delta", **self._ids(), delta=delta))
        if self._words_sent >= self._word_budget:
            events += self._close(self._ending)
        return events

    def _audio_step(self) -> list[Event]:
        assert self._pcm is not None
        chunk_bytes = self.plan.delta_ms * BYTES_PER_MS
        chunk = self._pcm[self._chunk_index * chunk_bytes : (self._chunk_index + 1) * chunk_bytes]
        self._chunk_index += 1
        events: list[Event] = []
        if chunk:
            self.audio += chunk
            encoded = base64.b64encode(chunk).decode("ascii")
            events.append(self._event("response.output_audio.delta", **self._ids(), delta=encoded))
        due = math.ceil(len(self._words) * self._chunk_index / self._chunks)
        if due > self._words_sent and self._words_sent < self._word_budget:
            delta = self._next_words(due)
            events.append(
                self._event("response.output_audio_transcript.delta", **self._ids(), delta=delta)
            )
        if self._chunk_index >= self._chunks:
            events += self._close(self._ending)
        return events

    def cancel(self, reason: CancelReason) -> list[Event]:
        """Stop where it stands: close the part and item, ``response.done`` cancelled."""
        if not self.active:
            return []
        self._cancel_reason = reason
        return self._close("cancelled")

    def fail(self, message: str) -> list[Event]:
        """End with ``status: failed`` (the reply audio could not be produced)."""
        if not self.active:
            return []
        self._failure = message
        return self._close("failed")

    def end_early(self, status: Literal["incomplete", "failed"], reason: str) -> list[Event]:
        """End here as the service does on its own: ``incomplete`` for ``reason``
        (content_filter, max_output_tokens), or ``failed`` with error code ``reason``."""
        if not self.active:
            return []
        self._reason = reason
        self._failure = "The server had an error while processing your request."
        return self._close(status)

    def _close(self, status: Status) -> list[Event]:
        self.status = status
        plan = self.plan
        text = self.transcript
        if plan.modality == "audio":
            events = [
                self._event("response.output_audio.done", **self._ids()),
                self._event(
                    "response.output_audio_transcript.done", **self._ids(), transcript=text
                ),
            ]
            part: dict[str, Any] = {"type": "audio", "transcript": text}
        else:
            events = [self._event("response.output_text.done", **self._ids(), text=text)]
            part = {"type": "text", "text": text}
        events.append(self._event("response.content_part.done", **self._ids(), part=part))
        return events + self._tail()

    def _tail(self) -> list[Event]:
        """``response.output_item.done`` to ``response.done``."""
        plan = self.plan
        events = [
            self._event(
                "response.output_item.done",
                response_id=plan.response_id,
                output_index=self.output_index,
                item=self.item(),
            )
        ]
        if self.in_conversation:
            events.append(
                self._event(
                    "conversation.item.done",
                    previous_item_id=plan.previous_item_id,
                    item=self.item(),
                )
            )
        events.append(self._event("response.done", response=self.response()))
        return events


ARGUMENT_CHUNK_CHARS = 16
TEXT_CHARS_PER_TOKEN = 4


class SimFunctionCall(SimResponse):
    """A response whose one output item is a call of a client function.

    The service writes a call's few arguments in a moment, so the whole
    sequence comes from ``opening``, ``response.done`` included, and there is
    nothing left to step, cancel or give audio to.
    """

    def __init__(self, plan: ResponsePlan, new_id: NewId, name: str, arguments: str) -> None:
        super().__init__(plan, new_id)
        self.name = name
        self.arguments = arguments
        self.call_id = new_id("call")

    @staticmethod
    def planned(
        wanted: tuple[str, str] | None, session: dict[str, Any], params: dict[str, Any]
    ) -> tuple[str, str] | None:
        """``wanted`` if a response may call it: its tools offer it, tool_choice allows it."""
        if wanted is None:
            return None
        tools = params.get("tools", session["tools"])
        choice = params.get("tool_choice", session["tool_choice"])
        if choice == "none" or (isinstance(choice, dict) and choice.get("name") != wanted[0]):
            return None
        offered = any(t.get("type") == "function" and t.get("name") == wanted[0] for t in tools)
        return wanted if offered else None

    @staticmethod
    def reply_to(item: dict[str, Any]) -> str | None:
        """What the simulated model says after ``item`` when it is a function's output."""
        if item.get("type") != "function_call_output":
            return None
        return TOOL_REPLY.format(output=item.get("output", ""))

    def item(self) -> dict[str, Any]:
        done = self.status != "in_progress"
        return {
            "id": self.plan.item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "completed" if done else "in_progress",
            "name": self.name,
            "call_id": self.call_id,
            "arguments": self.arguments if done else "",
        }

    def usage(self) -> dict[str, Any]:
        usage = super().usage()
        text_out = max(1, math.ceil(len(self.arguments) / TEXT_CHARS_PER_TOKEN))
        usage["output_tokens"] += text_out
        usage["total_tokens"] += text_out
        usage["output_token_details"]["text_tokens"] += text_out
        return usage

    def opening(self) -> list[Event]:
        """Everything from ``response.created`` to ``response.done``."""
        plan = self.plan
        events = self._head(reserved=len(self.arguments))
        ids = dict(response_id=plan.response_id, item_id=plan.item_id, output_index=0,
                   call_id=self.call_id)  # fmt: skip
        arguments = self.arguments
        for start in range(0, len(arguments), ARGUMENT_CHUNK_CHARS):
            delta = arguments[start : start + ARGUMENT_CHUNK_CHARS]
            events.append(self._event("response.function_call_arguments.delta", **ids, delta=delta))
        events.append(self._event("response.function_call_arguments.done", **ids,
                                  name=self.name, arguments=arguments))  # fmt: skip
        self.status = "completed"
        return events + self._tail()
