"""The notifications outbox and its delivery attempts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Double, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.sealing import SealedJSON
from spectra.store.types import BigIntPK, UTCDateTime, utcnow


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for next_attempt_at
    SENDING = "sending"  # claimed by a sender
    SENT = "sent"
    FAILED = "failed"  # last attempt failed, will be retried at next_attempt_at
    DEAD = "dead"  # given up (4xx or out of attempts)


class Notification(Base):
    """One message to one recipient; written in the same transaction as the event that causes it."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index(None, "status", "next_attempt_at"),  # the sender's "what is due" query
        Index(None, "incident_id"),
        CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'dead')", name="status"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # E.g. "incident:42:step:1:repeat:0:contact:alice:sms": inserting a duplicate fails, so retries,
    # restarts and replicas cannot queue the same message twice.
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    incident_id: Mapped[int | None] = mapped_column(BigIntPK, ForeignKey("incidents.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(320))  # address, E.164 number or webhook name
    subject: Mapped[str | None] = mapped_column(String(500))
    # Text, html, facts and headers: sealed at rest, as they carry link tokens (spectra.store.sealing);
    # emptied once delivery is final.
    payload: Mapped[dict[str, Any]] = mapped_column(SealedJSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    attempt_log: Mapped[list[NotificationAttempt]] = relationship(
        back_populates="notification",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="NotificationAttempt.id",
    )


class NotificationAttempt(Base):
    """One delivery attempt of a notification, kept for debugging and audits."""

    __tablename__ = "notification_attempts"
    __table_args__ = (Index(None, "notification_id"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    notification_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("notifications.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))  # sent | retry | failed
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(1000))
    duration_ms: Mapped[float | None] = mapped_column(Double)

    notification: Mapped[Notification] = relationship(back_populates="attempt_log")
