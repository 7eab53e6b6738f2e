"""``probe_workers`` and ``monitor_leases``: the workers of one location share its monitors.

A lease is free when it has no worker or has run out. Conditions go into the UPDATEs themselves, so two
workers can never both win a lease.
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
    """Delete the rows of workers of ``location`` not seen since ``seen_before`` (long gone)."""
    stmt = delete(ProbeWorker).where(ProbeWorker.location == location, ProbeWorker.last_seen_at < seen_before)
    return session.execute(stmt).rowcount  # type: ignore[attr-defined, no-any-return]


def ensure_leases(session: Session, monitor_ids: Collection[int], location: str) -> None:
    """Create the missing lease rows (free) of ``monitor_ids``, with one statement; existing rows stay."""
    rows = [{"monitor_id": i, "location": location, "worker_id": None, "lease_until": NEVER} for i in monitor_ids]
    upsert(session, MONITOR_LEASES, rows, key=_LEASE_KEY, update=[])


def renew_leases(session: Session, worker_id: str, location: str, until: datetime) -> int:
    """Extend every lease ``worker_id`` holds in ``location`` (one UPDATE); returns how many."""
    stmt = (
        update(MonitorLease)
        .where(MonitorLease.location == location, MonitorLease.worker_id == worker_id)
        .values(lease_until=until)
    )
    return session.execute(stmt).rowcount  # type: ignore[attr-defined, no-any-return]


def held_leases(session: Session, worker_id: str, location: str) -> set[int]:
    stmt = select(MonitorLease.monitor_id).where(MonitorLease.location == location, MonitorLease.worker_id == worker_id)
    return set(session.scalars(stmt))


def _free(now: datetime) -> Any:
    return or_(MonitorLease.worker_id.is_(None), MonitorLease.lease_until < now)


def free_leases(session: Session, location: str, now: datetime) -> set[int]:
    """Monitors of ``location`` whose lease nobody holds (or whose holder let it run out)."""
    stmt = select(MonitorLease.monitor_id).where(MonitorLease.location == location, _free(now))
    return set(session.scalars(stmt))


def claim_leases(
    session: Session, worker_id: str, location: str, monitor_ids: Collection[int], *, now: datetime, until: datetime
) -> int:
    """Take the leases of ``monitor_ids`` that are still free at ``now``; returns how many were won.

    The condition is part of the UPDATE, so when two workers race for a lease exactly one wins.
    """
    won = 0
    for chunk in id_chunks(monitor_ids):
        stmt = (
            update(MonitorLease)
            .where(MonitorLease.location == location, MonitorLease.monitor_id.in_(chunk), _free(now))
            .values(worker_id=worker_id, lease_until=until)
        )
        won += session.execute(stmt).rowcount  # type: ignore[attr-defined]
    return won


def release_leases(session: Session, worker_id: str, location: str, monitor_ids: Collection[int] | None = None) -> int:
    """Give up leases (all of the worker's in ``location`` when ``monitor_ids`` is None)."""
    base = (
        update(MonitorLease)
        .where(MonitorLease.location == location, MonitorLease.worker_id == worker_id)
        .values(worker_id=None, lease_until=NEVER)
    )
    if monitor_ids is None:
        return session.execute(base).rowcount  # type: ignore[attr-defined, no-any-return]
    released = 0
    for chunk in id_chunks(monitor_ids):
        released += session.execute(base.where(MonitorLease.monitor_id.in_(chunk))).rowcount  # type: ignore[attr-defined]
    return released
