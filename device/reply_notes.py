"""What the journal and the timeline say about a conversation beyond its audio.

The user's words as the service transcribed them, a reply in text, the service
prompting after a silence, and a reply the service ended itself (cut at the
token limit, stopped by its content filter, or failed) are each logged once, in
words an owner reading ``journalctl`` understands. None of them changes what
the device does: the conversation goes on as after any other reply.
"""

from __future__ import annotations

import logging

from device.realtime import events as ev
from device.timeline import IDLE_TIMEOUT, REPLY_ENDED_EARLY, USER_TRANSCRIPT, Timeline

log = logging.getLogger("device.conversation")

NOTED = (
    ev.InputTranscriptionCompleted,
    ev.InputTranscriptionFailed,
    ev.TextDone,
    ev.BufferTimeout,
)
"""Server events that are only noted: logged, and marked on the timeline."""

_INCOMPLETE = {
    "max_output_tokens": "it reached realtime.max_output_tokens; raise it for longer answers",
    "content_filter": "the service's content filter stopped it",
}


def note(event: ev.ServerEvent, timeline: Timeline | None) -> None:
    """Log one of the ``NOTED`` events (and mark it on the timeline, if there is one)."""
    mark = None
    if isinstance(event, ev.InputTranscriptionCompleted):
        log.info("user said: %s", event.transcript)
        mark = (USER_TRANSCRIPT, event.transcript)
    elif isinstance(event, ev.InputTranscriptionFailed):
        error = event.error
        log.warning("the user's words could not be transcribed (%s): %s",
                    error.get("code") or error.get("type"), error.get("message"))  # fmt: skip
    elif isinstance(event, ev.TextDone):
        log.info("assistant wrote: %s", event.text)
    elif isinstance(event, ev.BufferTimeout):
        silence_s = (event.audio_end_ms - event.audio_start_ms) / 1000
        log.info("no one spoke for %.1f s after the reply: the assistant speaks again", silence_s)
        mark = (IDLE_TIMEOUT, event.item_id)
    if mark is not None and timeline is not None:
        timeline.mark(*mark)


def ending(event: ev.ResponseDone) -> str | None:
    """Why the service ended a reply before its end, in words; None when it did not.

    A cancelled reply is not one of them: the user (or the device) stopped it.
    """
    details = event.status_details or {}
    if event.status == "incomplete":
        reason = str(details.get("reason") or "unknown")
        return f"cut short: {_INCOMPLETE.get(reason, reason)}"
    if event.status == "failed":
        error = details.get("error")
        if isinstance(error, dict) and (error.get("code") or error.get("message")):
            return f"failed: {error.get('code') or error.get('type')}: {error.get('message')}"
        return "failed without a reason"
    return None


def note_ending(event: ev.ResponseDone, timeline: Timeline | None) -> None:
    """Log (once: there is one response.done per response) how the reply ended."""
    why = ending(event)
    if why is not None:
        log.warning("the service ended the reply %s (%s)", event.response_id, why)
        if timeline is not None:
            timeline.mark(REPLY_ENDED_EARLY, why)
    elif event.status == "cancelled":
        reason = (event.status_details or {}).get("reason")
        log.info("reply %s cancelled (%s)", event.response_id, reason or "no reason given")
