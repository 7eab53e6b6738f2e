"""What the platform pages read and do: tenants, impersonation, global maintenance (thin calls of
spectra.auth, which audit), and the system's health read from the store: probe workers and their leases,
the leader leases, the outbox backlog, the database and its schema revision.

Blocking: the pages and the JSON endpoint run these in worker threads. Every function asks the policy
first (platform admins in a session, never while impersonating).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from spectra.alerting import LEASE_NAME as ALERTER_LEASE
from spectra.auth import global_maintenance as maintenance
from spectra.auth import impersonation, policy, tenants
from spectra.auth.identity import Actor, Principal
from spectra.auth.policy import Action
from spectra.auth.sessions import Issued
from spectra.domain.global_maintenance import parse_until
from spectra.store import LeaderLease, Notification, NotificationStatus
from spectra.store.migrate import head_revision
from spectra.store.types import MYSQL_DIALECTS
from spectra.store.worker_leases import MonitorLease, ProbeWorker

# A probe worker heartbeats every quarter of its lease TTL (at most 30 s) and rides out database outages of
# 60 s by default (spectra.probe.leases): one not seen for this long is shown as silent.
WORKER_SILENT_AFTER: Final = timedelta(seconds=90)
# The outbox's backlog: what is waiting to go out (sending: claimed by a sender; failed: to be retried).
BACKLOG: Final = (NotificationStatus.PENDING, NotificationStatus.SENDING, NotificationStatus.FAILED)


def require_platform(principal: Principal, action: Action) -> None:
    policy.require(principal, action, organization=None)


# --- tenants, impersonation, global maintenance ------------------------------------------------------------


@dataclass(frozen=True)
class Home:
    tenants: list[tenants.Tenant]
    impersonations: list[impersonation.ActiveImpersonation]
    maintenance: maintenance.Status


def home(session: Session, principal: Principal, *, now: datetime) -> Home:
    require_platform(principal, Action.TENANTS_MANAGE)
    active = (
        impersonation.active(session, now=now)
        if policy.allowed(principal, Action.IMPERSONATE, organization=None)
        else []
    )
    return Home(tenants.tenants(session, now=now), active, maintenance.current(session, now=now))


def impersonate(
    session: Session,
    principal: Principal,
    email: str,
    organization: str,
    *,
    reason: str,
    minutes: int,
    now: datetime,
    ip: str | None,
    user_agent: str | None,
) -> Issued:
    """Start impersonating `email` in `organization` (spectra.auth.impersonation: audited with both names,
    told to the organization's admins); the member's new session."""
    require_platform(principal, Action.IMPERSONATE)
    return impersonation.start(
        session, principal, email, organization, reason=reason, minutes=minutes, now=now, ip=ip, user_agent=user_agent
    )


def end_impersonation(
    session: Session, principal: Principal, impersonation_id: int, *, actor: Actor, now: datetime
) -> bool:
    require_platform(principal, Action.IMPERSONATE)
    return impersonation.end(session, impersonation_id, actor=actor, now=now)


def maintenance_on(
    session: Session,
    principal: Principal,
    message: str,
    until: str,
    show_on_status_pages: bool,
    *,
    actor: Actor,
    now: datetime,
) -> maintenance.Status:
    """Turn global maintenance on (or change it); `until` as people write it (a time with an offset, or a
    duration such as 2h), empty for no end."""
    require_platform(principal, Action.MAINTENANCE_GLOBAL)
    end = parse_until(until, now=now) if until.strip() else None
    return maintenance.turn_on(
        session, message=message, until=end, show_on_status_pages=show_on_status_pages, actor=actor, now=now
    )


def maintenance_off(session: Session, principal: Principal, *, actor: Actor, now: datetime) -> maintenance.Status:
    require_platform(principal, Action.MAINTENANCE_GLOBAL)
    return maintenance.turn_off(session, actor=actor, now=now)


# --- the system page ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Worker:
    worker_id: str
    location: str
    started_at: datetime
    last_seen_at: datetime
    silent: bool  # not seen for WORKER_SILENT_AFTER
    monitors: int  # leases it holds that have not run out


@dataclass(frozen=True)
class Location:
    name: str
    workers: list[Worker]
    monitors: int  # lease rows of the location (its monitors)
    unowned: int  # of those, held by no worker or run out


@dataclass(frozen=True)
class Leader:
    name: str
    holder: str | None  # None: free, or its lease ran out
    lease_until: datetime | None


@dataclass(frozen=True)
class Outbox:
    by_status: dict[str, int]  # every status, 0 included
    backlog: int  # pending, sending and failed
    oldest_pending_at: datetime | None  # the oldest message of the backlog (created_at)
    oldest_pending_age_s: int | None


@dataclass(frozen=True)
class Database:
    reachable: bool
    dialect: str
    size_bytes: int | None  # None where it is not cheap to know
    revision: str | None  # alembic's current revision (None: never migrated, or unreachable)
    head: str  # the newest revision this version ships

    @property
    def up_to_date(self) -> bool:
        return self.revision == self.head


@dataclass(frozen=True)
class System:
    checked_at: datetime
    locations: list[Location]
    alerter: Leader
    leaders: list[Leader]
    outbox: Outbox
    database: Database


def system(session: Session, principal: Principal, *, now: datetime) -> System:
    """The health of every process, as the store shows it at `now` (counts and ages, never a message)."""
    require_platform(principal, Action.SYSTEM_READ)
    leaders = _leaders(session, now=now)
    alerter = next((found for found in leaders if found.name == ALERTER_LEASE), Leader(ALERTER_LEASE, None, None))
    return System(now, _locations(session, now=now), alerter, leaders, _outbox(session, now=now), _database(session))


def _locations(session: Session, *, now: datetime) -> list[Location]:
    held = dict(
        session.execute(
            select(MonitorLease.worker_id, func.count())
            .where(MonitorLease.worker_id.is_not(None), MonitorLease.lease_until >= now)
            .group_by(MonitorLease.worker_id)
        ).all()
    )
    owned = (MonitorLease.worker_id.is_not(None), MonitorLease.lease_until >= now)
    per_location = select(MonitorLease.location, func.count()).group_by(MonitorLease.location)
    totals = dict(session.execute(per_location).all())
    taken = dict(session.execute(per_location.where(*owned)).all())
    workers: dict[str, list[Worker]] = {}
    for row in session.scalars(select(ProbeWorker).order_by(ProbeWorker.location, ProbeWorker.worker_id)):
        workers.setdefault(row.location, []).append(
            Worker(
                worker_id=row.worker_id,
                location=row.location,
                started_at=row.started_at,
                last_seen_at=row.last_seen_at,
                silent=now - row.last_seen_at > WORKER_SILENT_AFTER,
                monitors=int(held.get(row.worker_id, 0)),
            )
        )
    names = sorted(set(workers) | set(totals))
    return [
        Location(
            name, workers.get(name, []), int(totals.get(name, 0)), int(totals.get(name, 0)) - int(taken.get(name, 0))
        )
        for name in names
    ]


def _leaders(session: Session, *, now: datetime) -> list[Leader]:
    found = []
    for row in session.scalars(select(LeaderLease).order_by(LeaderLease.name)):
        live = row.holder is not None and row.lease_until >= now
        found.append(Leader(row.name, row.holder if live else None, row.lease_until if live else None))
    return found


def _outbox(session: Session, *, now: datetime) -> Outbox:
    counts = dict.fromkeys((status.value for status in NotificationStatus), 0)
    for status, count in session.execute(select(Notification.status, func.count()).group_by(Notification.status)):
        counts[str(status)] = int(count)
    oldest = session.scalar(
        select(func.min(Notification.created_at)).where(Notification.status.in_([s.value for s in BACKLOG]))
    )
    age = None if oldest is None else max(0, int((now - oldest).total_seconds()))
    return Outbox(counts, sum(counts[status.value] for status in BACKLOG), oldest, age)


@functools.cache
def _head() -> str:
    return head_revision()


def _database(session: Session) -> Database:
    dialect = session.get_bind().dialect.name
    try:
        session.execute(text("SELECT 1"))
        revision = MigrationContext.configure(session.connection()).get_current_revision()
        size = _size(session, dialect)
    except SQLAlchemyError:
        return Database(False, dialect, None, None, _head())
    return Database(True, dialect, size, revision, _head())


def _size(session: Session, dialect: str) -> int | None:
    """The database's size on disk: SQLite's pages, MariaDB's tables (data and indexes) as it keeps them."""
    if dialect == "sqlite":
        pages = session.execute(text("PRAGMA page_count")).scalar()
        page_size = session.execute(text("PRAGMA page_size")).scalar()
        return int(pages) * int(page_size) if pages is not None and page_size is not None else None
    if dialect in MYSQL_DIALECTS:
        found = session.execute(
            text(
                "SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = DATABASE()"
            )
        ).scalar()
        return None if found is None else int(found)
    return None
