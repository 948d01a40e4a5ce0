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
            [Event.CONNECTED, Event.USER_SPEECH_STARTED, Event.USER_SPEECH_STOPPED,
             Event.RESPONSE_STARTED, Event.REPLY_AUDIO_STARTED],
            State.SPEAKING,
        ),
        (
            [Event.CONNECTED, Event.RESPONSE_STARTED, Event.REPLY_AUDIO_STARTED,
             Event.REPLY_FINISHED],
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


def test_fault_only_leaves_by_recovery() -> None:
    leaving = [e for e in Event if transition(State.FAULT, e) is not State.FAULT]
    assert leaving == [Event.RECOVERED]


def test_table_has_no_self_loops() -> None:
    assert all(src is not dst for (src, _), dst in TRANSITIONS.items())
