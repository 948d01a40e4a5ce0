"""The activation policy: when microphone audio may leave the device (pure, audio time)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.activation import Activation, ActivationSettings


def policy(mode: str = "wake_word", timeout_s: float = 8.0, follow_up_s: float = 5.0) -> Activation:
    return Activation(ActivationSettings(mode, timeout_s, follow_up_s))


def test_wake_word_mode_starts_closed_and_opens_on_activation() -> None:
    p = policy()
    assert not p.is_open
    p.speech_started(1.0)  # speech before the wake word does not open anything
    assert not p.is_open
    p.activate(2.0)
    assert p.is_open and p.awaiting_speech


def test_an_activation_without_speech_runs_out_once() -> None:
    p = policy(timeout_s=8.0)
    p.activate(10.0)
    assert not p.tick(17.99)
    assert p.tick(18.0)
    assert not p.is_open
    assert not p.tick(30.0)  # said once


def test_speech_holds_the_activation_open_and_its_end_restarts_the_wait() -> None:
    p = policy(timeout_s=8.0)
    p.activate(0.0)
    p.speech_started(1.0)
    assert not p.awaiting_speech
    assert not p.tick(100.0)  # the user is still talking
    p.speech_stopped(100.0)
    assert not p.tick(107.0)
    assert p.tick(108.0)


def test_a_running_reply_holds_it_open_and_its_end_opens_the_follow_up() -> None:
    p = policy(timeout_s=8.0, follow_up_s=5.0)
    p.activate(0.0)
    p.speech_started(1.0)
    p.speech_stopped(3.0)
    p.response_started()
    assert not p.tick(60.0)  # a long reply
    p.reply_finished(60.0)
    assert p.is_open and p.awaiting_speech and p.follow_ups == 1
    assert not p.tick(64.9)
    assert p.tick(65.0)


def test_follow_up_off_closes_right_after_the_reply() -> None:
    p = policy(follow_up_s=0.0)
    p.activate(0.0)
    p.speech_started(1.0)
    p.speech_stopped(2.0)
    p.response_started()
    p.reply_finished(5.0)
    assert p.tick(5.0)
    assert not p.is_open


def test_speech_in_the_follow_up_window_keeps_the_conversation_going() -> None:
    p = policy(follow_up_s=5.0)
    p.activate(0.0)
    p.speech_started(1.0)
    p.speech_stopped(2.0)
    p.response_started()
    p.reply_finished(6.0)
    p.speech_started(8.0)  # an answer without the wake word
    assert not p.tick(20.0)
    assert p.is_open


def test_a_reply_cut_by_a_new_activation_does_not_shorten_it() -> None:
    p = policy(timeout_s=8.0, follow_up_s=0.0)
    p.activate(0.0)
    p.speech_started(0.5)
    p.speech_stopped(1.0)
    p.response_started()
    p.activate(4.0)  # the wake word over the reply
    p.reply_finished(4.1)  # the cut reply ends
    assert not p.tick(11.9)
    assert p.tick(12.0)


def test_the_user_ending_it_closes_at_once() -> None:
    p = policy()
    p.activate(0.0)
    p.end()
    assert not p.is_open and not p.tick(100.0)


def test_always_mode_is_always_open_and_never_runs_out() -> None:
    p = policy("always")
    assert p.is_open
    p.activate(0.0)
    p.end()
    p.reply_finished(1.0)
    assert p.is_open
    assert not p.tick(1e6)


def test_push_to_talk_has_no_follow_up() -> None:
    p = policy("push_to_talk", follow_up_s=5.0)
    p.activate(0.0)  # the button went down
    p.speech_started(0.2)
    p.speech_stopped(2.0)
    p.response_started()
    p.reply_finished(4.0)
    assert p.tick(4.0)
    assert p.follow_ups == 0


def test_a_dropped_connection_ends_the_wait_for_a_reply() -> None:
    p = policy(timeout_s=8.0)
    p.activate(0.0)
    p.speech_started(0.5)
    p.speech_stopped(1.0)
    p.response_started()
    p.disconnected()
    assert p.tick(9.0)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        ActivationSettings("sometimes")
    with pytest.raises(ValueError):
        ActivationSettings("wake_word", 0.0, 5.0)


_STEP = st.sampled_from(["activate", "end", "speech", "silence", "response", "reply", "tick"])


@given(st.lists(st.tuples(_STEP, st.floats(0.0, 30.0)), max_size=40))
def test_wake_word_mode_is_closed_unless_something_opened_it(
    steps: list[tuple[str, float]],
) -> None:
    """Only an activation or a finished reply (its follow-up) ever opens the policy,
    an opened one always runs out once nothing holds it, and it says so exactly once."""
    p = policy(timeout_s=3.0, follow_up_s=2.0)
    now = 0.0
    opened_by = False
    for step, dt in steps:
        now += dt
        if step == "activate":
            p.activate(now)
            opened_by = True
        elif step == "end":
            p.end()
        elif step == "speech":
            p.speech_started(now)
        elif step == "silence":
            p.speech_stopped(now)
        elif step == "response":
            p.response_started()
        elif step == "reply":
            p.reply_finished(now)
            opened_by = True
        else:
            was_open = p.is_open
            ended = p.tick(now)
            assert ended == (was_open and not p.is_open)
        if p.is_open:
            assert opened_by
    p.speech_stopped(now)
    p.disconnected()
    if p.is_open:
        assert p.tick(now + 3.0)
        assert not p.is_open
