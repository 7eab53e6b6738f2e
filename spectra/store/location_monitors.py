"""What a location's probe workers read of the configuration: its monitors, cheaply when nothing changed."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from spectra.store.batches import id_chunks
from spectra.store.config import Monitor, MonitorLocation, Resource


@dataclass(frozen=True)
class LocationMonitor:
    """A monitor a location runs; ``spec`` is None when only the hash was asked for."""

    monitor_id: int
    namespace: str
    name: str
    paused: bool
    failure_threshold: int
    success_threshold: int
    spec_hash: str
    spec: dict[str, Any] | None


def location_monitors(session: Session, location: str, *, with_spec: bool = True) -> list[LocationMonitor]:
    """Every monitor of ``location``; without ``with_spec`` the specs are left out (cheap to poll)."""
    m, r = Monitor, Resource
    columns = [m.resource_id, m.namespace, m.name, m.paused, m.failure_threshold, m.success_threshold, r.spec_hash]
    stmt = (
        select(*columns, *([r.spec] if with_spec else []))
        .join(MonitorLocation, MonitorLocation.monitor_id == m.resource_id)
        .join(r, r.id == m.resource_id)
        .where(MonitorLocation.location == location)
        .order_by(m.resource_id)
    )
    return [
        LocationMonitor(
            row.resource_id,
            row.namespace,
            row.name,
            bool(row.paused),
            row.failure_threshold,
            row.success_threshold,
            row.spec_hash,
            row.spec if with_spec else None,
        )
        for row in session.execute(stmt)
    ]


def location_fingerprint(session: Session, location: str) -> tuple[int, int, datetime | None]:
    """(count, sum of ids, newest change) of the location's monitors: cheap to poll, changes with any edit."""
    stmt = (
        select(func.count(), func.coalesce(func.sum(Monitor.resource_id), 0), func.max(Resource.updated_at))
        .select_from(Monitor)
        .join(MonitorLocation, MonitorLocation.monitor_id == Monitor.resource_id)
        .join(Resource, Resource.id == Monitor.resource_id)
        .where(MonitorLocation.location == location)
    )
    count, id_sum, newest = session.execute(stmt).one()
    # max() of a TypeDecorator column comes back through UTCDateTime on both databases.
    return int(count), int(id_sum), newest


def existing_monitors(session: Session, monitor_ids: Collection[int]) -> set[int]:
    """Those of ``monitor_ids`` that still exist."""
    out: set[int] = set()
    for chunk in id_chunks(monitor_ids):
        out.update(session.scalars(select(Monitor.resource_id).where(Monitor.resource_id.in_(chunk))))
    return out


def monitor_specs(session: Session, monitor_ids: Collection[int]) -> dict[int, dict[str, Any]]:
    """The specs of some monitors, by id."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in id_chunks(monitor_ids):
        rows = session.execute(select(Resource.id, Resource.spec).where(Resource.id.in_(chunk)))
        out.update({row.id: row.spec for row in rows})
    return out
