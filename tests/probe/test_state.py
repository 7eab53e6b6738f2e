"""The state machine: thresholds, recovery, pausing; table-driven plus properties over random runs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spectra.probe.result import Status
from spectra.probe.state import State, StateSnapshot, next_state

U, D, G, S = Status.UP, Status.DOWN, Status.DEGRADED, Status.STALLED
PENDING, UP, DOWN, DEGRADED = State.PENDING, State.UP, State.DOWN, State.DEGRADED


def walk(results: list[Status], failure: int, success: int) -> list[State]:
    snapshot: StateSnapshot | None = None
    states = []
    for status in results:
        snapshot = next_state(snapshot, status, failure, success)
        states.append(snapshot.state)
    return states


@pytest.mark.parametrize(
    ("results", "failure", "success", "expected"),
    [
        pytest.param([U], 2, 1, [UP], id="first-up"),
        pytest.param([G], 2, 1, [DEGRADED], id="first-degraded"),
        pytest.param([D], 1, 1, [DOWN], id="threshold-1-first-down"),
        pytest.param([D, D], 2, 1, [PENDING, DOWN], id="pending-until-confirmed"),
        pytest.param([U, D, D], 2, 1, [UP, UP, DOWN], id="up-then-two-failures"),
        pytest.param([U, D, U, D, U], 2, 1, [UP, UP, UP, UP, UP], id="flapping-never-confirms"),
        pytest.param([D, D, D, U], 3, 1, [PENDING, PENDING, DOWN, UP], id="threshold-3"),
        pytest.param([D, D, U, U], 2, 2, [PENDING, DOWN, DOWN, UP], id="recovery-needs-two"),
        pytest.param([D, D, U, D, U, U], 2, 2, [PENDING, DOWN, DOWN, DOWN, DOWN, UP], id="recovery-restarts"),
        pytest.param([D, D, G, G], 2, 2, [PENDING, DOWN, DOWN, DEGRADED], id="recover-to-degraded"),
        pytest.param([D, D, G, U], 2, 2, [PENDING, DOWN, DOWN, UP], id="degraded-counts-as-success"),
        pytest.param([U, G, U], 2, 1, [UP, DEGRADED, UP], id="degraded-and-back"),
        pytest.param([G, D, G], 2, 1, [DEGRADED, DEGRADED, DEGRADED], id="degraded-one-failure"),
        # A stalled probe's result is no result: it neither confirms nor breaks a run.
        pytest.param([S], 1, 1, [PENDING], id="first-stalled-stays-pending"),
        pytest.param([U, S, S, S], 1, 1, [UP, UP, UP, UP], id="stalls-never-take-up-down"),
        pytest.param([D, S, D], 2, 1, [PENDING, PENDING, DOWN], id="stall-does-not-break-failures"),
        pytest.param([D, D, S, S], 2, 1, [PENDING, DOWN, DOWN, DOWN], id="stalls-do-not-recover"),
        pytest.param([D, D, U, S, U], 2, 2, [PENDING, DOWN, DOWN, DOWN, UP], id="stall-does-not-break-recovery"),
    ],
)
def test_transitions(results: list[Status], failure: int, success: int, expected: list[State]) -> None:
    assert walk(results, failure, success) == expected


def test_counters() -> None:
    snapshot = next_state(None, D, 3, 2)
    snapshot = next_state(snapshot, D, 3, 2)
    assert snapshot == StateSnapshot(PENDING, consecutive_failures=2, consecutive_successes=0, last_status=D)
    snapshot = next_state(snapshot, U, 3, 2)
    assert snapshot == StateSnapshot(UP, consecutive_failures=0, consecutive_successes=1, last_status=U)


def test_pausing_and_unpausing_starts_over() -> None:
    down = next_state(next_state(None, D, 2, 1), D, 2, 1)
    assert down.state is DOWN
    paused = next_state(down, None, 2, 1, paused=True)
    assert paused.state is State.PAUSED
    assert (paused.consecutive_failures, paused.consecutive_successes) == (0, 0)
    # Unpaused: judged afresh, so one failure is not yet down, and one success is up at once.
    assert next_state(paused, D, 2, 1).state is PENDING
    assert next_state(paused, U, 2, 1).state is UP


@pytest.mark.parametrize("no_result", [None, S], ids=["none", "stalled"])
def test_no_result_keeps_the_state(no_result: Status | None) -> None:
    up = next_state(None, U, 2, 1)
    assert next_state(up, no_result, 2, 1) == up
    failing = next_state(None, D, 3, 1)
    assert next_state(failing, no_result, 3, 1) == failing
    assert next_state(None, no_result, 2, 1).state is PENDING


@pytest.mark.parametrize(("failure", "success"), [(0, 1), (1, 0)])
def test_thresholds_must_be_positive(failure: int, success: int) -> None:
    with pytest.raises(ValueError, match="thresholds"):
        next_state(None, U, failure, success)


@given(
    results=st.lists(st.sampled_from([U, D, G]), max_size=60),
    failure=st.integers(1, 5),
    success=st.integers(1, 5),
)
def test_thresholds_hold_on_any_run(results: list[Status], failure: int, success: int) -> None:
    states = walk(results, failure, success)
    previous = PENDING
    for index, (status, state) in enumerate(zip(results, states, strict=True)):
        run = 0  # consecutive results like this one, ending here
        for earlier in reversed(results[: index + 1]):
            if (earlier is D) != (status is D):
                break
            run += 1
        if state is DOWN and previous is not DOWN:
            assert status is D
            assert run >= failure, "went down with too few consecutive failures"
        if previous is DOWN and state is not DOWN:
            assert status is not D
            assert run >= success, "left down with too few consecutive successes"
        if status is D and run >= failure:
            assert state is DOWN, "enough consecutive failures must mean down"
        if status is not D and previous is not DOWN:
            assert state is (UP if status is U else DEGRADED)
        previous = state


@given(
    results=st.lists(st.sampled_from([U, D, G, S]), max_size=60),
    failure=st.integers(1, 5),
    success=st.integers(1, 5),
)
def test_stalled_results_change_nothing_on_any_run(results: list[Status], failure: int, success: int) -> None:
    def final(statuses: list[Status]) -> StateSnapshot | None:
        snapshot: StateSnapshot | None = None
        for status in statuses:
            snapshot = next_state(snapshot, status, failure, success)
        return snapshot

    judged = [status for status in results if status is not S]
    assert (final(results) or StateSnapshot()) == (final(judged) or StateSnapshot())
