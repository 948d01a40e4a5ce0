from __future__ import annotations

import itertools

import pytest

from device.state import TRANSITIONS, Event, State, transition


def test_every_state_event_pair_gives_a_state() -> None:
    for state, event in itertools.product(State, Event):
        assert isinstance(transition(state, event), State)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([Event.CONNECTED], State.IDLE),
        ([Event.CONNECTED, Event.USER_SPEECH_STARTED], State.LISTENING),
        ([Event.CONNECTED, Event.USER_SPEECH_STARTED, Event.USER_SPEECH_STOPPED], State.THINKING),
        (
            [
                Event.CONNECTED,
                Event.USER_SPEECH_STARTED,
                Event.USER_SPEECH_STOPPED,
                Event.RESPONSE_STARTED,
                Event.REPLY_AUDIO_STARTED,
            ],
            State.SPEAKING,
        ),
        (
            [
                Event.CONNECTED,
                Event.RESPONSE_STARTED,
                Event.REPLY_AUDIO_STARTED,
                Event.REPLY_FINISHED,
            ],
            State.IDLE,
        ),
        # barge-in: the user talks over the reply
        (
            [Event.CONNECTED, Event.REPLY_AUDIO_STARTED, Event.USER_SPEECH_STARTED],
            State.LISTENING,
        ),
        ([Event.CONNECTED, Event.REPLY_AUDIO_STARTED, Event.DISCONNECTED], State.OFFLINE),
        ([Event.CONNECTED, Event.FAULT], State.FAULT),
        ([Event.FAULT, Event.RECOVERED, Event.CONNECTED], State.IDLE),
    ],
)
def test_conversation_paths(events: list[Event], expected: State) -> None:
    state = State.OFFLINE
    for event in events:
        state = transition(state, event)
    assert state is expected


def test_offline_ignores_conversation_events() -> None:
    for event in (Event.USER_SPEECH_STARTED, Event.RESPONSE_STARTED, Event.REPLY_AUDIO_STARTED):
        assert transition(State.OFFLINE, event) is State.OFFLINE


def test_fault_only_leaves_by_recovery_or_for_setup() -> None:
    # A device that is not set up shows that first: fixing the fault would not help.
    leaving = [e for e in Event if transition(State.FAULT, e) is not State.FAULT]
    assert leaving == [Event.RECOVERED, Event.SETUP_NEEDED]


def test_muted_is_left_only_by_unmute_fault_or_setup() -> None:
    leaving = {
        e: transition(State.MUTED, e)
        for e in Event
        if transition(State.MUTED, e) is not State.MUTED
    }
    assert leaving == {
        Event.UNMUTED: State.OFFLINE,
        Event.FAULT: State.FAULT,
        Event.SETUP_NEEDED: State.SETUP,
    }


def test_session_events_never_unmute() -> None:
    session_events = (
        Event.CONNECTED,
        Event.USER_SPEECH_STARTED,
        Event.RESPONSE_STARTED,
        Event.REPLY_AUDIO_STARTED,
        Event.WAKE_DETECTED,
        Event.DISCONNECTED,
    )
    assert all(transition(State.MUTED, e) is State.MUTED for e in session_events)


def test_wake_leads_to_listening_or_back_to_idle() -> None:
    assert transition(State.IDLE, Event.WAKE_DETECTED) is State.WAKE
    assert transition(State.WAKE, Event.USER_SPEECH_STARTED) is State.LISTENING
    assert transition(State.WAKE, Event.ACTIVATION_ENDED) is State.IDLE
    assert transition(State.SPEAKING, Event.WAKE_DETECTED) is State.WAKE


def test_table_has_no_self_loops() -> None:
    assert all(src is not dst for (src, _), dst in TRANSITIONS.items())
