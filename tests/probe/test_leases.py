"""Sharing one location's monitors between workers through leases, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import sqlalchemy as sa

from spectra.probe.context import CheckContext
from spectra.probe.leases import LeaseAssignment, SoloAssignment, Timing, lease_ttl
from spectra.probe.worker import Worker
from spectra.probe.writer import ResultWriter
from spectra.store import CheckResult as ResultRow
from spectra.store import MonitorLease, ProbeWorker
from tests.factories.monitors import tcp_spec
from tests.factories.store import Store
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


async def test_a_slot_runs_only_while_the_lease_outlasts_it(store: Store) -> None:
    ids = store.apply({name: tcp_spec(9, interval="10s", timeout="2s") for name in ("a", "b")})
    now = 1_900_000_000.0
    lease = LeaseAssignment("default", store.sessions, worker_id="w1", ttl_s=8.0, clock=lambda: now)
    lease.set_monitors({i: Timing(10, 2) for i in ids.values()})
    await lease.tick()

    assert lease.owned == set(ids.values())
    assert lease.may_run(ids["a"], now + 7.9)
    assert not lease.may_run(ids["a"], now + 8.0)  # the check would outlive the lease
    with store.sessions() as session:
        rows = session.execute(sa.select(MonitorLease.worker_id, MonitorLease.lease_until)).all()
    assert {(worker, until.timestamp()) for worker, until in rows} == {("w1", now + 8.0)}

    await lease.release()
    assert lease.owned == frozenset()
    assert not lease.may_run(ids["a"], now)
    with store.sessions() as session:
        assert set(session.scalars(sa.select(MonitorLease.worker_id))) == {None}
        assert session.scalars(sa.select(ProbeWorker.worker_id)).all() == []


def make_worker(store: Store, ctx: CheckContext, worker_id: str) -> Worker:
    assignment = LeaseAssignment("default", store.sessions, worker_id=worker_id, ttl_s=LEASE_TTL_S)
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
