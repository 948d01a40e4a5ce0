"""What the device does with the service's events: play replies, cut them short,
and tell the state machine where the conversation is.

Runs on the event loop; no I/O of its own: it queues client events on the
sans-I/O session, pushes audio into the playback buffer and returns state
machine events.
"""

from __future__ import annotations

import logging

from device.audio.capture import API_RATE_HZ
from device.audio.frames import bytes_to_pcm
from device.audio.playback import PlaybackBuffer, PlaybackEvent
from device.audio.resample import StreamResampler
from device.realtime import events as ev
from device.realtime.session import RealtimeSession
from device.state import Event
from device.timeline import (
    FIRST_AUDIO_DELTA,
    FIRST_DAC_SAMPLE,
    PLAYBACK_FINISHED,
    PLAYBACK_INTERRUPTED,
    RESPONSE_CREATED,
    RESPONSE_DONE,
    SPEECH_STARTED,
    SPEECH_STOPPED,
    Timeline,
)

log = logging.getLogger(__name__)


class ReplyPlayer:
    """Reply audio (24 kHz from the service) into the playback buffer at the DAC rate."""

    def __init__(self, playback: PlaybackBuffer, dac_rate_hz: int) -> None:
        self.playback = playback
        self._dac_rate_hz = dac_rate_hz
        self._resamplers: dict[str, StreamResampler] = {}

    def add(self, item_id: str, pcm: bytes) -> None:
        resampler = self._resamplers.get(item_id)
        if resampler is None:
            resampler = StreamResampler(API_RATE_HZ, self._dac_rate_hz)
            self._resamplers[item_id] = resampler
        self.playback.push(item_id, resampler.process(bytes_to_pcm(pcm)))

    def finish(self, item_id: str) -> None:
        resampler = self._resamplers.pop(item_id, None)
        if resampler is not None:
            tail = resampler.process(bytes_to_pcm(b""), last=True)
            if len(tail):
                self.playback.push(item_id, tail)
        self.playback.end_item(item_id)

    def interrupt(self) -> list[tuple[str, float]]:
        """Silence the speaker now; (item_id, ms actually played) per cut item."""
        self._resamplers.clear()
        return self.playback.clear()


class Conversation:
    """Acts on server events and playback events for one session."""

    def __init__(
        self, session: RealtimeSession, reply: ReplyPlayer, timeline: Timeline | None = None
    ) -> None:
        self.session = session
        self.reply = reply
        self.timeline = timeline
        self.replies_finished = 0
        self._responses_with_audio: set[str] = set()
        self._items_started: set[str] = set()
        self._response_pending_finish = False

    def _mark(self, name: str, detail: str = "", at_s: float | None = None) -> None:
        if self.timeline is not None:
            self.timeline.mark(name, detail, at_s=at_s)

    def handle(self, event: ev.ServerEvent) -> list[Event]:
        """React to one server event; returns what the state machine should hear."""
        if isinstance(event, ev.SessionUpdated):
            return [Event.CONNECTED] if self.session.configured else []
        if isinstance(event, ev.ServerError):
            return self._on_error(event)
        if isinstance(event, ev.SpeechStarted):
            self._mark(SPEECH_STARTED)
            self.barge_in()
            return [Event.USER_SPEECH_STARTED]
        if isinstance(event, ev.SpeechStopped):
            self._mark(SPEECH_STOPPED)
            return [Event.USER_SPEECH_STOPPED]
        if isinstance(event, ev.ResponseCreated):
            self._mark(RESPONSE_CREATED, event.response_id)
            self._response_pending_finish = True
            return [Event.RESPONSE_STARTED]
        if isinstance(event, ev.AudioDelta):
            if event.response_id not in self._responses_with_audio:
                self._responses_with_audio.add(event.response_id)
                self._mark(FIRST_AUDIO_DELTA, event.item_id)
            self.reply.add(event.item_id, event.pcm)
            return []
        if isinstance(event, ev.AudioDone):
            self.reply.finish(event.item_id)
            return []
        if isinstance(event, ev.TranscriptDone):
            log.info("assistant said: %s", event.transcript)
            return []
        if isinstance(event, ev.InputTranscriptionCompleted):
            log.info("user said: %s", event.transcript)
            return []
        if isinstance(event, ev.ResponseDone):
            return self._on_response_done(event)
        return []

    def _on_error(self, event: ev.ServerError) -> list[Event]:
        if event.code in ("response_cancel_not_active", "input_audio_buffer_commit_empty"):
            log.debug("routine race: %s", event.message)
        elif not self.session.configured and self.session.last_error is event:
            log.error(
                "the service rejected the session configuration (%s, param %s): %s",
                event.code,
                event.param,
                event.message,
            )
        else:
            log.warning("service error %s/%s: %s", event.error_type, event.code, event.message)
        return []

    def _on_response_done(self, event: ev.ResponseDone) -> list[Event]:
        usage = event.usage
        detail = event.status
        if usage is not None:
            detail += (
                f" tokens in={usage.input_tokens} (audio {usage.input_audio_tokens})"
                f" out={usage.output_tokens} (audio {usage.output_audio_tokens})"
            )
        self._mark(RESPONSE_DONE, detail)
        if event.status != "completed":
            log.warning("response %s ended %s: %s", event.response_id, event.status,
                        event.status_details)
        return self._maybe_finished()

    def _maybe_finished(self) -> list[Event]:
        if (
            self._response_pending_finish
            and self.session.active_response_id is None
            and self.reply.playback.queued_frames == 0
        ):
            self._response_pending_finish = False
            self.replies_finished += 1
            return [Event.REPLY_FINISHED]
        return []

    def barge_in(self) -> None:
        """Stop the speaker and tell the service how much of the reply was heard."""
        for item_id, played_ms in self.reply.interrupt():
            self.session.truncate(item_id, played_ms)

    def on_playback(self, event: PlaybackEvent, at_s: float) -> list[Event]:
        """React to what the audio callback reported about playback."""
        if event.kind == "started":
            if event.item_id in self._items_started:
                return []
            self._items_started.add(event.item_id)
            self._mark(FIRST_DAC_SAMPLE, event.item_id, at_s=at_s)
            return [Event.REPLY_AUDIO_STARTED]
        if event.kind == "interrupted":
            self._mark(PLAYBACK_INTERRUPTED, event.item_id, at_s=at_s)
            return self._maybe_finished()
        self._mark(PLAYBACK_FINISHED, event.item_id, at_s=at_s)
        return self._maybe_finished()

