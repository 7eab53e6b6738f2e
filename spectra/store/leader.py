"""Leader leases: one named row per role (``alerter``, ``operator``); whoever holds an unexpired lease leads.

The condition is part of the UPDATE (free, expired, or already ours), so when two instances race for
a lease exactly one wins, on SQLite and on MySQL/MariaDB alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import String, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.types import NEVER, UTCDateTime
from spectra.store.upsert import upsert

HOLDER_LEN: Final = 64


class LeaderLease(Base):
    """Who leads role ``name``, until when; a NULL holder or a past ``lease_until`` means free."""

    __tablename__ = "leader_leases"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(HOLDER_LEN))
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime)


LEADER_LEASES: Final = LeaderLease.__table__


def acquire_lease(session: Session, name: str, holder: str, *, now: datetime, until: datetime) -> bool:
    """Take or renew lease ``name`` for ``holder`` until ``until``; False when someone else holds it."""
    upsert(session, LEADER_LEASES, [{"name": name, "holder": None, "lease_until": NEVER}], key=["name"], update=[])
    stmt = (
        update(LeaderLease)
        .where(
            LeaderLease.name == name,
            or_(LeaderLease.holder.is_(None), LeaderLease.holder == holder, LeaderLease.lease_until < now),
        )
        .values(holder=holder, lease_until=until)
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def release_lease(session: Session, name: str, holder: str) -> bool:
    """Give lease ``name`` up if ``holder`` has it (a standby takes over at once)."""
    stmt = (
        update(LeaderLease)
        .where(LeaderLease.name == name, LeaderLease.holder == holder)
        .values(holder=None, lease_until=NEVER)
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def lease_holder(session: Session, name: str, now: datetime) -> str | None:
    """Who holds lease ``name`` at ``now`` (None when free or expired)."""
    row = session.execute(select(LeaderLease.holder, LeaderLease.lease_until).where(LeaderLease.name == name)).first()
    if row is None or row.holder is None or row.lease_until < now:
        return None
    return str(row.holder)
