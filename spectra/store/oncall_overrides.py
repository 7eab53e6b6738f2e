"""On-call overrides taken at runtime (in the console or the API), as opposed to a Schedule's
``spec.overrides`` written in its manifest; and the version of each user's on-call calendar feed URL."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from spectra.store.accounts import EMAIL_LEN
from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.config import NAME_LEN, NAMESPACE_LEN
from spectra.store.types import BigIntPK, UTCDateTime, utcnow

OVERRIDE_REASON_LEN: Final = 500


class OncallOverride(Base):
    """One Contact on call for one Schedule from ``starts_at`` until ``ends_at`` (its expiry).

    It counts while ``starts_at <= t < ends_at`` and ``cancelled_at`` is NULL; cancelling keeps the
    row (who cancelled and when) so the record of who was on call stays complete. ``taken_by`` is
    the e-mail of the user who took it, ``user_id`` their id without a foreign key: the record
    outlives the account, like the audit log.
    """

    __tablename__ = "oncall_overrides"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="window"),
        Index(None, "schedule_namespace", "schedule_name", "ends_at"),
        Index(None, "contact_namespace", "contact_name"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    schedule_namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    schedule_name: Mapped[str] = mapped_column(String(NAME_LEN))
    contact_namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    contact_name: Mapped[str] = mapped_column(String(NAME_LEN))
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    taken_by: Mapped[str] = mapped_column(String(EMAIL_LEN))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(OVERRIDE_REASON_LEN))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by: Mapped[str | None] = mapped_column(String(EMAIL_LEN))

    def active_at(self, at: datetime) -> bool:
        """Whether this override counts at ``at``: inside its window and not cancelled."""
        return self.cancelled_at is None and self.starts_at <= at < self.ends_at


class OncallFeed(Base):
    """The version of a user's on-call calendar feed URL: the signed URL names it, and rotating it (a new
    version) makes every URL handed out before stop working. No row: version 0."""

    __tablename__ = "oncall_feeds"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    rotated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
