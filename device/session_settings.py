"""What the device asks of each Realtime session, from the config, and what the
device itself must do so the service can keep those settings.

``session_settings`` turns [realtime] and [turn] into the ``SessionSettings`` the
session sends in its ``session.update``. Two settings also need the microphone to
keep streaming after the device's own voice gate has closed, because the service
decides on the audio it receives and silence that is never sent is silence it
never hears:

* the end of a turn (``stream_tail_ms``): the service needs its silence duration
  (server_vad) or up to its longest wait (semantic_vad) of audio after the speech;
* the idle timeout (``idle_listen_ms``): the service counts the silence after a
  reply, so the device streams while that can run out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from device.config import Config, RealtimeConfig
from device.config_session import TurnConfig
from device.realtime.session import SessionSettings

# The longest semantic_vad waits before it ends a turn that does not sound finished.
SEMANTIC_MAX_WAIT_MS = {"low": 8000, "medium": 4000, "auto": 4000, "high": 2000}
# Audio sent beyond what the service needs, for chunking and network jitter.
STREAM_MARGIN_MS = 300


def turn_detection(turn: TurnConfig) -> dict[str, Any] | None:
    """``audio.input.turn_detection``; None (VAD off) for push-to-talk.

    The device relies on the service to answer a finished turn and to stop a
    reply the user talks over, so create_response and interrupt_response stay on.
    """
    if turn.mode == "push_to_talk":
        return None
    common = {"create_response": True, "interrupt_response": True}
    if turn.mode == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": turn.eagerness, **common}
    detection: dict[str, Any] = {
        "type": "server_vad",
        "threshold": turn.threshold,
        "prefix_padding_ms": turn.prefix_padding_ms,
        "silence_duration_ms": turn.silence_duration_ms,
        **common,
    }
    if turn.idle_timeout_ms:
        detection["idle_timeout_ms"] = turn.idle_timeout_ms
    return detection


def _truncation(realtime: RealtimeConfig) -> str | dict[str, Any]:
    if not isinstance(realtime.truncation, float):
        return realtime.truncation
    truncation: dict[str, Any] = {
        "type": "retention_ratio",
        "retention_ratio": realtime.truncation,
    }
    if realtime.truncation_post_instructions_tokens:
        limit = realtime.truncation_post_instructions_tokens
        truncation["token_limits"] = {"post_instructions": limit}
    return truncation


def _prompt(realtime: RealtimeConfig) -> dict[str, Any] | None:
    if not realtime.prompt_id:
        return None
    prompt: dict[str, Any] = {"id": realtime.prompt_id}
    if realtime.prompt_version:
        prompt["version"] = realtime.prompt_version
    if realtime.prompt_variables:
        prompt["variables"] = dict(realtime.prompt_variables)
    return prompt


def _transcription(realtime: RealtimeConfig) -> dict[str, Any] | None:
    if not realtime.transcription_model:
        return None
    transcription = {"model": realtime.transcription_model}
    if realtime.transcription_language:
        transcription["language"] = realtime.transcription_language
    return transcription


def _instructions(realtime: RealtimeConfig) -> str:
    """Instructions sent directly override a reusable prompt's: with a prompt, the
    built-in default is left out so the prompt's own instructions apply."""
    if realtime.prompt_id and realtime.instructions == RealtimeConfig().instructions:
        return ""
    return realtime.instructions


def session_settings(config: Config, tools: Sequence[Mapping[str, Any]]) -> SessionSettings:
    """Everything the session.update of a new session says, from the config.

    Every setting is sent explicitly, defaults included, so the session runs as
    configured whatever the service's own defaults are.
    """
    realtime = config.realtime
    tokens = realtime.max_output_tokens
    return SessionSettings(
        voice=realtime.voice,
        instructions=_instructions(realtime),
        output_modalities=(realtime.output_modality,),
        turn_detection=turn_detection(config.turn),
        tools=tuple(tools),
        speed=realtime.speed,
        max_output_tokens="inf" if tokens == "inf" else int(tokens),
        truncation=_truncation(realtime),
        prompt=_prompt(realtime),
        noise_reduction=realtime.noise_reduction,
        transcription=_transcription(realtime),
    )


def stream_tail_ms(config: Config) -> int:
    """Audio to keep streaming after the voice gate closes, so the service hears the
    end of the turn; 0 when the gate's own hangover already covers it."""
    turn = config.turn
    if turn.mode == "push_to_talk":
        return 0
    if turn.mode == "semantic_vad":
        needed_ms = SEMANTIC_MAX_WAIT_MS[turn.eagerness]
    else:
        needed_ms = turn.silence_duration_ms
    return max(0, needed_ms + STREAM_MARGIN_MS - config.vad.hangover_ms)


def idle_listen_ms(detection: Mapping[str, Any] | None, reply_ms: float) -> int:
    """After a reply of ``reply_ms``: how long to stream so the service's idle timeout
    can run out (0: the session has none). The service starts counting when the
    reply was generated and adds its length, so the reply's length is covered too."""
    idle_ms = None if detection is None else detection.get("idle_timeout_ms")
    if not isinstance(idle_ms, int) or idle_ms <= 0:
        return 0
    return round(reply_ms) + idle_ms + STREAM_MARGIN_MS
