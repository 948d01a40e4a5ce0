"""The device state machine over every (state, event) pair and random event sequences.

The invariants come from what the states promise a person looking at the speaker:
an online state (idle, listening, thinking, speaking, wake) means the service is
there, so it is entered only from OFFLINE by CONNECTED, never while the link is
known down; FAULT stays until the fault is RECOVERED; SETUP stays until SETUP_DONE;
no state is a trap the device cannot get back to IDLE from. States and events are
iterated from the enums, so new ones are held to the same rules.
"""

from __future__ import annotations

import itertools
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.state import TRANSITIONS, Event, State, transition

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True)

# The states in which the service is connected and the device is in a conversation.
ONLINE = frozenset({State.IDLE, State.WAKE, State.LISTENING, State.THINKING, State.SPEAKING})
# Events the service or the audio path produce while a conversation runs: arriving late,
# after the link went down, they must not light a conversation state.
CONVERSATION_EVENTS = frozenset({
    Event.USER_SPEECH_STARTED, Event.USER_SPEECH_STOPPED, Event.RESPONSE_STARTED,
    Event.REPLY_AUDIO_STARTED, Event.REPLY_FINISHED,
})  # fmt: skip
PAIRS = list(itertools.product(State, Event))


def run(events: list[Event], start: State = State.OFFLINE) -> list[State]:
    states = [start]
    for event in events:
        states.append(transition(states[-1], event))
    return states


# -- every pair -------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s.value}-{e.value}" for s, e in PAIRS])
def test_every_pair_gives_a_state_and_unlisted_pairs_keep_it(state: State, event: Event) -> None:
    after = transition(state, event)
    assert isinstance(after, State)
    if (state, event) not in TRANSITIONS:
        assert after is state


def test_an_online_state_is_entered_from_offline_by_connected_only() -> None:
    for state, event in PAIRS:
        after = transition(state, event)
        if after in ONLINE and state not in ONLINE:
            assert (state, event) == (State.OFFLINE, Event.CONNECTED)


def test_fault_is_left_only_when_it_is_recovered_or_setup_is_needed() -> None:
    for event in Event:
        after = transition(State.FAULT, event)
        if after is not State.FAULT:
            assert event in (Event.RECOVERED, Event.SETUP_NEEDED), event
            assert after not in ONLINE  # recovery goes through OFFLINE and a real CONNECTED


def test_setup_is_left_only_when_setup_is_done() -> None:
    for event in Event:
        after = transition(State.SETUP, event)
        assert after is State.SETUP or (event is Event.SETUP_DONE and after is State.OFFLINE)


def test_offline_ignores_late_conversation_events() -> None:
    for event in CONVERSATION_EVENTS:
        assert transition(State.OFFLINE, event) is State.OFFLINE


def test_a_fault_wins_over_every_conversation_state() -> None:
    for state in ONLINE | {State.OFFLINE}:
        assert transition(state, Event.FAULT) is State.FAULT


def test_a_lost_link_leaves_every_online_state() -> None:
    for state in ONLINE:
        assert transition(state, Event.DISCONNECTED) not in ONLINE


def test_every_state_is_reachable_and_none_is_a_trap() -> None:
    def reachable(start: State) -> set[State]:
        seen, todo = {start}, deque([start])
        while todo:
            state = todo.popleft()
            for event in Event:
                after = transition(state, event)
                if after not in seen:
                    seen.add(after)
                    todo.append(after)
        return seen

    assert reachable(State.OFFLINE) == set(State)  # the daemon starts OFFLINE
    for state in State:
        assert State.IDLE in reachable(state), f"{state.value} cannot get back to idle"


# -- random sequences -------------------------------------------------------------------

events = st.lists(st.sampled_from(list(Event)), max_size=80)


@SETTINGS
@given(events, st.sampled_from(list(State)))
def test_no_online_state_while_the_link_is_known_down(sequence: list[Event], start: State) -> None:
    """After DISCONNECTED, nothing but CONNECTED brings an online state back."""
    link_up = start in ONLINE
    state = start
    for event in sequence:
        state = transition(state, event)
        if event is Event.CONNECTED:
            link_up = True
        elif event is Event.DISCONNECTED:
            link_up = False
        if state in ONLINE:
            assert link_up, (sequence, state)


@SETTINGS
@given(events)
def test_fault_holds_until_recovered(sequence: list[Event]) -> None:
    states = run(sequence)
    for before, event, after in zip(states, sequence, states[1:], strict=False):
        if before is State.FAULT and after is not State.FAULT:
            assert event in (Event.RECOVERED, Event.SETUP_NEEDED)


@SETTINGS
@given(events)
def test_muted_holds_until_unmuted_a_fault_or_setup(sequence: list[Event]) -> None:
    states = run(sequence)
    for before, event, after in zip(states, sequence, states[1:], strict=False):
        if before is State.MUTED and after is not State.MUTED:
            assert event in (Event.UNMUTED, Event.FAULT, Event.SETUP_NEEDED)
            assert after not in ONLINE  # unmuting re-announces the real connection first
