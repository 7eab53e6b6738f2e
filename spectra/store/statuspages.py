"""Status-page incidents (what readers see) and their timeline of updates.

A page incident is not an alerting incident: it belongs to a page, names components rather than
monitors, and is written for customers. ``source`` says whether the status-page worker opened it
from a monitor's outage (``auto``, then ``monitor_incident_id`` may link the alerting incident) or
a person did (``manual``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Final

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.config import NAME_LEN, NAMESPACE_LEN
from spectra.store.types import BigIntPK, JSONType, UTCDateTime, utcnow

AUTHOR_LEN: Final = 255


class PageIncidentState(enum.StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class PageIncidentSource(enum.StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class PageIncident(Base):
    """One incident shown on a status page."""

    __tablename__ = "page_incidents"
    __table_args__ = (
        Index(None, "page_namespace", "page_name", "started_at"),
        Index(None, "resolved_at"),
        Index(None, "monitor_incident_id"),  # serves ON DELETE SET NULL without a scan
        CheckConstraint("state IN ('investigating', 'identified', 'monitoring', 'resolved')", name="state"),
        CheckConstraint("source IN ('auto', 'manual')", name="source"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    page_namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    page_name: Mapped[str] = mapped_column(String(NAME_LEN))
    title: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(16), default=PageIncidentState.INVESTIGATING.value)
    impact: Mapped[str] = mapped_column(String(32))  # none | minor | major | critical | maintenance
    components: Mapped[list[str]] = mapped_column(JSONType, default=list)  # component names
    source: Mapped[str] = mapped_column(String(16), default=PageIncidentSource.MANUAL.value)
    monitor_incident_id: Mapped[int | None] = mapped_column(BigIntPK, ForeignKey("incidents.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    updates: Mapped[list[PageIncidentUpdate]] = relationship(
        back_populates="incident",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="PageIncidentUpdate.at, PageIncidentUpdate.id",
    )


class PageIncidentUpdate(Base):
    """One update of a page incident (markdown body, sanitized when rendered)."""

    __tablename__ = "page_incident_updates"
    __table_args__ = (
        Index(None, "page_incident_id", "at"),
        CheckConstraint("state IN ('investigating', 'identified', 'monitoring', 'resolved')", name="state"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    page_incident_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("page_incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str | None] = mapped_column(String(AUTHOR_LEN))

    incident: Mapped[PageIncident] = relationship(back_populates="updates")
