"""``probe_workers`` and ``monitor_leases``: the workers of one location share its monitors.

A lease is free when it has no worker or has run out. Conditions go into the UPDATEs themselves, so two
workers can never both win a lease. Times are the database's (``spectra.store.clock.database_now``):
the callers pass it in, so a node whose clock runs ahead cannot see a live lease as run out.

Every statement that writes lease rows names them by primary key and touches them in monitor id order
(``id_chunks`` sorts), never through a scan of the location: two workers rebalancing at the same moment
then lock rows in the same order and cannot deadlock each other.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ForeignKey, Index, String, delete, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.batches import id_chunks
from spectra.store.config import LOCATION_LEN
from spectra.store.types import NEVER, BigIntPK, UTCDateTime, utcnow
from spectra.store.upsert import upsert

WORKER_ID_LEN: Final = 64
_LEASE_KEY: Final = ("monitor_id", "location")


class ProbeWorker(Base):
    """A running probe worker; live while ``last_seen_at`` is recent."""

    __tablename__ = "probe_workers"
    __table_args__ = (Index(None, "location"), MYSQL_TABLE_OPTIONS)

    worker_id: Mapped[str] = mapped_column(String(WORKER_ID_LEN), primary_key=True)
    location: Mapped[str] = mapped_column(String(LOCATION_LEN))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MonitorLease(Base):
    """Which worker of a location runs a monitor, until when."""

    __tablename__ = "monitor_leases"
    __table_args__ = (Index(None, "location", "lease_until"), MYSQL_TABLE_OPTIONS)

    monitor_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("monitors.resource_id", ondelete="CASCADE"), primary_key=True
    )
    location: Mapped[str] = mapped_column(String(LOCATION_LEN), primary_key=True)
    worker_id: Mapped[str | None] = mapped_column(String(WORKER_ID_LEN))
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime)


PROBE_WORKERS: Final = ProbeWorker.__table__
MONITOR_LEASES: Final = MonitorLease.__table__


def touch_worker(session: Session, worker_id: str, location: str, now: datetime) -> None:
    """Register ``worker_id`` or refresh its last_seen_at."""
    row = {"worker_id": worker_id, "location": location, "started_at": now, "last_seen_at": now}
    upsert(session, PROBE_WORKERS, [row], key=["worker_id"], update=["location", "last_seen_at"])


def live_workers(session: Session, location: str, seen_since: datetime) -> int:
    stmt = select(func.count()).where(ProbeWorker.location == location, ProbeWorker.last_seen_at >= seen_since)
    return int(session.scalar(stmt) or 0)


def forget_worker(session: Session, worker_id: str) -> None:
    session.execute(delete(ProbeWorker).where(ProbeWorker.worker_id == worker_id))


def prune_workers(session: Session, location: str, seen_before: datetime) -> int:
    """Delete the rows of workers of ``location`` not seen since ``seen_before`` (long gone).

    The stale rows are found with a plain read and deleted by key: a DELETE over the location would
    lock the live workers' rows too, each of which its own worker holds in its transaction.
    """
    stale = select(ProbeWorker.worker_id).where(
        ProbeWorker.location == location, ProbeWorker.last_seen_at < seen_before
    )
    gone = sorted(session.scalars(stale))
    if not gone:
        return 0
    stmt = delete(ProbeWorker).where(ProbeWorker.worker_id.in_(gone), ProbeWorker.last_seen_at < seen_before)
    return session.execute(stmt).rowcount  # type: ignore[attr-defined, no-any-return]


def ensure_leases(session: Session, monitor_ids: Collection[int], location: str) -> None:
    """Create the missing lease rows (free) of ``monitor_ids``, with one statement; existing rows stay."""
    rows = [
        {"monitor_id": i, "location": location, "worker_id": None, "lease_until": NEVER} for i in sorted(monitor_ids)
    ]
    upsert(session, MONITOR_LEASES, rows, key=_LEASE_KEY, update=[])


def held_leases(session: Session, worker_id: str, location: str) -> set[int]:
    stmt = select(MonitorLease.monitor_id).where(MonitorLease.location == location, MonitorLease.worker_id == worker_id)
    return set(session.scalars(stmt))


def lease_counts(session: Session, location: str, now: datetime, seen_since: datetime) -> dict[str, int]:
    """How many leases of ``location`` each live worker (seen since ``seen_since``) holds that have not run
    out at ``now``."""
    stmt = (
        select(MonitorLease.worker_id, func.count())
        .join(ProbeWorker, ProbeWorker.worker_id == MonitorLease.worker_id)
        .where(
            MonitorLease.location == location, MonitorLease.lease_until >= now, ProbeWorker.last_seen_at >= seen_since
        )
        .group_by(MonitorLease.worker_id)
    )
    return {str(worker): int(count) for worker, count in session.execute(stmt)}


def _free(now: datetime) -> Any:
    return or_(MonitorLease.worker_id.is_(None), MonitorLease.lease_until < now)


def free_leases(session: Session, location: str, now: datetime) -> set[int]:
    """Monitors of ``location`` whose lease nobody holds (or whose holder let it run out)."""
    stmt = select(MonitorLease.monitor_id).where(MonitorLease.location == location, _free(now))
    return set(session.scalars(stmt))


def take_leases(
    session: Session, worker_id: str, location: str, monitor_ids: Collection[int], *, now: datetime, until: datetime
) -> int:
    """Hold the leases of ``monitor_ids`` until ``until``: renew those ``worker_id`` holds, claim those free
    at ``now`` (database time); returns how many it holds of them afterwards.

    The condition is part of the UPDATE, so when two workers race for a lease exactly one wins; rows
    go in monitor id order (see the module's docstring).
    """
    held = 0
    for chunk in id_chunks(monitor_ids):
        stmt = (
            update(MonitorLease)
            .where(
                MonitorLease.location == location,
                MonitorLease.monitor_id.in_(chunk),
                or_(MonitorLease.worker_id == worker_id, _free(now)),
            )
            .values(worker_id=worker_id, lease_until=until)
        )
        held += session.execute(stmt).rowcount  # type: ignore[attr-defined]
    return held


def release_leases(session: Session, worker_id: str, location: str, monitor_ids: Collection[int] | None = None) -> int:
    """Give up leases (all of the worker's in ``location`` when ``monitor_ids`` is None), by key in id order."""
    if monitor_ids is None:
        monitor_ids = held_leases(session, worker_id, location)
    released = 0
    for chunk in id_chunks(monitor_ids):
        stmt = (
            update(MonitorLease)
            .where(
                MonitorLease.location == location,
                MonitorLease.monitor_id.in_(chunk),
                MonitorLease.worker_id == worker_id,
            )
            .values(worker_id=None, lease_until=NEVER)
        )
        released += session.execute(stmt).rowcount  # type: ignore[attr-defined]
    return released
