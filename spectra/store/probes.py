"""What probe workers keep: monitor state per location, monitor leases, heartbeat pushes; the overview.

- ``monitor_states``: the state of each (monitor, location) as the thresholds judge it, with the last
  result's facts; written by the result writer once per batch, read by the overview and the web.
- ``probe_workers`` and ``monitor_leases``: the workers of one location share its monitors; a lease
  is free when it has no worker or has run out. Conditions go into the UPDATEs themselves, so two
  workers can never both win a lease.
- ``heartbeat_pushes``: the last push per heartbeat monitor, found by the SHA-256 of its token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.dml import Insert

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.config import LOCATION_LEN, Monitor, MonitorLocation, Resource
from spectra.store.results import REASON_LEN
from spectra.store.types import MYSQL_DIALECTS, BigIntPK, JSONType, UTCDateTime, utcnow
from spectra.store.upsert import Executor, UnsupportedDatabase, connection_of, upsert

STATES: Final = ("pending", "up", "down", "degraded", "paused")
WORKER_ID_LEN: Final = 64
# Lists of ids go into IN (...) in slices: SQLite caps bound parameters per statement.
_CHUNK: Final = 900
# A free lease's lease_until: long past on every clock.
NEVER: Final = datetime(1970, 1, 1, tzinfo=UTC)


class MonitorState(Base):
    """The judged state of one monitor from one location, after the last stored result."""

    __tablename__ = "monitor_states"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'up', 'down', 'degraded', 'paused')", name="state"),
        MYSQL_TABLE_OPTIONS,
    )

    monitor_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("monitors.resource_id", ondelete="CASCADE"), primary_key=True
    )
    location: Mapped[str] = mapped_column(String(LOCATION_LEN), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    last_status: Mapped[str | None] = mapped_column(String(16))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_successes: Mapped[int] = mapped_column(Integer, default=0)
    last_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_latency_ms: Mapped[float | None] = mapped_column(Double)
    last_reason: Mapped[str] = mapped_column(String(REASON_LEN), default="")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # when `state` last changed
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # the last result's facts


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


class HeartbeatPush(Base):
    """The last push a heartbeat monitor received, and how many it has received."""

    __tablename__ = "heartbeat_pushes"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    monitor_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("monitors.resource_id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    last_push_at: Mapped[datetime] = mapped_column(UTCDateTime)
    pushes: Mapped[int] = mapped_column(BigInteger, default=0)


MONITOR_STATES: Final = MonitorState.__table__
PROBE_WORKERS: Final = ProbeWorker.__table__
MONITOR_LEASES: Final = MonitorLease.__table__
HEARTBEAT_PUSHES: Final = HeartbeatPush.__table__
_STATE_KEY: Final = ("monitor_id", "location")


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    items = sorted(set(ids))
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# --- monitors of a location --------------------------------------------------------------------


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
    for chunk in _chunks(monitor_ids):
        out.update(session.scalars(select(Monitor.resource_id).where(Monitor.resource_id.in_(chunk))))
    return out


def monitor_specs(session: Session, monitor_ids: Collection[int]) -> dict[int, dict[str, Any]]:
    """The specs of some monitors, by id."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(monitor_ids):
        rows = session.execute(select(Resource.id, Resource.spec).where(Resource.id.in_(chunk)))
        out.update({row.id: row.spec for row in rows})
    return out


# --- states ------------------------------------------------------------------------------------


def save_states(session: Executor, rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert state rows (every column of :class:`MonitorState`) with one statement."""
    upsert(session, MONITOR_STATES, rows, key=_STATE_KEY)


def mark_paused(session: Session, monitor_ids: Collection[int], location: str, at: datetime) -> None:
    """Set the state of paused monitors to ``paused`` (``changed_at`` moves only if it was not)."""
    if not monitor_ids:
        return
    rows = [
        {"monitor_id": i, "location": location, "state": "paused", "last_reason": "", "changed_at": at, "facts": None}
        for i in monitor_ids
    ]
    upsert(session, MONITOR_STATES, rows, key=_STATE_KEY, update=[])  # rows that do not exist yet
    for chunk in _chunks(monitor_ids):
        session.execute(
            update(MonitorState)
            .where(
                MonitorState.location == location, MonitorState.monitor_id.in_(chunk), MonitorState.state != "paused"
            )
            .values(state="paused", changed_at=at)
        )


def load_states(session: Session, monitor_ids: Collection[int] | None, location: str) -> dict[int, MonitorState]:
    """The stored states of ``monitor_ids`` (None: all) in ``location``, by monitor id."""
    base = select(MonitorState).where(MonitorState.location == location)
    if monitor_ids is None:
        return {row.monitor_id: row for row in session.scalars(base)}
    out: dict[int, MonitorState] = {}
    for chunk in _chunks(monitor_ids):
        out.update({row.monitor_id: row for row in session.scalars(base.where(MonitorState.monitor_id.in_(chunk)))})
    return out


# --- the overview ------------------------------------------------------------------------------

STALE_INTERVALS: Final = 3  # a location that has not reported for this many intervals is left out


@dataclass(frozen=True)
class LocationOverview:
    location: str
    state: str
    last_check_at: datetime | None
    reporting: bool  # reported within STALE_INTERVALS intervals


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

    def as_json(self) -> dict[str, Any]:
        """The /api/v1/monitors shape: camelCase, times as RFC 3339; nothing secret is in here."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "type": self.type,
            "target": self.target,
            "paused": self.paused,
            "state": self.state,
            "lastCheck": _iso(self.last_check_at),
            "latencyMs": self.last_latency_ms,
            "reason": self.reason,
            "locations": [
                {
                    "location": loc.location,
                    "state": loc.state,
                    "lastCheck": _iso(loc.last_check_at),
                    "reporting": loc.reporting,
                }
                for loc in self.locations
            ],
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


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


def monitor_overview(session: Session, now: datetime | None = None) -> list[MonitorOverview]:
    """Every monitor with its combined state and per-location states, by namespace and name."""
    now = now or utcnow()
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
        )
        .join(MonitorLocation, MonitorLocation.monitor_id == m.resource_id)
        .outerjoin(s, and_(s.monitor_id == m.resource_id, s.location == MonitorLocation.location))
        .order_by(m.namespace, m.name, MonitorLocation.location)
    )
    grouped: dict[int, tuple[Any, list[_LocationRow]]] = {}
    for row in session.execute(stmt):
        stale_before = now - timedelta(milliseconds=row.interval_ms * STALE_INTERVALS)
        state = row.state or "pending"
        reporting = (
            row.last_check_at is not None and row.last_check_at >= stale_before and state not in ("pending", "paused")
        )
        location = LocationOverview(row.location, state, row.last_check_at, reporting)
        entry = grouped.setdefault(row.resource_id, (row, []))
        entry[1].append(_LocationRow(location, row.last_latency_ms, row.last_reason or ""))
    return [_overview(first, rows) for first, rows in grouped.values()]


def _overview(monitor: Any, rows: list[_LocationRow]) -> MonitorOverview:
    reporting = [row for row in rows if row.overview.reporting]
    state = combined_state(bool(monitor.paused), monitor.quorum, [row.overview.state for row in reporting])
    checked = [row for row in rows if row.overview.last_check_at is not None]
    # Latency and reason of the newest check, preferring a location whose state explains the result.
    checked.sort(key=lambda row: (row.overview.state == state, row.overview.last_check_at), reverse=True)
    newest = max((row.overview.last_check_at for row in checked), default=None)  # type: ignore[type-var]
    best = checked[0] if checked else None
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


# --- heartbeat pushes --------------------------------------------------------------------------


def push_token_hash(token: str) -> str:
    """What ``monitors.push_token_hash`` holds for a heartbeat token (the token itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _push_statement(dialect_name: str) -> Insert:
    table = HEARTBEAT_PUSHES
    if dialect_name == "sqlite":
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(
            index_elements=["monitor_id"],
            set_={"last_push_at": lite.excluded.last_push_at, "pushes": table.c.pushes + 1},
        )
    if dialect_name in MYSQL_DIALECTS:
        my = mysql.insert(table)
        return my.on_duplicate_key_update(last_push_at=my.inserted.last_push_at, pushes=table.c.pushes + 1)
    raise UnsupportedDatabase(dialect_name)


def record_push(session: Session, token: str, at: datetime) -> bool:
    """Record a push for the monitor whose token this is; False when no monitor has it."""
    monitor_id = session.scalar(select(Monitor.resource_id).where(Monitor.push_token_hash == push_token_hash(token)))
    if monitor_id is None:
        return False
    conn = connection_of(session)
    conn.execute(_push_statement(conn.dialect.name), {"monitor_id": monitor_id, "last_push_at": at, "pushes": 1})
    return True


def last_push(session: Session, monitor_id: int) -> datetime | None:
    return session.scalar(select(HeartbeatPush.last_push_at).where(HeartbeatPush.monitor_id == monitor_id))


# --- workers and leases ------------------------------------------------------------------------


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
    upsert(session, MONITOR_LEASES, rows, key=_STATE_KEY, update=[])


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
    for chunk in _chunks(monitor_ids):
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
    for chunk in _chunks(monitor_ids):
        released += session.execute(base.where(MonitorLease.monitor_id.in_(chunk))).rowcount  # type: ignore[attr-defined]
    return released
