"""The device's state machine, pure: (state, event) -> state, no clock, no I/O.

The table lists every transition that changes the state; every other
(state, event) pair keeps the state, on purpose (for example a late
``RESPONSE_STARTED`` while OFFLINE must not light the speaking LEDs).
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    IDLE = "idle"
    WAKE = "wake"  # activated (wake word or button): the user's turn is about to start
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    MUTED = "muted"  # the microphone is off: not a byte of audio leaves the device
    OFFLINE = "offline"
    FAULT = "fault"
    SETUP = "setup"  # not set up yet (no API key): waits for the installer


class Event(enum.Enum):
    CONNECTED = "connected"  # session configured: the service is ready
    DISCONNECTED = "disconnected"
    FAULT = "fault"  # needs a person (bad key, broken audio device)
    RECOVERED = "recovered"  # the fault went away
    USER_SPEECH_STARTED = "user_speech_started"
    USER_SPEECH_STOPPED = "user_speech_stopped"
    RESPONSE_STARTED = "response_started"
    REPLY_AUDIO_STARTED = "reply_audio_started"  # first reply sample reached the DAC
    REPLY_FINISHED = "reply_finished"  # response done and its audio played or cut
    WAKE_DETECTED = "wake_detected"  # wake word heard or the talk button pressed
    ACTIVATION_ENDED = "activation_ended"  # no speech came, or the user stopped listening
    MUTED = "muted"
    UNMUTED = "unmuted"  # leads to OFFLINE; the daemon follows with CONNECTED when online
    SETUP_NEEDED = "setup_needed"
    SETUP_DONE = "setup_done"


_ONLINE = (State.IDLE, State.WAKE, State.LISTENING, State.THINKING, State.SPEAKING)

TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.OFFLINE, Event.CONNECTED): State.IDLE,
    (State.FAULT, Event.RECOVERED): State.OFFLINE,
    **{(s, Event.DISCONNECTED): State.OFFLINE for s in _ONLINE},
    **{(s, Event.FAULT): State.FAULT for s in (*_ONLINE, State.OFFLINE, State.MUTED)},
    # Muting wins over everything but a fault and setup; unmuting goes through
    # OFFLINE so the daemon re-announces the connection it really has.
    **{(s, Event.MUTED): State.MUTED for s in (*_ONLINE, State.OFFLINE)},
    (State.MUTED, Event.UNMUTED): State.OFFLINE,
    **{(s, Event.SETUP_NEEDED): State.SETUP for s in State if s is not State.SETUP},
    (State.SETUP, Event.SETUP_DONE): State.OFFLINE,
    (State.IDLE, Event.WAKE_DETECTED): State.WAKE,
    (State.THINKING, Event.WAKE_DETECTED): State.WAKE,
    (State.SPEAKING, Event.WAKE_DETECTED): State.WAKE,  # wake word over the reply
    (State.WAKE, Event.ACTIVATION_ENDED): State.IDLE,
    (State.LISTENING, Event.ACTIVATION_ENDED): State.IDLE,
    (State.WAKE, Event.USER_SPEECH_STARTED): State.LISTENING,
    (State.WAKE, Event.RESPONSE_STARTED): State.THINKING,
    (State.IDLE, Event.USER_SPEECH_STARTED): State.LISTENING,
    (State.THINKING, Event.USER_SPEECH_STARTED): State.LISTENING,
    (State.SPEAKING, Event.USER_SPEECH_STARTED): State.LISTENING,  # barge-in
    (State.LISTENING, Event.USER_SPEECH_STOPPED): State.THINKING,
    (State.IDLE, Event.RESPONSE_STARTED): State.THINKING,
    (State.LISTENING, Event.RESPONSE_STARTED): State.THINKING,
    (State.IDLE, Event.REPLY_AUDIO_STARTED): State.SPEAKING,
    (State.LISTENING, Event.REPLY_AUDIO_STARTED): State.SPEAKING,
    (State.THINKING, Event.REPLY_AUDIO_STARTED): State.SPEAKING,
    (State.THINKING, Event.REPLY_FINISHED): State.IDLE,
    (State.SPEAKING, Event.REPLY_FINISHED): State.IDLE,
}


def transition(state: State, event: Event) -> State:
    """The state after ``event``; unlisted pairs keep the state."""
    return TRANSITIONS.get((state, event), state)
