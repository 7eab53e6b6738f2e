"""Identity in the store: users, memberships, sessions and their refresh tokens, API tokens, recovery
codes, impersonations, global maintenance, throttles, single-use links, and the audit log.

What teams declare (Organizations) stays in Git; everything here changes at runtime and is audited.
Secrets are never stored as they are: passwords as argon2id hashes, refresh tokens, API tokens, recovery
codes and used link tokens as keyed or plain SHA-256 hex digests, TOTP secrets sealed (the callers in
`spectra.auth` do the hashing and sealing; this module never sees SPECTRA_SECRET_KEY).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.config import NAME_LEN, NAMESPACE_LEN
from spectra.store.types import BigIntPK, JSONType, UTCDateTime, utcnow

EMAIL_LEN = 320
DIGEST_LEN = 64  # SHA-256 hex


class UserStatus(StrEnum):
    INVITED = "invited"  # has not set a password yet (setup or invitation link)
    ACTIVE = "active"
    DISABLED = "disabled"


class Role(StrEnum):
    """A member's role in one organization (platform admin is a flag of the user, not a role)."""

    USER = "user"
    ADMIN = "admin"


class User(Base):
    """A person who signs in. E-mail addresses are stored lower-cased (by the ORM) and unique."""

    __tablename__ = "users"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_LEN), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    # argon2id, its parameters inside the hash (raised parameters rehash at the next sign-in); NULL: none
    # set yet (invited) or single sign-on only.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=UserStatus.ACTIVE)
    platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # The TOTP secret, sealed (spectra.store.sealing); enabled once a first code confirmed the enrolment.
    mfa_secret: Mapped[str | None] = mapped_column(String(512))
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last TOTP time step accepted: a code is good once per step (RFC 6238 section 5.2).
    mfa_last_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    sessions: Mapped[list[UserSession]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        passive_deletes=True,
        foreign_keys="UserSession.user_id",
    )

    @validates("email")
    def _normalize_email(self, _key: str, value: str) -> str:
        return value.strip().lower()


class Membership(Base):
    """A user's role in one organization (an Organization object's name; "" is standalone's implicit one)."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "organization"), Index(None, "organization"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("users.id", ondelete="CASCADE"))
    organization: Mapped[str] = mapped_column(String(NAME_LEN))
    role: Mapped[str] = mapped_column(String(16), default=Role.USER)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="memberships")


class UserSession(Base):
    """One sign-in: a refresh token family. `sid` (random) goes into access tokens; revoking the session
    ends every token of the family at once (logout, sign out everywhere, a rotated token reused)."""

    __tablename__ = "sessions"
    __table_args__ = (Index(None, "user_id"), Index(None, "expires_at"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("users.id", ondelete="CASCADE"))
    organization: Mapped[str | None] = mapped_column(String(NAME_LEN))  # the one it acts in
    impersonation_id: Mapped[int | None] = mapped_column(BigIntPK, ForeignKey("impersonations.id", ondelete="CASCADE"))
    mfa_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the absolute lifetime's end
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))  # fits any IPv6 text form
    user_agent: Mapped[str | None] = mapped_column(String(500))

    user: Mapped[User] = relationship(back_populates="sessions", foreign_keys=[user_id])
    refresh_tokens: Mapped[list[RefreshToken]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True
    )


class RefreshToken(Base):
    """One refresh token of a session, by its SHA-256. Rotated on use: a used one presented again is a
    replay, and revokes its session."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index(None, "session_id"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    session_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("sessions.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(DIGEST_LEN), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    session: Mapped[UserSession] = relationship(back_populates="refresh_tokens")


class ApiToken(Base):
    """A named, scoped token for API clients, shown once and kept as its SHA-256; `prefix` names it in
    lists without revealing it."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("user_id", "organization", "name"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("users.id", ondelete="CASCADE"))
    organization: Mapped[str] = mapped_column(String(NAME_LEN))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(DIGEST_LEN), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecoveryCode(Base):
    """One of a user's single-use MFA recovery codes, by its keyed digest."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index(None, "user_id"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(DIGEST_LEN))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Impersonation(Base):
    """A platform admin acting as a user of an organization, for a written reason, for a limited time."""

    __tablename__ = "impersonations"
    __table_args__ = (Index(None, "user_id"), Index(None, "impersonator_id"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    impersonator_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("users.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("users.id", ondelete="CASCADE"))
    organization: Mapped[str] = mapped_column(String(NAME_LEN))
    reason: Mapped[str] = mapped_column(String(1000))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GlobalMaintenance(Base):
    """The platform-wide maintenance switch: one row (id 1) while it has ever been used."""

    __tablename__ = "global_maintenance"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str] = mapped_column(String(2000), default="")
    show_on_status_pages: Mapped[bool] = mapped_column(Boolean, default=False)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_by: Mapped[str | None] = mapped_column(String(EMAIL_LEN))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OrganizationSettings(Base):
    """What an organization's admins change at runtime (its plan and namespaces stay in Git)."""

    __tablename__ = "organization_settings"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    organization: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    require_mfa: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(EMAIL_LEN))


class Throttle(Base):
    """Failed attempts under one key (an account, a client address) and how long it must wait; shared
    by every replica, so a second web pod is no way around the limit."""

    __tablename__ = "throttles"
    __table_args__ = (Index(None, "updated_at"), MYSQL_TABLE_OPTIONS)

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsedLink(Base):
    """A single-use link token (setup, invitation, password reset) that has been used, by its SHA-256,
    kept until the token would have expired anyway."""

    __tablename__ = "used_links"
    __table_args__ = (Index(None, "expires_at"), MYSQL_TABLE_OPTIONS)

    token_hash: Mapped[str] = mapped_column(String(DIGEST_LEN), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditLog(Base):
    """Who did what to which object; append-only from the application's side. Targets are NULL for
    actions like sign-in. `actor_user_id` has no foreign key: the record outlives the account."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at"), Index(None, "organization", "at"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)
    impersonator: Mapped[str | None] = mapped_column(String(EMAIL_LEN))  # who really acted, when impersonating
    organization: Mapped[str | None] = mapped_column(String(NAME_LEN))
    ip: Mapped[str | None] = mapped_column(String(45))
    action: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str | None] = mapped_column(String(64))
    target_namespace: Mapped[str | None] = mapped_column(String(NAMESPACE_LEN))
    target_name: Mapped[str | None] = mapped_column(String(NAME_LEN))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
