"""``monitor_states``: the state of each (monitor, location) as the thresholds judge it, with the last
result's facts; written by the result writer once per batch, read by the overview, the alerter and the web.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import CheckConstraint, Double, ForeignKey, Index, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.batches import id_chunks
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
        Index(None, "changed_at"),  # the console's live hub reads the states changed since its last poll
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
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # the last result's facts


MONITOR_STATES: Final = MonitorState.__table__


def save_states(session: Executor, rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert state rows (every column of :class:`MonitorState`) with one statement."""
    upsert(session, MONITOR_STATES, rows, key=STATE_KEY)


def mark_paused(session: Session, monitor_ids: Collection[int], location: str, at: datetime) -> None:
    """Set the state of paused monitors to ``paused`` (``changed_at`` moves only if it was not)."""
    if not monitor_ids:
        return
    rows = [
        {"monitor_id": i, "location": location, "state": "paused", "last_reason": "", "changed_at": at, "facts": None}
        for i in monitor_ids
    ]
    upsert(session, MONITOR_STATES, rows, key=STATE_KEY, update=[])  # rows that do not exist yet
    for chunk in id_chunks(monitor_ids):
        session.execute(
            update(MonitorState)
            .where(
                MonitorState.location == location, MonitorState.monitor_id.in_(chunk), MonitorState.state != "paused"
            )
            .values(state="paused", changed_at=at)
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
