"""Incidents, their timeline, and where each one stands on its escalation policy."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Final

from sqlalchemy import CheckConstraint, Computed, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.config import NAME_LEN, NAMESPACE_LEN
from spectra.store.types import BigIntPK, JSONType, UTCDateTime, utcnow

ACTOR_LEN: Final = 255


class IncidentState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


# Unresolved: an incident in one of these states is the monitor's current incident.
OPEN_STATES: Final = (IncidentState.OPEN.value, IncidentState.ACKNOWLEDGED.value)


# The generated column behind "one unresolved incident per monitor".
OPEN_MONITOR_ID: Final = "CASE WHEN state IN ('open', 'acknowledged') THEN monitor_id END"


class IncidentEventType(enum.StrEnum):
    OPENED = "opened"
    NOTIFIED = "notified"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    SUPPRESSED = "suppressed"
    REOPENED = "reopened"  # down again soon after resolving: the same incident goes on
    NOTE = "note"
    REASSIGNING = "reassigning"  # a reassignment the alerter has not paged yet
    REASSIGNED = "reassigned"  # ... and once it has


class EscalationStatus(enum.StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"  # acknowledged or resolved
    EXHAUSTED = "exhausted"  # every step and repeat has been notified


class Incident(Base):
    """A period during which a monitor was failing, from opening to resolution."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index(None, "state"),
        Index(None, "namespace", "monitor_id"),
        Index(None, "monitor_id"),  # serves ON DELETE SET NULL without a scan
        Index(None, "opened_at"),  # status-page history lists incidents by time
        CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name="state"),
        # One unresolved incident per monitor, enforced by the database whoever writes: the column is
        # the monitor id while unresolved and NULL afterwards (NULLs never collide in a unique index).
        Index("uq_incidents_open_monitor_id", "open_monitor_id", unique=True),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # Short code people type to acknowledge by SMS ("ack K7Q2"); generate it in upper case, and
    # upper-case what people type: comparisons are case-sensitive on both databases.
    code: Mapped[str] = mapped_column(String(16), unique=True)
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    monitor_id: Mapped[int | None] = mapped_column(BigIntPK, ForeignKey("monitors.resource_id", ondelete="SET NULL"))
    # Kept when the monitor is deleted, so the history still says what failed.
    monitor_name: Mapped[str] = mapped_column(String(NAME_LEN))
    title: Mapped[str] = mapped_column(String(500))
    severity: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default=IncidentState.OPEN.value)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(ACTOR_LEN))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalation_policy: Mapped[str | None] = mapped_column(String(NAME_LEN))
    # The policy spec as it was at opening: an incident keeps the version it started with.
    policy_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    open_monitor_id: Mapped[int | None] = mapped_column(BigIntPK, Computed(OPEN_MONITOR_ID, persisted=False))

    events: Mapped[list[IncidentEvent]] = relationship(
        back_populates="incident",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="IncidentEvent.at, IncidentEvent.id",
    )
    escalation: Mapped[EscalationState | None] = relationship(
        back_populates="incident", cascade="all, delete-orphan", passive_deletes=True
    )


class IncidentEvent(Base):
    """One entry of an incident's timeline."""

    __tablename__ = "incident_events"
    __table_args__ = (Index(None, "incident_id", "at"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    incident_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    type: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(ACTOR_LEN))
    channel: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    incident: Mapped[Incident] = relationship(back_populates="events")


class EscalationState(Base):
    """The escalation cursor of one incident; the alerter resumes from it after a restart.

    ``version`` is an optimistic lock: two alerters advancing the same step cannot both win (the
    loser's flush raises StaleDataError), so a step is never notified twice.
    """

    __tablename__ = "escalations"
    __table_args__ = (
        Index(None, "next_step_at"),
        CheckConstraint("status IN ('active', 'stopped', 'exhausted')", name="status"),
        MYSQL_TABLE_OPTIONS,
    )

    incident_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    repeat_index: Mapped[int] = mapped_column(Integer, default=0)
    next_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=EscalationStatus.ACTIVE.value)
    version: Mapped[int] = mapped_column(Integer)

    incident: Mapped[Incident] = relationship(back_populates="escalation")

    __mapper_args__ = {"version_id_col": version}
