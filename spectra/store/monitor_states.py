"""``monitor_states``: the state of each (monitor, location) as the thresholds judge it, with the last
result's facts; written by the result writer once per batch, read by the overview, the alerter and the web.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    and_,
    case,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.batches import id_chunks
from spectra.store.clock import database_now
from spectra.store.config import LOCATION_LEN
from spectra.store.results import REASON_LEN
from spectra.store.types import BigIntPK, JSONType, UTCDateTime, utcnow
from spectra.store.upsert import Executor, upsert

STATES: Final = ("pending", "up", "down", "degraded", "paused")
STATE_KEY: Final = ("monitor_id", "location")


class MonitorState(Base):
    """The judged state of one monitor from one location, after the last stored result."""

    __tablename__ = "monitor_states"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'up', 'down', 'degraded', 'paused')", name="state"),
        Index(None, "state_stored_at"),  # the console's live hub reads the states changed since its last poll
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
    # When the result was stored, by the database's clock (store/clock.py): staleness is judged on
    # this, not on last_check_at, which is the probe's own clock.
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When `state` (or `changed_at`) last changed, by the database's clock: the `reported_at` of that write.
    # Rows re-stored with the same state keep it, so "what changed since" reads only changed rows.
    state_stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # the last result's facts


MONITOR_STATES: Final = MonitorState.__table__


def _state_stored_at(incoming: Any) -> ColumnElement[Any]:
    """The write's time when it changes the state or its `changed_at`, else the stored row's time."""
    stored = MONITOR_STATES.c
    unchanged = and_(stored.state == incoming.state, stored.changed_at == incoming.changed_at)
    return case((unchanged, stored.state_stored_at), else_=incoming.state_stored_at)


def save_states(session: Executor, rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert state rows (every column of :class:`MonitorState`) with one statement.

    Rows with a ``reported_at`` get ``state_stored_at``: that time on a new row or a changed state (or
    ``changed_at``), the stored one otherwise (see :class:`MonitorState`)."""
    if not rows:
        return
    if "reported_at" not in rows[0]:
        upsert(session, MONITOR_STATES, rows, key=STATE_KEY)
        return
    stamped = [row if "state_stored_at" in row else {**row, "state_stored_at": row["reported_at"]} for row in rows]
    upsert(session, MONITOR_STATES, stamped, key=STATE_KEY, computed={"state_stored_at": _state_stored_at})


def mark_paused(session: Session, monitor_ids: Collection[int], location: str, at: datetime) -> None:
    """Set the state of paused monitors to ``paused`` (``changed_at`` moves only if it was not)."""
    if not monitor_ids:
        return
    stored_at = database_now(session)
    paused = {"state": "paused", "changed_at": at, "state_stored_at": stored_at}
    rows = [{"monitor_id": i, "location": location, "last_reason": "", "facts": None, **paused} for i in monitor_ids]
    upsert(session, MONITOR_STATES, rows, key=STATE_KEY, update=[])  # rows that do not exist yet
    for chunk in id_chunks(monitor_ids):
        session.execute(
            update(MonitorState)
            .where(
                MonitorState.location == location, MonitorState.monitor_id.in_(chunk), MonitorState.state != "paused"
            )
            .values(paused)
        )


def down_monitors(session: Session) -> set[int]:
    """The monitors that at least one location judges down (the only ones that can be confirmed down)."""
    stmt = select(MonitorState.monitor_id).where(MonitorState.state == "down").distinct()
    return set(session.scalars(stmt))


def load_states(session: Session, monitor_ids: Collection[int] | None, location: str) -> dict[int, MonitorState]:
    """The stored states of ``monitor_ids`` (None: all) in ``location``, by monitor id."""
    base = select(MonitorState).where(MonitorState.location == location)
    if monitor_ids is None:
        return {row.monitor_id: row for row in session.scalars(base)}
    out: dict[int, MonitorState] = {}
    for chunk in id_chunks(monitor_ids):
        out.update({row.monitor_id: row for row in session.scalars(base.where(MonitorState.monitor_id.in_(chunk)))})
    return out
