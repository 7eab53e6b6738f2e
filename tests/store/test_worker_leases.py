"""`probe_workers` and `monitor_leases`: conditional claims, renewals, live workers; SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import MonitorLease, ProbeWorker
from spectra.store.types import NEVER
from spectra.store.worker_leases import (
    ensure_leases,
    forget_worker,
    free_leases,
    held_leases,
    lease_counts,
    live_workers,
    prune_workers,
    release_leases,
    take_leases,
    touch_worker,
)
from tests.factories.store import NOW, MonitorFactory


def test_two_workers_never_win_the_same_lease(session: Session, make_monitor: MonitorFactory) -> None:
    ids = [make_monitor(locations=("eu",)).resource_id for _ in range(6)]
    ensure_leases(session, ids, "eu")
    ensure_leases(session, ids, "eu")  # idempotent: existing rows stay as they are
    assert free_leases(session, "eu", NOW) == set(ids)
    until = NOW + timedelta(seconds=30)

    won_a = take_leases(session, "worker-a", "eu", ids[:4], now=NOW, until=until)
    won_b = take_leases(session, "worker-b", "eu", ids[2:], now=NOW, until=until)  # overlaps a's

    assert (won_a, won_b) == (4, 2)
    assert held_leases(session, "worker-a", "eu") == set(ids[:4])
    assert held_leases(session, "worker-b", "eu") == set(ids[4:])
    assert free_leases(session, "eu", NOW) == set()
    # a stops renewing; b renews (taking what it holds renews it). Once a's leases run out they are free
    # again, b's are not.
    assert take_leases(session, "worker-b", "eu", ids[4:], now=NOW, until=NOW + timedelta(seconds=90)) == 2
    later = NOW + timedelta(seconds=60)
    assert free_leases(session, "eu", later) == set(ids[:4])
    assert take_leases(session, "worker-b", "eu", ids, now=later, until=later + timedelta(seconds=30)) == 6
    assert held_leases(session, "worker-b", "eu") == set(ids)
    assert release_leases(session, "worker-a", "eu", ids) == 0  # not a's any more
    assert release_leases(session, "worker-b", "eu", ids[:3]) == 3
    assert free_leases(session, "eu", later) == set(ids[:3])
    assert release_leases(session, "worker-b", "eu") == 3
    rows = session.execute(sa.select(MonitorLease.worker_id, MonitorLease.lease_until)).all()
    assert set(rows) == {(None, NEVER)}


def test_live_workers(session: Session) -> None:
    touch_worker(session, "a", "eu", NOW - timedelta(seconds=40))
    touch_worker(session, "b", "eu", NOW - timedelta(seconds=5))
    touch_worker(session, "c", "us", NOW)
    touch_worker(session, "a", "eu", NOW - timedelta(seconds=20))  # a heartbeat moves last_seen_at
    assert live_workers(session, "eu", NOW - timedelta(seconds=30)) == 2
    assert live_workers(session, "eu", NOW - timedelta(seconds=10)) == 1
    started = session.scalars(sa.select(ProbeWorker.started_at).where(ProbeWorker.worker_id == "a")).one()
    assert started == NOW - timedelta(seconds=40)


def test_long_gone_workers_are_pruned_per_location_and_a_stopping_one_forgets_itself(session: Session) -> None:
    touch_worker(session, "gone", "eu", NOW - timedelta(hours=2))
    touch_worker(session, "live", "eu", NOW)
    touch_worker(session, "gone-elsewhere", "us", NOW - timedelta(hours=2))

    assert prune_workers(session, "eu", NOW - timedelta(hours=1)) == 1
    assert prune_workers(session, "eu", NOW - timedelta(hours=1)) == 0
    assert set(session.scalars(sa.select(ProbeWorker.worker_id))) == {"live", "gone-elsewhere"}
    forget_worker(session, "live")
    assert set(session.scalars(sa.select(ProbeWorker.worker_id))) == {"gone-elsewhere"}


def test_a_lease_held_into_the_future_is_not_free_whatever_the_time_now(
    session: Session, make_monitor: MonitorFactory
) -> None:
    """The times are the caller's (the database's): a lease is free only once it ran out by them."""
    monitor = make_monitor(locations=("eu",)).resource_id
    ensure_leases(session, [monitor], "eu")
    assert take_leases(session, "a", "eu", [monitor], now=NOW, until=NOW + timedelta(seconds=70)) == 1
    for seconds, free in [(0, False), (69, False), (71, True)]:
        at = NOW + timedelta(seconds=seconds)
        assert (free_leases(session, "eu", at) == {monitor}) is free
        assert take_leases(session, "b", "eu", [monitor], now=at, until=at + timedelta(seconds=70)) == int(free)
        assert held_leases(session, "a", "eu") == (set() if free else {monitor})


def test_lease_counts_are_of_live_workers_and_leases_that_last(session: Session, make_monitor: MonitorFactory) -> None:
    ids = [make_monitor(locations=("eu",)).resource_id for _ in range(5)]
    ensure_leases(session, ids, "eu")
    touch_worker(session, "live", "eu", NOW)
    touch_worker(session, "cut-off", "eu", NOW - timedelta(seconds=30))  # has not renewed for a while
    take_leases(session, "live", "eu", ids[:2], now=NOW, until=NOW + timedelta(seconds=60))
    take_leases(session, "cut-off", "eu", ids[2:4], now=NOW, until=NOW + timedelta(seconds=60))
    take_leases(session, "live", "eu", ids[4:], now=NOW, until=NOW - timedelta(seconds=1))  # ran out

    assert lease_counts(session, "eu", NOW, NOW - timedelta(seconds=10)) == {"live": 2}
    assert lease_counts(session, "eu", NOW, NOW - timedelta(seconds=60)) == {"live": 2, "cut-off": 2}
