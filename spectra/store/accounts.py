"""Console users, their sessions, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.config import NAME_LEN, NAMESPACE_LEN
from spectra.store.types import BigIntPK, JSONType, UTCDateTime, utcnow


class User(Base):
    """A console user. E-mail addresses are stored lower-cased (by the ORM) and unique."""

    __tablename__ = "users"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))  # NULL: no password login (SSO)
    role: Mapped[str] = mapped_column(String(32))
    organization: Mapped[str | None] = mapped_column(String(NAME_LEN))
    # TOTP secret; callers encrypt it before storing (the store never sees SPECTRA_SECRET_KEY).
    mfa_secret: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)

    sessions: Mapped[list[UserSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("email")
    def _normalize_email(self, _key: str, value: str) -> str:
        return value.strip().lower()


class UserSession(Base):
    """A login session. ``id`` is the sha256 hex of the session token, so a leaked table is no login."""

    __tablename__ = "sessions"
    __table_args__ = (Index(None, "user_id"), Index(None, "expires_at"), MYSQL_TABLE_OPTIONS)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45))  # fits any IPv6 text form
    user_agent: Mapped[str | None] = mapped_column(String(500))

    user: Mapped[User] = relationship(back_populates="sessions")


class AuditLog(Base):
    """Who did what to which object; append-only. Targets are NULL for actions like login."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str | None] = mapped_column(String(64))
    target_namespace: Mapped[str | None] = mapped_column(String(NAMESPACE_LEN))
    target_name: Mapped[str | None] = mapped_column(String(NAME_LEN))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
