"""The probe's own lateness: how long its event loop was not running when it should have been.

A check's timeout counts wall time, and wall time also passes while the probe itself is stopped
(SIGSTOP, a paused VM), starved of CPU, or blocked in its own code. Time the probe lost that way is
no fault of the target, so the worker must know it. :class:`LoopLag` ticks every ``tick_s`` on the
event loop and adds up how late each tick woke; a tick that is due but has not run yet counts as
late already, so a check finishing right after the process resumes sees the whole gap even when its
timeout fires before the tick does.

:func:`lateness_cause` is the one decision of whether a failed check's failure is our own lateness,
not a verdict on the target (run_check then reports it as "probe stalled"). There are three causes:

- **loop lag**: the loop was late by a real share of the check's timeout while the check ran
  (:func:`ate_budget`): the process was stopped, paused or starved, or each of its loop iterations took
  so long that the check's own events waited for them.
- **behind schedule**: the check started a second or more (and a quarter of its timeout) after its slot,
  so the probe is saturated, and the check then ran out of time (it timed out, or was slow). The tick only
  counts its own lateness past its 0.1 s sleep, while a check waits in full for every long iteration the
  loop runs while it is in flight (and a probe catching up starts hundreds of checks at once): a saturated
  probe's timeouts are too unreliable to judge a target by. A failure that came quickly (a refused
  connection, a wrong status code, a missing text) is still a verdict however late the check started.
- **queued**: the check waited a real share of its timeout for the probe's own shared capacity (a turn
  at the evaluator processes, :func:`waiting_for`) and then ran out of time. An answer the evaluator
  gave is still a verdict: its budget counts from when it starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import Protocol

log = logging.getLogger(__name__)

TICK_S = 0.1
STALL_S = 1.0  # a tick this late: the process was stopped, paused or starved, not just busy
BUDGET_SHARE = 0.25  # lateness of this share of a check's timeout voids the check's failure
MIN_VOIDING_LAG_S = 0.1  # below this, lateness is ordinary scheduling noise, whatever the timeout
MIN_LATE_START_S = 1.0  # a check started this late (and BUDGET_SHARE of its timeout): the probe is saturated
OUT_OF_TIME_SHARE = 0.75  # a failure after this share of the timeout ran out of time (a timeout, no answer)
LOG_EVERY_S = 30.0  # at most one warning per this many seconds while stalls go on


class _Observe(Protocol):
    def observe(self, amount: float) -> None: ...


class _Increment(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class LagMetrics(Protocol):
    """Where the lag goes (spectra.probe.metrics.ProbeMetrics has these)."""

    @property
    def loop_lag(self) -> _Observe: ...

    @property
    def loop_stalls(self) -> _Increment: ...


def ate_budget(lag_s: float, timeout_s: float) -> bool:
    """Whether ``lag_s`` of the probe's own lateness during a check took a real share of its timeout."""
    return lag_s >= max(MIN_VOIDING_LAG_S, BUDGET_SHARE * timeout_s)


class LatenessCause(StrEnum):
    LOOP_LAG = "loop lag"
    BEHIND_SCHEDULE = "behind schedule"
    QUEUED = "queued"


class Queued:
    """How long one check waited for the probe's shared capacity (see :func:`waiting_for`)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.what = ""


_QUEUED: ContextVar[Queued | None] = ContextVar("spectra_probe_queued", default=None)


@contextmanager
def queue_of_this_check() -> Iterator[Queued]:
    """Count the time the check run inside (in this task) waits in :func:`waiting_for`."""
    queued = Queued()
    token = _QUEUED.set(queued)
    try:
        yield queued
    finally:
        _QUEUED.reset(token)


@contextmanager
def waiting_for(what: str) -> Iterator[None]:
    """Time spent inside is the check waiting for ``what`` (the probe's, not the target's), also when the
    check's timeout ends the wait."""
    started = time.monotonic()
    try:
        yield
    finally:
        queued = _QUEUED.get()
        if queued is not None:
            queued.seconds += time.monotonic() - started
            queued.what = what


def lateness_cause(
    *,
    timeout_s: float,
    loop_lag_s: float,
    started_late_s: float,
    elapsed_s: float,
    slow: bool = False,
    queued_s: float = 0.0,
) -> LatenessCause | None:
    """Why a failed check's failure is the probe's own lateness, or None when it is a verdict on the target.

    ``loop_lag_s``: how late the loop was while the check ran; ``started_late_s``: how long after its slot
    the check started; ``elapsed_s``: how long it ran (wall time); ``slow``: it failed on a latency limit
    (DEGRADED), which lateness can cause however soon it ended; ``queued_s``: how long it waited for the
    probe's shared capacity.
    """
    if ate_budget(loop_lag_s, timeout_s):
        return LatenessCause.LOOP_LAG
    behind = started_late_s >= max(MIN_LATE_START_S, BUDGET_SHARE * timeout_s)
    if behind and (slow or elapsed_s >= OUT_OF_TIME_SHARE * timeout_s):
        return LatenessCause.BEHIND_SCHEDULE
    if ate_budget(queued_s, timeout_s) and elapsed_s >= OUT_OF_TIME_SHARE * timeout_s:
        return LatenessCause.QUEUED
    return None


class LoopLag:
    def __init__(
        self,
        metrics: LagMetrics | None = None,
        *,
        tick_s: float = TICK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if tick_s <= 0:
            raise ValueError("tick must be positive")
        self.metrics = metrics
        self.tick_s = tick_s
        self._clock = clock
        self.total_s = 0.0  # lateness of all ticks that ran
        self.stalls = 0  # ticks at least STALL_S late
        self._expected: float | None = None  # when the pending tick should wake; None: not ticking
        self._logged_at = -LOG_EVERY_S
        self._unlogged = 0

    @property
    def ticking(self) -> bool:
        return self._expected is not None

    def mark(self) -> float:
        """The lateness so far, to hand to :meth:`since` later."""
        pending = 0.0
        if self._expected is not None:
            pending = max(0.0, self._clock() - self._expected)
        return self.total_s + pending

    def since(self, mark: float) -> float:
        """Seconds the loop was late since :meth:`mark` returned ``mark``."""
        return max(0.0, self.mark() - mark)

    async def run(self) -> None:
        """Tick until cancelled."""
        try:
            while True:
                self._expected = self._clock() + self.tick_s
                await asyncio.sleep(self.tick_s)
                self._record(max(0.0, self._clock() - self._expected))
        finally:
            self._expected = None

    def _record(self, late_s: float) -> None:
        self.total_s += late_s
        if self.metrics is not None:
            self.metrics.loop_lag.observe(late_s)
        if late_s < STALL_S:
            return
        self.stalls += 1
        if self.metrics is not None:
            self.metrics.loop_stalls.inc()
        self._unlogged += 1
        now = self._clock()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning(
                "the probe was not running for %.1f s (%d stall(s) since the last warning): the process was "
                "stopped or starved of CPU; checks whose time this took are reported as probe stalled, not down",
                late_s,
                self._unlogged,
            )
            self._logged_at, self._unlogged = now, 0
