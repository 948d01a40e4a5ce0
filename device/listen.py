"""Listening: what of the microphone may leave the device, and when the user cuts
the device short.

Runs in the capture loop, on what the capture pipeline made of each block:

* the wake word (``wake_word`` mode) on the echo-cancelled frames opens an
  activation (``device.activation``); until then every chunk is dropped, and the
  gate is restarted on activation so the wake word itself is never streamed;
* while the device's reply plays (and for ``ECHO_TAIL_MS`` after, while its echo
  may still ring) chunks are held back, not sent: the device's own voice must not
  reach the service's turn detection. The local barge-in detector
  (``device.audio.bargein``) decides whether the user talks over the reply; if
  so, playback stops within the block, the response is cancelled, the reply is
  truncated to what was heard, and the held chunks go out first, so the service
  hears the user from the start. Otherwise they are dropped;
* in ``wake_word`` mode the wake word over the reply interrupts it too.

``Listening`` is the core, free of the daemon, so the benchmark drives it
exactly as the daemon does; ``DaemonListener`` wires it to the daemon.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from device.activation import Activation, ActivationSettings
from device.audio.bargein import BargeInDetector, BargeInSettings, frame_power
from device.audio.capture import FAR_END_RMS, VAD_FRAME_MS, CaptureResult
from device.audio.wakeword import WakeWordDetector, make_detector
from device.config import Config
from device.config_listen import ListenConfig
from device.state import Event
from device.timeline import LOCAL_SPEECH_END, LOCAL_SPEECH_START

if TYPE_CHECKING:
    from device.app import Daemon
    from device.audio.bridge import CapturedBlock

log = logging.getLogger(__name__)

ECHO_TAIL_MS = 300
"""After the last sample the device played left the buffer, its echo may still come
back (output latency, room reverberation, the voice detector's own hangover):
chunks stay held and barge-in keeps its guard."""
MAX_HELD_MS = 2000
"""Most microphone audio held back while the device talks (oldest dropped first)."""
FAR_END = FAR_END_RMS**2  # the power of a block in which the device counts as playing
WAKE_WORD = "wake word"
LOCAL_BARGE_IN = "local barge-in"


@dataclass
class Heard:
    """What one block means for listening."""

    chunks: list[bytes] = field(default_factory=list)  # to stream now, oldest first
    wake: bool = False  # the wake word ended in this block
    barge_in: bool = False  # the user talks over the device: stop the reply
    ended: bool = False  # the activation ran out (tell the state machine)
    speech_started: bool = False  # the gate opened within an open activation
    speech_stopped: bool = False
    dropped_asleep: int = 0  # chunks dropped: no activation
    dropped_held: int = 0  # chunks held while the device talked, then dropped
    restart_gate: bool = False  # the gate stayed open on the device's echo: restart it


class Listening:
    """Activation, wake word, hold-while-talking and barge-in, block by block."""

    def __init__(
        self,
        settings: ListenConfig,
        *,
        wake: WakeWordDetector | None,
        send_chunk_ms: int,
        pre_roll_ms: int = 300,
    ) -> None:
        self.settings = settings
        self.activation = Activation(
            ActivationSettings(settings.mode, settings.listen_timeout_s, settings.follow_up_s)
        )
        self.wake = wake
        self.barge: BargeInDetector | None = None
        if settings.barge_in:
            self.barge = BargeInDetector(
                BargeInSettings(settings.barge_in_min_speech_ms, settings.barge_in_echo_margin_db)
            )
        self._held: deque[bytes] = deque()
        self._max_held = max(1, MAX_HELD_MS // send_chunk_ms)
        # Outside the user's speech only a pre-roll's worth is kept: what was held
        # before it is the device's own echo, and must not follow the user's words.
        self._pre_roll_chunks = -(-max(pre_roll_ms, send_chunk_ms) // send_chunk_ms)
        self._in_speech = False  # the voice detector's verdict on the last frame
        self._echo_frames = 0  # frames of echo tail still to come
        self._confirmed = False  # the user is heard over the device: nothing is held
        self._holding = False  # chunks are held since the device's voice began
        self.frames = 0  # 10 ms frames seen: the audio clock
        self.wake_words = 0
        self.barge_ins = 0

    @property
    def now_s(self) -> float:
        """Seconds of audio heard so far."""
        return self.frames * VAD_FRAME_MS / 1000.0

    @property
    def held_chunks(self) -> int:
        return len(self._held)

    def activated(self) -> int:
        """The wake word or the talk button opened a turn: start afresh. Returns the
        held chunks dropped (what came before the activation)."""
        self.activation.activate(self.now_s)
        if self.wake is not None:
            self.wake.deafen()  # the button and the word together trigger once
        return self._drop_held()

    def ended(self) -> int:
        """The activation ends now; returns the held chunks dropped."""
        self.activation.end()
        return self._drop_held()

    def _drop_held(self) -> int:
        dropped = len(self._held)
        self._held.clear()
        self._holding = False
        return dropped

    def block(
        self,
        result: CaptureResult,
        *,
        playing: bool,
        muted: bool,
        cancels_echo: bool,
        gate_open: bool = False,
        button_held: bool = False,
    ) -> Heard:
        """One block: ``playing`` is True while the device plays (reply audio queued,
        or a sound at the DAC), ``cancels_echo`` once the echo canceller can be
        trusted over it, ``gate_open`` whether the voice gate is open after it,
        ``button_held`` while the talk button is down (push-to-talk: the user says
        they talk, so nothing is held back)."""
        heard = Heard()
        if muted:
            # Muted wins over every mode: nothing is detected, nothing is held, and
            # the chunks go on only to be counted as dropped for the mute.
            self.frames += len(result.taps)
            heard.dropped_held = self.ended()
            self._confirmed = False
            heard.chunks = result.chunks
            return heard
        for tap in result.taps:
            self.frames += 1
            self._in_speech = tap.is_speech
            if playing:
                self._echo_frames = ECHO_TAIL_MS // VAD_FRAME_MS
                if not tap.is_speech:
                    self._confirmed = False  # the user stopped: judge the next words anew
            elif self._echo_frames:
                self._echo_frames -= 1
            if self.wake is not None and self.wake.process(tap.clean):
                heard.wake = True
            if self.barge is None:
                continue
            active = bool(playing or self._echo_frames) and cancels_echo
            if self.barge.frame(tap.mic, tap.clean, tap.is_speech, active=active):
                heard.barge_in = not heard.wake
        self.wake_words += heard.wake
        self._note_speech(result, heard)
        self._confirmed = self._confirmed or button_held
        self._admit(
            result.chunks, heard, echo=playing or self._echo_frames > 0, gate_open=gate_open
        )
        heard.ended = self.activation.tick(self.now_s)
        return heard

    def _note_speech(self, result: CaptureResult, heard: Heard) -> None:
        activation = self.activation
        if result.speech_started:
            activation.speech_started(self.now_s)
            heard.speech_started = activation.is_open and not heard.wake
        if result.speech_stopped:
            heard.speech_stopped = activation.is_open
            activation.speech_stopped(self.now_s)

    def _admit(self, chunks: list[bytes], heard: Heard, *, echo: bool, gate_open: bool) -> None:
        held = self._held
        if heard.wake or not self.activation.is_open:
            # Before the wake word, and the wake word itself, never leave the device.
            heard.dropped_asleep = len(chunks) + len(held)
            held.clear()
            self._holding = False
            return
        if heard.barge_in:
            self.barge_ins += 1
            self._confirmed = True
        if self._confirmed:
            # The user is heard over the device: what was held goes first.
            heard.chunks = [*held, *chunks]
            held.clear()
            self._holding = False
            self._confirmed = echo
            return
        if echo:
            self._holding = True
            held.extend(chunks)
            keep = self._max_held if self._in_speech else self._pre_roll_chunks
            while len(held) > keep:
                held.popleft()
                heard.dropped_held += 1
            return
        if self._holding:
            # The device's voice is over and nobody was heard over it: what the gate
            # let through was its echo. A gate it kept open starts afresh.
            heard.dropped_held = len(held) + len(chunks)
            held.clear()
            self._holding = False
            heard.restart_gate = gate_open
            if gate_open:
                # The restarted gate closes without a speech_stopped: the activation
                # must not wait for one, or it would never run out.
                self.activation.speech_stopped(self.now_s)
            return
        heard.chunks = chunks


class DaemonListener:
    """``Listening`` wired to the daemon: the state machine, the reply, the timeline."""

    def __init__(self, daemon: Daemon, config: Config) -> None:
        self._daemon = daemon
        listen = config.listen
        wake = None
        if listen.mode == "wake_word":
            wake = make_detector(
                listen.wake_word,
                listen.wake_word_model,
                daemon.hw.duplex.format.rate_hz,
                refractory_s=listen.refractory_s,
                source=str(config.source or "defaults"),
            )
            log.info('listening for the wake word "%s"', wake.phrase)
        self.core = Listening(
            listen,
            wake=wake,
            send_chunk_ms=config.audio.send_chunk_ms,
            pre_roll_ms=config.vad.pre_roll_ms,
        )
        self._hangover_s = config.vad.hangover_ms / 1000.0

    def heard(self, block: CapturedBlock, result: CaptureResult) -> list[bytes]:
        """Act on one captured block; returns the chunks that may be streamed now."""
        daemon = self._daemon
        heard = self.core.block(
            result,
            # Reply audio queued, or an earcon at the DAC: a canceller that has not
            # adapted yet lets a chime at full volume through as loud as speech.
            playing=daemon.playback.queued_frames > 0 or frame_power(block.reference) > FAR_END,
            muted=daemon.controls.mic_muted,
            cancels_echo=daemon.capture.cancels_echo,
            gate_open=daemon.capture.is_open,
            button_held=daemon.capture.held,
        )
        if heard.restart_gate:
            daemon.capture.restart_gate()
        daemon.stats.chunks_dropped_asleep += heard.dropped_asleep
        daemon.stats.chunks_held_while_speaking += heard.dropped_held
        timeline = daemon.timeline
        if timeline is not None and heard.speech_started:
            timeline.mark(LOCAL_SPEECH_START, at_s=block.at_s - result.onset_offset_ms / 1000.0)
        if timeline is not None and heard.speech_stopped:
            timeline.mark(LOCAL_SPEECH_END, at_s=block.at_s - self._hangover_s)
        if heard.wake:
            log.info("wake word heard")
            if timeline is not None:
                timeline.mark(WAKE_WORD, at_s=block.at_s)
            daemon.controls.stop_reply()  # the wake word over a reply interrupts it
            daemon.dispatch(Event.WAKE_DETECTED)
        if heard.barge_in:
            log.info("the user talks over the reply: stopping it")
            if timeline is not None:
                timeline.mark(LOCAL_BARGE_IN, at_s=block.at_s)
            daemon.controls.stop_reply()
        if heard.ended:
            daemon.dispatch(Event.ACTIVATION_ENDED)
        return heard.chunks

    def observe(self, event: Event) -> None:
        """Every event the state machine hears, whoever sent it (the talk button too)."""
        core = self.core
        stats = self._daemon.stats
        if event is Event.WAKE_DETECTED:
            stats.chunks_held_while_speaking += core.activated()
            self._daemon.capture.restart_gate()
        elif event in (Event.ACTIVATION_ENDED, Event.MUTED):
            stats.chunks_held_while_speaking += core.ended()
        elif event is Event.RESPONSE_STARTED:
            core.activation.response_started()
        elif event is Event.REPLY_FINISHED:
            core.activation.reply_finished(core.now_s)
        elif event is Event.DISCONNECTED:
            core.activation.disconnected()
