"""When a session is replaced before the service's 60-minute limit; pure, on given times."""

from __future__ import annotations

import pytest

from device.rotation import FORCE_MARGIN_S, RotationPlan, is_quiet
from device.state import State

EXPIRES_AT_S = 10_000.0


def test_rotation_off_means_no_plan() -> None:
    assert RotationPlan.for_session(EXPIRES_AT_S, 0) is None


def test_the_window_opens_rotate_before_s_ahead_and_the_force_point_is_near_the_end() -> None:
    plan = RotationPlan.for_session(EXPIRES_AT_S, 300)
    assert plan is not None
    assert plan.window_start_s == EXPIRES_AT_S - 300
    assert plan.force_at_s == EXPIRES_AT_S - FORCE_MARGIN_S


def test_a_short_window_forces_at_its_last_quarter() -> None:
    plan = RotationPlan.for_session(EXPIRES_AT_S, 4)
    assert plan is not None
    assert plan.force_at_s == EXPIRES_AT_S - 1


@pytest.mark.parametrize(
    ("now_s", "quiet", "due"),
    [
        (EXPIRES_AT_S - 301, True, False),  # before the window, however quiet
        (EXPIRES_AT_S - 300, True, True),  # the window opened and all is quiet
        (EXPIRES_AT_S - 299, False, False),  # busy: wait for a quiet moment
        (EXPIRES_AT_S - 11, False, False),
        (EXPIRES_AT_S - 10, False, True),  # never quiet: rotate anyway before the end
        (EXPIRES_AT_S + 5, False, True),  # late (a slow loop): still due
    ],
)
def test_due(now_s: float, quiet: bool, due: bool) -> None:
    plan = RotationPlan.for_session(EXPIRES_AT_S, 300)
    assert plan is not None
    assert plan.due(now_s, quiet) is due


def test_wait_s_counts_down_to_the_window() -> None:
    plan = RotationPlan.for_session(EXPIRES_AT_S, 300)
    assert plan is not None
    assert plan.wait_s(EXPIRES_AT_S - 400) == 100
    assert plan.wait_s(EXPIRES_AT_S - 100) == 0


@pytest.mark.parametrize("state", [State.IDLE, State.MUTED, State.FAULT, State.OFFLINE])
def test_quiet_when_nothing_happens(state: State) -> None:
    assert is_quiet(state, response_running=False, queued_frames=0, gate_open=False)


@pytest.mark.parametrize(
    ("state", "running", "queued", "gate"),
    [
        (State.LISTENING, False, 0, False),  # the service hears someone
        (State.THINKING, False, 0, False),  # a reply or a tool is on its way
        (State.SPEAKING, False, 0, False),
        (State.WAKE, False, 0, False),  # a turn is about to start
        (State.IDLE, True, 0, False),  # an out-of-band response runs
        (State.IDLE, False, 480, False),  # reply audio still to play
        (State.IDLE, False, 0, True),  # our own voice detector hears someone
    ],
)
def test_not_quiet_while_anything_would_be_cut(
    state: State, running: bool, queued: int, gate: bool
) -> None:
    assert not is_quiet(state, running, queued, gate)
