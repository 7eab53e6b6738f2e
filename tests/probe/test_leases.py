"""Sharing one location's monitors between workers through leases, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from spectra.probe.context import CheckContext
from spectra.probe.database_health import DatabaseHealth
from spectra.probe.leases import LeaseAssignment, SoloAssignment, Timing, lease_ttl
from spectra.probe.worker import Worker
from spectra.probe.writer import ResultWriter
from spectra.store import CheckResult as ResultRow
from spectra.store import MonitorLease, ProbeWorker
from tests.factories.monitors import tcp_spec
from tests.factories.store import RefusingSessions, Store
from tests.support.waiting import eventually

from .servers import tcp_target

# The monitors the two workers share: every 4 s, with tcp_spec's 2 s timeout.
INTERVAL = "4s"
INTERVAL_S = 4.0
# A fixed TTL: renewed every second, a lease lasts >= 3 s past now, so a slot's 2 s check always fits,
# and a dead worker's monitors move within TTL + TTL/4 = 5 s, well inside the promised two intervals.
LEASE_TTL_S = 4.0


@pytest.mark.parametrize(
    ("timings", "expected"),
    [
        ([], 30.0),
        ([Timing(60, 10)], 30.0),  # capped
        ([Timing(60, 10), Timing(10, 5)], 15.0),  # the shortest interval rules
        ([Timing(1, 0.5)], 1.5),
        ([Timing(60, 50)], (50 + 0.25) * 4 / 3),  # a long check needs a longer lease
    ],
)
def test_lease_ttl(timings: list[Timing], expected: float) -> None:
    assert lease_ttl(timings) == pytest.approx(expected)


async def test_solo_assignment_owns_everything() -> None:
    solo = SoloAssignment()
    solo.set_monitors({1: Timing(60, 10), 2: Timing(30, 5)})
    assert solo.owned == {1, 2}
    assert solo.may_run(1, time.time() + 3600)
    assert not solo.may_run(3, time.time())
    await solo.release()
    assert solo.owned == frozenset()


class Clocks:
    """The clocks a LeaseAssignment reads, set by the test: the database's, monotonic and wall."""

    def __init__(self, database: datetime) -> None:
        self.database = database
        self.monotonic = 1000.0
        self.wall = 1_900_000_000.0

    def advance(self, seconds: float) -> None:
        self.database += timedelta(seconds=seconds)
        self.monotonic += seconds
        self.wall += seconds

    def assignment(self, store: Store, worker_id: str, **options: Any) -> LeaseAssignment:
        return LeaseAssignment(
            "default",
            store.sessions,
            worker_id=worker_id,
            database_clock=lambda session: self.database,
            monotonic=lambda: self.monotonic,
            wall_clock=lambda: self.wall,
            **options,
        )


DB_NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


async def test_a_slot_runs_only_while_the_lease_outlasts_it(store: Store) -> None:
    ids = store.apply({name: tcp_spec(9, interval="10s", timeout="2s") for name in ("a", "b")})
    clocks = Clocks(DB_NOW)
    lease = clocks.assignment(store, "w1", ttl_s=8.0, outage_allowance_s=5.0)
    lease.set_monitors({i: Timing(10, 2) for i in ids.values()})
    await lease.tick()

    assert lease.owned == set(ids.values())
    assert lease.may_run(ids["a"], clocks.wall + 12.9)
    assert not lease.may_run(ids["a"], clocks.wall + 13.0)  # the check would outlive TTL + allowance
    with store.sessions() as session:
        rows = session.execute(sa.select(MonitorLease.worker_id, MonitorLease.lease_until)).all()
    # Written in the database's time, whatever the worker's wall clock says.
    assert set(rows) == {("w1", DB_NOW + timedelta(seconds=13))}

    await lease.release()
    assert lease.owned == frozenset()
    assert not lease.may_run(ids["a"], clocks.wall)
    with store.sessions() as session:
        assert set(session.scalars(sa.select(MonitorLease.worker_id))) == {None}
        assert session.scalars(sa.select(ProbeWorker.worker_id)).all() == []


@pytest.mark.parametrize(
    ("outage_s", "runs", "lapsed"),
    [
        (3.0, True, False),  # within the TTL
        (60.0, True, False),  # beyond the TTL, within TTL + allowance
        (63.0, True, False),  # a 1 s check still fits (8 + 60 - 63 = 5 s left)
        (67.5, False, False),  # 0.5 s left: a 1 s check would outlive the lease
        (68.0, False, True),  # TTL + allowance passed
    ],
)
async def test_a_worker_keeps_its_leases_through_a_database_outage_for_ttl_plus_allowance(
    store: Store, outage_s: float, runs: bool, lapsed: bool
) -> None:
    ids = store.apply({"a": tcp_spec(9, interval="10s", timeout="1s")})
    clocks = Clocks(DB_NOW)
    sessions = RefusingSessions(store)
    lease = LeaseAssignment(
        "default",
        sessions,
        worker_id="w1",
        ttl_s=8.0,
        outage_allowance_s=60.0,
        database_clock=lambda session: clocks.database,
        monotonic=lambda: clocks.monotonic,
        wall_clock=lambda: clocks.wall,
    )
    lease.set_monitors({ids["a"]: Timing(10, 1)})
    await lease.tick()
    sessions.down = True
    clocks.advance(outage_s)
    with pytest.raises(OperationalError):
        await lease.tick()

    assert lease.owned == {ids["a"]}  # still assigned: its slots are run or counted as skipped
    assert lease.may_run(ids["a"], clocks.wall + 1.0) is runs
    assert lease.lapsed is lapsed
    assert (lease.problem() is not None) is lapsed
    if lapsed:
        assert "leases lapsed: 1 monitor(s)" in str(lease.problem())


@pytest.mark.parametrize(
    ("peer_clock_s", "taken"),
    [
        (10.0, False),  # the peer's clock (or the database's, as it sees it) 10 s on: not free yet
        (8.0 + 59.9, False),  # the holder may still be riding out an outage
        (8.0 + 60.1, True),  # TTL + allowance passed in database time: the holder is gone
    ],
)
async def test_a_peer_takes_a_lease_only_once_it_ran_out_in_database_time(
    store: Store, peer_clock_s: float, taken: bool
) -> None:
    ids = store.apply({"a": tcp_spec(9, interval="10s", timeout="1s")})
    holder_clocks = Clocks(DB_NOW)
    holder = holder_clocks.assignment(store, "holder", ttl_s=8.0, outage_allowance_s=60.0)
    holder.set_monitors({ids["a"]: Timing(10, 1)})
    await holder.tick()
    peer_clocks = Clocks(DB_NOW + timedelta(seconds=peer_clock_s))
    peer = peer_clocks.assignment(store, "peer", ttl_s=8.0, outage_allowance_s=60.0)
    peer.set_monitors({ids["a"]: Timing(10, 1)})
    await peer.tick()
    assert peer.owned == ({ids["a"]} if taken else frozenset())


@pytest.mark.parametrize("skew_s", [10.0, -10.0, 3600.0])
async def test_a_wall_clock_skew_does_not_move_leases(store: Store, skew_s: float) -> None:
    """Both read the (real) database clock; one of them has a wall clock that is far off."""
    ids = store.apply({f"m{i}": tcp_spec(9, interval="10s", timeout="1s") for i in range(4)})
    timings = {i: Timing(10, 1) for i in ids.values()}
    healthy = LeaseAssignment("default", store.sessions, worker_id="healthy", ttl_s=2.0)
    skewed = LeaseAssignment(
        "default", store.sessions, worker_id="skewed", ttl_s=2.0, wall_clock=lambda: time.time() + skew_s
    )
    healthy.set_monitors(timings)
    await healthy.tick()
    assert healthy.owned == set(ids.values())
    skewed.set_monitors(timings)
    await skewed.tick()
    assert skewed.owned == frozenset()  # nothing was free: the healthy holder's leases last
    await healthy.tick()  # sees two live workers: hands back its excess
    await skewed.tick()
    assert len(healthy.owned) == len(skewed.owned) == 2
    assert healthy.lost == skewed.lost == 0


async def test_a_failed_tick_is_retried_within_about_a_second_not_after_ttl_over_4(store: Store) -> None:
    ids = store.apply({"a": tcp_spec(9, interval="60s", timeout="1s")})
    sessions = RefusingSessions(store)
    health = DatabaseHealth()
    lease = LeaseAssignment("default", sessions, worker_id="w1", ttl_s=40.0, health=health)  # renews every 10 s
    lease.set_monitors({ids["a"]: Timing(60, 1)})
    sessions.down = True
    task = asyncio.create_task(lease.run(lambda owned: None))
    try:
        await eventually(lambda: lease.renewal_failures >= 3, timeout=9.0)
        assert health.failing
        sessions.down = False
        await eventually(lambda: lease.owned == {ids["a"]}, timeout=9.0)
        assert not health.failing
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_workers_rebalancing_at_once_never_fail_a_tick(store: Store) -> None:
    """Four workers tick at the same moments while they join: rows are locked in one order (no
    deadlock), and a lock conflict the database still reports is retried inside the tick."""
    ids = store.apply({f"m{i}": tcp_spec(9, interval="10s", timeout="1s") for i in range(120)})
    timings = {i: Timing(10, 1) for i in ids.values()}
    workers = [LeaseAssignment("default", store.sessions, worker_id=f"w{n}", ttl_s=4.0) for n in range(4)]
    for worker in workers:
        worker.set_monitors(timings)
    for joined in range(1, len(workers) + 1):
        for _ in range(3):
            await asyncio.gather(*(worker.tick() for worker in workers[:joined]))
    for _ in range(2):
        await asyncio.gather(*(worker.tick() for worker in workers))
    owned = [worker.owned for worker in workers]
    assert sorted(len(each) for each in owned) == [30, 30, 30, 30]
    assert frozenset().union(*owned) == set(ids.values())
    assert sum(worker.lost for worker in workers) == 0


def make_worker(store: Store, ctx: CheckContext, worker_id: str) -> Worker:
    # No outage allowance: this test is about a dead worker's monitors moving within two intervals.
    assignment = LeaseAssignment(
        "default", store.sessions, worker_id=worker_id, ttl_s=LEASE_TTL_S, outage_allowance_s=0
    )
    writer = ResultWriter(store.sessions, flush_interval_s=0.05)
    return Worker("default", store.sessions, ctx, assignment=assignment, writer=writer, refresh_interval_s=0.2)


def owned(worker: Worker) -> frozenset[int]:
    return worker.assignment.owned


def checked_since(store: Store, since: float) -> set[int]:
    """The monitors with a result for a slot after `since` (epoch seconds)."""
    with store.sessions() as session:
        stmt = sa.select(ResultRow.monitor_id, ResultRow.scheduled_at)
        return {m for m, slot in session.execute(stmt) if slot is not None and slot.timestamp() > since}


async def test_workers_share_a_location_and_take_over_from_a_dead_one(store: Store, ctx: CheckContext) -> None:
    async with tcp_target() as port:
        ids = store.apply({f"m{i}": tcp_spec(port, interval=INTERVAL) for i in range(6)})
        everything = frozenset(ids.values())
        a, b = make_worker(store, ctx, "worker-a"), make_worker(store, ctx, "worker-b")
        a_task = asyncio.create_task(a.run())
        await eventually(lambda: owned(a) == everything)

        b_task = asyncio.create_task(b.run())  # a joins: a gives up its excess, b claims it
        await eventually(lambda: len(owned(a)) == len(owned(b)) == 3)
        assert owned(a) | owned(b) == everything
        assert not owned(a) & owned(b)
        assert a.scheduler.scheduled_keys() == owned(a)
        assert b.scheduler.scheduled_keys() == owned(b)
        a_share = owned(a)
        shared = time.time()
        await eventually(lambda: checked_since(store, shared) == everything)  # both check their shares

        a_task.cancel()  # a dies: it neither renews nor releases
        with contextlib.suppress(asyncio.CancelledError):
            await a_task
        died = time.time()
        await eventually(lambda: owned(b) == everything, timeout=4 * INTERVAL_S)
        took_over = time.time() - died
        await eventually(lambda: checked_since(store, died) >= a_share)  # b checks a's monitors too
        await b.stop()
        await asyncio.wait_for(b_task, 20)

    assert took_over <= 2 * INTERVAL_S, f"a dead worker's monitors moved after {took_over:.2f}s"
    with store.sessions() as session:
        rows = session.execute(
            sa.select(ResultRow.monitor_id, ResultRow.location, ResultRow.scheduled_at, ResultRow.status)
        ).all()
        leases = session.execute(sa.select(MonitorLease.worker_id)).scalars().all()
        workers = session.scalars(sa.select(ProbeWorker.worker_id)).all()
    slots = [(monitor, location, scheduled) for monitor, location, scheduled, _ in rows]
    assert len(slots) == len(set(slots)), "a slot was checked twice"
    assert {status for *_, status in rows} == {"up"}
    for monitor in a_share:  # checked by b after a died
        assert any(m == monitor and s is not None and s.timestamp() > died for m, _, s in slots)
    assert {m for m, _, _ in slots} == everything
    assert set(leases) == {None}  # b released its leases on stop
    assert workers == ["worker-a"]  # the dead one's row stays until it is pruned
