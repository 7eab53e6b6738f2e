"""Monitor state per location, from consecutive results: the failure and success thresholds.

Pure functions, no I/O: the result writer keeps the previous snapshot in memory and stores the next one.

- ``pending`` until the first result; a DOWN result below ``failureThreshold`` leaves it pending (one
  failed check has not shown the monitor is down, nor that it is up).
- ``failureThreshold`` consecutive DOWN results make it ``down``; fewer never do.
- Once down, it takes ``successThreshold`` consecutive UP or DEGRADED results to leave ``down``, to
  ``up`` or ``degraded`` as the last result says; fewer never do.
- Not down: a DEGRADED result makes it ``degraded``, an UP result ``up``; a DOWN result below the
  threshold keeps the state it had.
- ``paused`` while the monitor is paused; unpausing starts over at ``pending``.
- A STALLED result (the probe itself was stopped or starved during the check) is no result: it
  changes neither the state nor the consecutive counts, so it neither confirms nor breaks a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from spectra.probe.result import Status


class State(StrEnum):
    PENDING = "pending"
    UP = "up"
    DOWN = "down"
    DEGRADED = "degraded"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    state: State = State.PENDING
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_status: Status | None = None


PENDING = StateSnapshot()


def next_state(
    previous: StateSnapshot | None,
    result_status: Status | None,
    failure_threshold: int,
    success_threshold: int,
    paused: bool = False,
) -> StateSnapshot:
    """The snapshot after ``result_status`` (None: no new result, e.g. when only pausing)."""
    if failure_threshold < 1 or success_threshold < 1:
        raise ValueError("thresholds must be at least 1")
    if paused:
        last = previous.last_status if previous is not None else None
        return StateSnapshot(State.PAUSED, last_status=last)
    if previous is None or previous.state is State.PAUSED:
        previous = PENDING
    if result_status is None:
        return previous
    status = Status(result_status)
    if status is Status.STALLED:
        return previous
    if status is Status.DOWN:
        failures = previous.consecutive_failures + 1
        state = State.DOWN if failures >= failure_threshold else previous.state
        return StateSnapshot(state, failures, 0, status)
    successes = previous.consecutive_successes + 1
    reached = State.UP if status is Status.UP else State.DEGRADED
    if previous.state is State.DOWN and successes < success_threshold:
        reached = State.DOWN  # still recovering
    return StateSnapshot(reached, 0, successes, status)
