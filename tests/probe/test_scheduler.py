"""The fixed-rate scheduler, on the real event loop and clock.

Assertions are about slots and counts (exact), never about speed: lags only get lower bounds where
waiting is the point (bounded concurrency), or a bound of one interval to show there is no drift.
Where a test waits for runs it waits until they happened (tests.support.waiting), not a fixed time, and
where a wall-time bound remains (drift, a late wake-up) the interval is long enough (>= 1 s) that a busy
machine stays inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable

import pytest

from spectra.probe.lag import LoopLag
from spectra.probe.scheduler import ScheduledCheck, Scheduler, default_phase
from tests.support.waiting import eventually

Run = Callable[[ScheduledCheck], Awaitable[None]]


@contextlib.asynccontextmanager
async def running(scheduler: Scheduler) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(scheduler.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def soon_phase(interval: float, ahead: float = 0.05) -> float:
    """A phase whose next slot is ``ahead`` seconds from now."""
    return (time.time() + ahead) % interval


async def test_slots_are_exact_multiples_plus_phase_even_when_checks_take_time() -> None:
    interval, phase = 1.0, 0.37
    seen: list[tuple[ScheduledCheck, float]] = []

    async def run(check: ScheduledCheck) -> None:
        seen.append((check, time.time()))
        await asyncio.sleep(0.6)  # most of the interval: "last run + interval" would drift by this much

    scheduler = Scheduler(run)
    scheduler.upsert("m", interval, "payload", phase_s=phase)
    async with running(scheduler):
        await eventually(lambda: len(seen) >= 5)

    assert len(seen) >= 5
    for check, _ in seen:
        assert check.due == check.slot * interval + phase
        assert check.key == "m"
        assert check.payload == "payload"
    slots = [check.slot for check, _ in seen]
    assert slots == sorted(set(slots))
    assert slots[-1] - slots[0] + 1 == len(slots) + scheduler.stats.missed  # every slot run or counted
    # No drift: the fifth run starts as close to its own slot as the first one did.
    assert all(started - check.due < interval for check, started in seen)
    assert scheduler.stats.runs == len(seen)


def test_default_phases_spread_over_the_interval() -> None:
    phases = [default_phase(("ns", f"monitor-{i}"), 60.0) for i in range(20_000)]
    assert all(0 <= phase < 60 for phase in phases)
    per_second = Counter(int(phase) for phase in phases)
    assert len(per_second) == 60
    assert max(per_second.values()) < 1.3 * 20_000 / 60  # no second gets much more than its share
    assert len(set(phases)) > 15_000  # millisecond steps: mostly distinct starts


def test_default_phase_is_the_same_in_every_process() -> None:
    """Leased monitors move between processes: their slot grid must not depend on hash salting."""
    code = "from spectra.probe.scheduler import default_phase; print(default_phase(('ns', 'web'), 60.0), default_phase(42, 30.0))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {f"{default_phase(('ns', 'web'), 60.0)} {default_phase(42, 30.0)}\n"}


async def test_concurrency_is_bounded_and_waiting_counts_as_lag() -> None:
    interval = 30.0
    phase = soon_phase(interval)
    active = peak = 0
    lags: list[float] = []

    async def run(check: ScheduledCheck) -> None:
        nonlocal active, peak
        lags.append(time.time() - check.due)
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.1)
        active -= 1

    scheduler = Scheduler(run, concurrency=3)
    for key in range(9):
        scheduler.upsert(key, interval, None, phase_s=phase)  # all due at the same instant
    async with running(scheduler):
        await eventually(lambda: scheduler.stats.runs == 9 and scheduler.stats.in_flight == 0)

    assert peak == 3
    assert scheduler.stats.runs == 9
    assert len(scheduler.stats.lag) == 9
    # The third wave waited for two waves of 0.1 s: that wait is lag, not hidden.
    assert sorted(lags)[-1] >= 0.2
    assert scheduler.stats.percentile(1.0) == max(scheduler.stats.lag)
    assert scheduler.stats.missed == 0
    assert scheduler.stats.in_flight == 0


async def test_a_slot_whose_previous_run_is_still_going_is_skipped_and_counted() -> None:
    interval = 0.05
    running_now: set[Hashable] = set()
    overlaps = 0
    slots: dict[Hashable, list[int]] = defaultdict(list)
    missed_at_start: list[int] = []  # scheduler.stats.missed as each run starts

    async def run(check: ScheduledCheck) -> None:
        nonlocal overlaps
        overlaps += check.key in running_now
        running_now.add(check.key)
        slots[check.key].append(check.slot)
        missed_at_start.append(scheduler.stats.missed)
        await asyncio.sleep(0.12)  # longer than two intervals
        running_now.discard(check.key)

    scheduler = Scheduler(run)
    scheduler.upsert("slow", interval, None)
    async with running(scheduler):
        await eventually(lambda: len(slots["slow"]) >= 4)
    ran = slots["slow"]
    missed = missed_at_start[len(ran) - 1]  # as the last run started: only the gaps can be in it

    assert overlaps == 0
    assert len(ran) >= 3
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(ran))
    assert gaps >= 2 * (len(ran) - 1)  # each run of 0.12 s covers at least two more slots
    # Every skipped slot between runs is counted; one that came due while the last run was starting may be too.
    assert gaps <= missed <= gaps + 3


async def test_waking_too_late_skips_to_the_newest_slot_and_counts_the_rest() -> None:
    interval = 2.0  # the wake-up after the jump may come up to half of it late and still find slot 6 newest
    offset = 0.0
    seen: list[tuple[ScheduledCheck, int]] = []  # each run, with scheduler.stats.missed as it started

    def clock() -> float:
        return time.time() + offset

    async def run(check: ScheduledCheck) -> None:
        seen.append((check, scheduler.stats.missed))

    scheduler = Scheduler(run, clock=clock)
    scheduler.upsert("m", interval, None)
    async with running(scheduler):
        await eventually(lambda: len(seen) >= 1)
        before = len(seen)
        offset = 5.5 * interval  # the process was frozen: five and a half intervals passed at once
        await eventually(lambda: len(seen) > before)

    (last, missed_before), (first_after, missed_after) = seen[before - 1], seen[before]
    jump = first_after.slot - last.slot
    assert jump in (5, 6)
    assert missed_after - missed_before == jump - 1
    assert len(seen) == len({check.slot for check, _ in seen})


async def test_a_key_busy_for_many_intervals_resumes_on_its_grid_with_every_slot_between_counted() -> None:
    interval = 2.0  # as above: a wake-up up to half of it late still finds the same newest slot
    offset = 0.0
    release = asyncio.Event()
    seen: list[tuple[ScheduledCheck, int]] = []  # each run, with scheduler.stats.missed as it started

    def clock() -> float:
        return time.time() + offset

    async def run(check: ScheduledCheck) -> None:
        seen.append((check, scheduler.stats.missed))
        if len(seen) == 1:
            await release.wait()  # the first run lasts while five and a half intervals pass

    scheduler = Scheduler(run, clock=clock)
    scheduler.upsert("m", interval, None)
    async with running(scheduler):
        await eventually(lambda: len(seen) == 1)
        offset = 5.5 * interval
        await eventually(lambda: scheduler.stats.missed > 0)  # a slot came due while the run went on
        offset = 8.5 * interval  # and three more while it still goes on
        release.set()
        await eventually(lambda: len(seen) == 2)
        await eventually(lambda: len(seen) == 3)

    (first, _), (second, missed_at_second), (third, missed_at_third) = seen
    assert second.slot - first.slot in (9, 10)  # the first slot due after the run ended
    assert missed_at_second == second.slot - first.slot - 1  # every slot between was counted, once
    assert (third.slot, missed_at_third) == (second.slot + 1, missed_at_second)  # back on its grid


async def test_a_key_busy_when_the_scheduler_stops_runs_again_after_a_restart() -> None:
    interval = 2.0
    offset = 0.0
    runs: list[int] = []

    def clock() -> float:
        return time.time() + offset

    async def run(check: ScheduledCheck) -> None:
        runs.append(check.slot)
        if len(runs) == 1:
            await asyncio.sleep(60)  # cancelled by the stop

    scheduler = Scheduler(run, clock=clock)
    scheduler.upsert("m", interval, None)
    task = asyncio.create_task(scheduler.run())
    await eventually(lambda: len(runs) == 1)
    offset = 1.5 * interval
    await eventually(lambda: scheduler.stats.missed > 0)  # its next slot found it busy
    await scheduler.stop(0.01)
    await asyncio.wait_for(task, 20)
    async with running(scheduler):
        await eventually(lambda: len(runs) == 2)
    assert runs[1] > runs[0] + 1


def test_upsert_keeps_phase_and_next_slot_when_the_interval_is_unchanged() -> None:
    async def run(check: ScheduledCheck) -> None:
        return None

    scheduler = Scheduler(run)
    scheduler.upsert("m", 60.0, "v1")
    phase, due = scheduler.phase("m"), scheduler.next_due("m")
    assert phase == default_phase("m", 60.0)
    assert due is not None
    assert time.time() <= due < time.time() + 60
    assert (due - phase) % 60.0 == pytest.approx(0.0, abs=1e-6)

    scheduler.upsert("m", 60.0, "v2")  # a reload with a changed spec, same interval
    assert (scheduler.phase("m"), scheduler.next_due("m")) == (phase, due)
    assert len(scheduler) == 1

    scheduler.upsert("m", 30.0, "v3")  # re-timed: a new grid
    assert scheduler.phase("m") == default_phase("m", 30.0)
    scheduler.upsert("m", 30.0, "v4", phase_s=65.0)  # explicit phases wrap into the interval
    assert scheduler.phase("m") == 5.0

    scheduler.remove("m")
    assert len(scheduler) == 0
    assert "m" not in scheduler
    assert scheduler.next_due("m") is None


async def test_reloads_while_running_neither_drop_nor_shift_slots() -> None:
    interval = 0.05
    seen: list[ScheduledCheck] = []

    async def run(check: ScheduledCheck) -> None:
        seen.append(check)

    scheduler = Scheduler(run)
    scheduler.upsert("m", interval, 0)
    version = 0

    async def reloaded() -> bool:  # a reload every 0.03 s, at least 11 of them, until five slots ran
        nonlocal version
        await asyncio.sleep(0.03)
        version += 1
        scheduler.upsert("m", interval, version)
        return version >= 11 and len(seen) >= 5

    async with running(scheduler):
        await eventually(reloaded)

    slots = [check.slot for check in seen]
    assert len(slots) >= 5
    assert slots[-1] - slots[0] + 1 == len(slots) + scheduler.stats.missed
    assert [check.payload for check in seen] == sorted(check.payload for check in seen)  # newest payload runs
    assert seen[-1].payload > 0


async def test_removed_keys_stop_and_runs_that_fail_do_not_stop_the_scheduler() -> None:
    interval = 0.04
    seen: Counter[Hashable] = Counter()

    async def run(check: ScheduledCheck) -> None:
        seen[check.key] += 1
        if check.key == "broken":
            raise RuntimeError("a bug in one run")

    scheduler = Scheduler(run)
    scheduler.upsert("broken", interval, None)
    scheduler.upsert("gone", interval, None)
    async with running(scheduler):
        await eventually(lambda: seen["gone"] >= 2 and seen["broken"] >= 2)
        scheduler.remove("gone")
        broken_then = seen["broken"]
        # A run of "gone" already queued when it was removed still runs: count after two more slots.
        await eventually(lambda: seen["broken"] >= broken_then + 2)
        removed_at = seen["gone"]
        await eventually(lambda: seen["broken"] >= max(6, broken_then + 6))  # a few intervals after the removal

    assert seen["broken"] >= 6  # kept running after every failure
    assert removed_at >= 2
    assert seen["gone"] == removed_at


@pytest.mark.parametrize(
    ("grace", "takes", "finished"),
    [
        (10.0, 0.15, True),  # a grace of seconds for a check of 0.15 s
        (0.02, 30.0, False),  # a check far longer than a grace that must run out
    ],
)
async def test_stop_lets_running_checks_finish_within_the_grace(grace: float, takes: float, finished: bool) -> None:
    interval = 60.0
    started = asyncio.Event()
    outcome: list[str] = []

    async def run(check: ScheduledCheck) -> None:
        started.set()
        try:
            await asyncio.sleep(takes)
            outcome.append("finished")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    scheduler = Scheduler(run)
    scheduler.upsert("m", interval, None, phase_s=soon_phase(interval, 0.02))
    task = asyncio.create_task(scheduler.run())
    await asyncio.wait_for(started.wait(), 20)
    assert scheduler.stats.in_flight == 1
    await scheduler.stop(grace)
    await asyncio.wait_for(task, 20)  # run() returns after stop()

    assert outcome == (["finished"] if finished else ["cancelled"])
    assert scheduler.stats.in_flight == 0


@pytest.mark.parametrize("ending", ["stop", "cancel"])
async def test_the_loop_lag_ticks_while_the_scheduler_runs(ending: str) -> None:
    async def run(check: ScheduledCheck) -> None:
        """Checks do nothing here: only the lag monitor's life is tested."""

    lag = LoopLag()
    scheduler = Scheduler(run, loop_lag=lag)
    task = asyncio.create_task(scheduler.run())
    await eventually(lambda: lag.ticking)
    if ending == "stop":
        await scheduler.stop()
        await asyncio.wait_for(task, 20)
    else:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not lag.ticking  # a stopped worker measures nothing, so it voids nothing
