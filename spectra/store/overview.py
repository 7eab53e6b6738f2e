"""Every monitor with its combined state across locations: what the monitor API, status pages and the
operator's `.status` read. Locations that have not reported for a few intervals are not counted.

"Reported" means stored: ``monitor_states.reported_at`` is the database's time of the probe's write,
compared with the database's now (``database_now``), so neither a probe's clock nor the reader's can
make a location look silent or alive. Rows written before ``reported_at`` existed fall back to
``last_check_at``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from spectra.store.batches import whole_or_by_ids
from spectra.store.clock import database_now
from spectra.store.config import Monitor, MonitorLocation
from spectra.store.monitor_states import MonitorState

T = TypeVar("T")

STALE_INTERVALS: Final = 3  # a location that has not reported for this many intervals is left out


@dataclass(frozen=True)
class LocationOverview:
    location: str
    state: str
    last_check_at: datetime | None
    reporting: bool  # stored a result within STALE_INTERVALS intervals (database time)


@dataclass(frozen=True)
class MonitorOverview:
    namespace: str
    name: str
    type: str
    target: str
    paused: bool
    state: str  # combined across locations
    last_check_at: datetime | None
    last_latency_ms: float | None
    reason: str
    locations: tuple[LocationOverview, ...]


@dataclass(frozen=True)
class _LocationRow:
    overview: LocationOverview
    latency_ms: float | None
    reason: str


def combined_state(paused: bool, quorum: int, reporting_states: Sequence[str]) -> str:
    """One state from the states of the locations that report.

    paused if paused; down when at least ``quorum`` (capped at the number reporting) are down;
    degraded when any is degraded or down below quorum; up when all are up; pending when none report.
    """
    if paused:
        return "paused"
    if not reporting_states:
        return "pending"
    down = sum(1 for state in reporting_states if state == "down")
    if down >= max(1, min(quorum, len(reporting_states))):
        return "down"
    if down or any(state == "degraded" for state in reporting_states):
        return "degraded"
    if all(state == "up" for state in reporting_states):
        return "up"
    return "pending"


def monitor_overview(
    session: Session, now: datetime | None = None, monitor_ids: Collection[int] | None = None
) -> list[MonitorOverview]:
    """Every monitor (or those of ``monitor_ids``) with its combined state and per-location states, by
    namespace and name.

    ``now`` is the database's time (read from it when not given); a location that has not stored a
    result within STALE_INTERVALS intervals of it is not reporting.
    """
    now = now or database_now(session)
    m, s = Monitor, MonitorState
    stmt = (
        select(
            m.resource_id,
            m.namespace,
            m.name,
            m.type,
            m.target,
            m.paused,
            m.quorum,
            m.interval_ms,
            MonitorLocation.location,
            s.state,
            s.last_check_at,
            s.last_latency_ms,
            s.last_reason,
            func.coalesce(s.reported_at, s.last_check_at).label("reported_at"),
        )
        .join(MonitorLocation, MonitorLocation.monitor_id == m.resource_id)
        .outerjoin(s, and_(s.monitor_id == m.resource_id, s.location == MonitorLocation.location))
        .order_by(m.namespace, m.name, MonitorLocation.location)
    )
    grouped: dict[int, tuple[Any, list[_LocationRow]]] = {}
    for statement in whole_or_by_ids(stmt, m.resource_id, monitor_ids):
        for row in session.execute(statement):
            state, reporting = location_judgement(row.state, row.reported_at, row.interval_ms, now)
            location = LocationOverview(row.location, state, row.last_check_at, reporting)
            entry = grouped.setdefault(row.resource_id, (row, []))
            entry[1].append(_LocationRow(location, row.last_latency_ms, row.last_reason or ""))
    overviews = [_overview(first, rows) for first, rows in grouped.values()]
    if monitor_ids is not None:  # the chunks are by id: back to the order of one statement
        overviews.sort(key=lambda overview: (overview.namespace, overview.name))
    return overviews


def location_judgement(
    state: str | None, reported_at: datetime | None, interval_ms: int, now: datetime
) -> tuple[str, bool]:
    """A location's state ("pending" before any result) and whether it counts: it stored a result within
    STALE_INTERVALS intervals of `now` and judged it (not pending, not paused)."""
    judged = state or "pending"
    stale_before = now - timedelta(milliseconds=interval_ms * STALE_INTERVALS)
    return judged, reported_at is not None and reported_at >= stale_before and judged not in ("pending", "paused")


def explaining_check(checks: Sequence[tuple[str, datetime | None, T]], state: str) -> tuple[T | None, datetime | None]:
    """Of each location's (state, last check, what to show), what to show of the newest check, preferring a
    location whose state explains the combined `state`; and the newest check's time."""
    checked = [check for check in checks if check[1] is not None]
    newest = max((at for _, at, _ in checked if at is not None), default=None)
    checked.sort(key=lambda check: (check[0] == state, check[1]), reverse=True)
    return (checked[0][2] if checked else None), newest


def _overview(monitor: Any, rows: list[_LocationRow]) -> MonitorOverview:
    reporting = [row for row in rows if row.overview.reporting]
    state = combined_state(bool(monitor.paused), monitor.quorum, [row.overview.state for row in reporting])
    best, newest = explaining_check([(row.overview.state, row.overview.last_check_at, row) for row in rows], state)
    return MonitorOverview(
        namespace=monitor.namespace,
        name=monitor.name,
        type=monitor.type,
        target=monitor.target,
        paused=bool(monitor.paused),
        state=state,
        last_check_at=newest,
        last_latency_ms=best.latency_ms if best else None,
        reason=best.reason if best else "",
        locations=tuple(row.overview for row in rows),
    )
