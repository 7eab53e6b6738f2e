"""Status-page incidents (what readers see) and their timeline of updates.

A page incident is not an alerting incident: it belongs to a page, names components rather than
monitors, and is written for customers. ``source`` says whether the status-page worker opened it
from a monitor's outage (``auto``, then ``monitor_incident_id`` may link the alerting incident) or
a person did (``manual``).
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, delete, or_
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.config import NAME_LEN, NAMESPACE_LEN
from spectra.store.types import BigIntPK, JSONType, UTCDateTime, utcnow

AUTHOR_LEN: Final = 255
MAINTENANCE_TITLE_LEN: Final = 200


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
    # Posted by hand: each affected component's impact (degraded | partial_outage | major_outage), which
    # the page shows as the component's state while the incident is unresolved (when worse than measured).
    component_impacts: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    postmortem: Mapped[str | None] = mapped_column(Text)  # markdown, written once it is resolved
    postmortem_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

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


class PageMaintenance(Base):
    """Ad-hoc maintenance of some components of a page, started in the console or the API: from
    ``starts_at`` until ``ends_at``, or until ``ended_at`` when someone ended it early.

    ``monitors`` are the names (in the page's namespace) of the components' monitors when it started:
    `spectra.domain.maintenance.load_windows` reads each row as a one-off maintenance window over them,
    so paging, component states, uptime and the page treat it as a MaintenanceWindow.
    """

    __tablename__ = "page_maintenance"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="window"),
        Index(None, "page_namespace", "page_name", "ends_at"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    page_namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    page_name: Mapped[str] = mapped_column(String(NAME_LEN))
    title: Mapped[str] = mapped_column(String(MAINTENANCE_TITLE_LEN))
    message: Mapped[str | None] = mapped_column(Text)  # markdown, sanitized when rendered
    components: Mapped[list[str]] = mapped_column(JSONType, default=list)
    monitors: Mapped[list[str]] = mapped_column(JSONType, default=list)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_by: Mapped[str] = mapped_column(String(AUTHOR_LEN))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(AUTHOR_LEN))

    @property
    def until(self) -> datetime:
        """When it ends (or ended): ``ends_at``, or ``ended_at`` if someone ended it before."""
        return min(self.ends_at, self.ended_at) if self.ended_at is not None else self.ends_at


# Ad-hoc maintenance counts in uptime for as long as the longest history a page shows (the daily rollups'
# retention, spectra.store.results.RetentionPolicy.daily); older rows only cost every alerter pass a read.
PAGE_MAINTENANCE_KEPT: Final = timedelta(days=400)


def prune_page_maintenance(session: Session, now: datetime, kept: timedelta = PAGE_MAINTENANCE_KEPT) -> int:
    """Forget ad-hoc maintenance that ended (at its planned end, or earlier when ended early: its `until`)
    more than `kept` ago; how many."""
    before = now - kept
    stmt = delete(PageMaintenance).where(or_(PageMaintenance.ends_at < before, PageMaintenance.ended_at < before))
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
