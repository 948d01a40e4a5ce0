"""Input audio transcription in the simulator.

With ``audio.input.transcription`` set, every committed user audio item is
transcribed: ``…input_audio_transcription.delta`` events, one per word, then
``.completed`` with usage (by duration for whisper-1, else by tokens), right after
the commit's item events; the item's ``transcript`` is filled in too. The
simulator knows no words, so the transcript says how much speech it heard, as its
replies do: "(1.4 seconds of speech)".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from device.realtime.sim_conversation import StoredItem
from device.realtime.sim_response import Event
from device.realtime.sim_settings import BILLED_BY_DURATION

if TYPE_CHECKING:
    from device.realtime.sim_session import SimulatorSession

TRANSCRIPT = "({seconds:.1f} seconds of speech)"
AUDIO_MS_PER_TOKEN = 100
TEXT_TOKENS_PER_WORD = 1.3


def transcription_events(session: SimulatorSession, item: StoredItem) -> list[Event]:
    """Transcribe a committed user audio item, if the session asks for transcription."""
    config = session.session["audio"]["input"]["transcription"]
    if config is None:
        return []
    seconds = item.audio_ms / 1000
    transcript = TRANSCRIPT.format(seconds=seconds)
    for part in item.data.get("content", []):
        if part.get("type") == "input_audio":
            part["transcript"] = transcript
    ids = {"item_id": item.id, "content_index": 0}
    words = transcript.split(" ")
    events = [
        session.event(
            "conversation.item.input_audio_transcription.delta",
            **ids,
            delta=word if i == 0 else f" {word}",
        )
        for i, word in enumerate(words)
    ]
    usage: dict[str, object]
    if config["model"] in BILLED_BY_DURATION:
        usage = {"type": "duration", "seconds": round(seconds, 3)}
    else:
        audio_in = math.ceil(item.audio_ms / AUDIO_MS_PER_TOKEN)
        text_out = math.ceil(len(words) * TEXT_TOKENS_PER_WORD)
        usage = {
            "type": "tokens",
            "input_tokens": audio_in,
            "output_tokens": text_out,
            "total_tokens": audio_in + text_out,
            "input_token_details": {"audio_tokens": audio_in, "text_tokens": 0},
        }
    events.append(
        session.event(
            "conversation.item.input_audio_transcription.completed",
            **ids,
            transcript=transcript,
            usage=usage,
        )
    )
    return events
