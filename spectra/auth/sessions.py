"""Sign-in sessions as refresh token families (the OAuth 2.0 Security BCP's refresh token rotation).

A session (`UserSession`, named by its random `sid`) is one sign-in on one device. It holds a family of
refresh tokens: 32 random bytes each, kept only as their SHA-256. Every refresh marks the token presented
as rotated and hands out a new one with a new access token (spectra.auth.access_tokens) that carries the
member's role as it is now, so a role change takes effect at the next refresh.

- Lifetimes (:class:`Lifetimes`): an access token lives 10 minutes; a session ends 30 minutes after its
  last refresh (idle) and 12 hours after sign-in whatever happens (absolute), per OWASP ASVS 4.0 L2
  3.3.2 / NIST 800-63B AAL2. An impersonation's session also ends when the impersonation does.
- A rotated token presented again means two parties hold the family: the whole session is revoked
  (`revoked_reason` "reuse") and audited, so the newest token dies too. There is no grace window: of
  two refreshes racing with the same token exactly one wins, and the other is reuse (a stolen token
  racing its owner must not win quietly); a client refreshes one request at a time.
- Every other refusal (unknown, revoked or expired session, disabled user, membership gone, impersonation
  over) changes nothing and says the same thing to a person (:data:`SIGN_IN_AGAIN`); the reason is for logs.

Functions flush and leave the commit to the caller, except `refresh` when it revokes a family for reuse:
that revocation must outlive the refusal the caller will roll back, so it commits first. Call `refresh`
first in its transaction (on SQLite an earlier read would keep it from seeing a racing refresh's write).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import CursorResult, and_, delete, or_, select, update
from sqlalchemy.orm import Session

from spectra.auth import access_tokens
from spectra.auth.access_tokens import Keys
from spectra.auth.audit import record
from spectra.auth.identity import Actor, Principal
from spectra.store.accounts import Impersonation, Membership, RefreshToken, Role, User, UserSession, UserStatus
from spectra.store.environment import seconds_setting

SIGN_IN_AGAIN: Final = "Your session has ended. Sign in again."
IDLE_ENV: Final = "SPECTRA_SESSION_IDLE_TIMEOUT_S"
ABSOLUTE_ENV: Final = "SPECTRA_SESSION_ABSOLUTE_TIMEOUT_S"
DEFAULT_IDLE: Final = timedelta(minutes=30)
DEFAULT_ABSOLUTE: Final = timedelta(hours=12)
# Ended sessions stay a day, so a list of one's sessions can say how the last ones ended; then they go.
KEEP_ENDED: Final = timedelta(days=1)
# token_urlsafe(32) is 43 characters; anything much longer is not ours and is not even hashed.
MAX_REFRESH_TOKEN_CHARS: Final = 128
_PRUNE_BATCH: Final = 500


class SessionRefused(Exception):
    """No session for this token or sign-in. `reason` is for logs; `str()` is what a person reads."""

    def __init__(self, reason: str, message: str = SIGN_IN_AGAIN) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Lifetimes:
    """How long an access token, an idle session and any session live."""

    access: timedelta = access_tokens.DEFAULT_LIFETIME
    idle: timedelta = DEFAULT_IDLE
    absolute: timedelta = DEFAULT_ABSOLUTE

    def __post_init__(self) -> None:
        # An idle limit no longer than an access token would sign everyone out at each refresh.
        if not timedelta(0) < self.access < self.idle <= self.absolute:
            raise ValueError(
                f"session lifetimes must grow: access token ({self.access}) < idle ({self.idle}) "
                f"<= absolute ({self.absolute})"
            )

    @classmethod
    def from_environment(cls) -> Lifetimes:
        """$SPECTRA_ACCESS_TOKEN_TTL_S, $SPECTRA_SESSION_IDLE_TIMEOUT_S, $SPECTRA_SESSION_ABSOLUTE_TIMEOUT_S;
        ValueError naming the variable that is out of range."""
        idle = seconds_setting(IDLE_ENV, DEFAULT_IDLE.total_seconds(), minimum=300, maximum=86_400)
        absolute = seconds_setting(ABSOLUTE_ENV, DEFAULT_ABSOLUTE.total_seconds(), minimum=900, maximum=2_592_000)
        try:
            return cls(
                access=access_tokens.access_lifetime(),
                idle=timedelta(seconds=idle),
                absolute=timedelta(seconds=absolute),
            )
        except ValueError as exc:
            raise ValueError(f"{access_tokens.LIFETIME_ENV}, {IDLE_ENV}, {ABSOLUTE_ENV}: {exc}") from None


@dataclass(frozen=True)
class Issued:
    """What a sign-in or refresh hands to the client (both tokens) and the session it belongs to."""

    refresh_token: str = field(repr=False)
    access_token: str = field(repr=False)
    session_row: UserSession
    principal: Principal
    access_expires_at: datetime


def start(
    session: Session,
    user: User,
    *,
    organization: str | None,
    now: datetime,
    mfa_verified: bool,
    ip: str | None,
    user_agent: str | None,
    impersonation: Impersonation | None = None,
    lifetimes: Lifetimes | None = None,
    keys: Keys | None = None,
) -> Issued:
    """A new session for `user`, who has just proved who they are, acting in `organization` (None: a
    platform admin outside any); with `impersonation`, the user is the one impersonated and the session
    ends with it. The sign-in that calls this records it in the audit log (`user.login`,
    `impersonation.started`): one record per sign-in."""
    lifetimes = lifetimes or Lifetimes.from_environment()
    if impersonation is not None and (impersonation.user_id != user.id or impersonation.organization != organization):
        raise SessionRefused("impersonation of another user or organization")
    row = UserSession(
        sid=secrets.token_urlsafe(32),
        user_id=user.id,
        organization=organization,
        impersonation_id=None if impersonation is None else impersonation.id,
        mfa_verified=mfa_verified,
        created_at=now,
        last_used_at=now,
        expires_at=now + lifetimes.absolute,
        ip=None if ip is None else ip[:45],
        user_agent=None if user_agent is None else user_agent[:500],
    )
    if impersonation is not None:
        row.expires_at = min(row.expires_at, impersonation.expires_at)
    principal = _principal(session, row, user, now=now)  # refuses before anything is added
    refresh_token = secrets.token_urlsafe(32)
    session.add(row)
    session.flush()
    session.add(RefreshToken(session_id=row.id, token_hash=_digest(refresh_token), issued_at=now))
    session.flush()
    return _issued(row, principal, refresh_token, now=now, lifetimes=lifetimes, keys=keys)


def refresh(
    session: Session,
    refresh_token: str,
    *,
    now: datetime,
    ip: str | None = None,
    lifetimes: Lifetimes | None = None,
    keys: Keys | None = None,
) -> Issued:
    """Rotate `refresh_token`: a new refresh token and access token, or SessionRefused. A token already
    rotated revokes its session (commits, see the module docstring); `ip`, the presenter's address,
    goes into that audit record."""
    lifetimes = lifetimes or Lifetimes.from_environment()
    digest = _digest_of(refresh_token)
    # The compare-and-set that gives two refreshes with one token one winner: the second waits for the
    # first's lock, then finds the token rotated. Undone if the session is refused.
    claim = session.begin_nested()
    claimed = _claim(session, digest, now=now)
    found = session.execute(
        select(RefreshToken, UserSession)
        .join(UserSession, RefreshToken.session_id == UserSession.id)
        .where(RefreshToken.token_hash == digest)
        .execution_options(populate_existing=True)
    ).one_or_none()
    try:
        if found is None or not hmac.compare_digest(found[0].token_hash, digest):
            raise SessionRefused("unknown token")
        row = found[1]
        if claimed != 1:
            claim.rollback()
            _revoke_for_reuse(session, row, now=now, ip=ip)
        _check_lifetime(row, now=now, lifetimes=lifetimes)
        user = session.get(User, row.user_id)
        if user is None:
            raise SessionRefused("unknown token")
        principal = _principal(session, row, user, now=now)
    except SessionRefused:
        if claim.is_active:
            claim.rollback()
        raise
    claim.commit()
    new_token = secrets.token_urlsafe(32)
    session.add(RefreshToken(session_id=row.id, token_hash=_digest(new_token), issued_at=now))
    row.last_used_at = now
    session.flush()
    return _issued(row, principal, new_token, now=now, lifetimes=lifetimes, keys=keys)


def is_active(session: Session, sid: str, *, now: datetime, lifetimes: Lifetimes | None = None) -> bool:
    """Whether session `sid` could still refresh at `now`: for what must see a logout, a disabled user or
    a removed membership at once rather than when the access token expires (sensitive actions)."""
    lifetimes = lifetimes or Lifetimes.from_environment()
    row = session.scalars(select(UserSession).where(UserSession.sid == sid)).one_or_none()
    if row is None:
        return False
    try:
        _check_lifetime(row, now=now, lifetimes=lifetimes)
        user = session.get(User, row.user_id)
        if user is None:
            return False
        _principal(session, row, user, now=now)
    except SessionRefused:
        return False
    return True


def revoke(session: Session, sid: str, *, reason: str, now: datetime, actor: Actor | None = None) -> bool:
    """End session `sid` (`reason`: "logout", "admin", ...); False when it had already ended. Audited as
    `session.revoked` by `actor`, by default the session's user."""
    row = session.scalars(select(UserSession).where(UserSession.sid == sid)).one_or_none()
    if row is None or row.revoked_at is not None:
        return False
    ended = session.execute(
        update(UserSession)
        .where(UserSession.id == row.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason[:64])
    )
    if _changed(ended) != 1:
        return False
    record(
        session,
        actor or _actor_of(session, row),
        "session.revoked",
        now=now,
        organization=row.organization,
        details={"session": row.id, "reason": reason[:64]},
    )
    return True


def revoke_all(
    session: Session,
    user_id: int,
    *,
    now: datetime,
    except_sid: str | None = None,
    reason: str = "sign out everywhere",
    actor: Actor | None = None,
) -> int:
    """End every live session of the user (but `except_sid`, the one asking), including impersonations
    the user runs as a platform admin, but not a platform admin's impersonation of this user (ending that
    is the impersonation's business). How many ended; audited once as `session.revoked_all`."""
    theirs = or_(
        and_(UserSession.user_id == user_id, UserSession.impersonation_id.is_(None)),
        UserSession.impersonation_id.in_(select(Impersonation.id).where(Impersonation.impersonator_id == user_id)),
    )
    live = select(UserSession.id).where(theirs, UserSession.revoked_at.is_(None), UserSession.expires_at > now)
    if except_sid is not None:
        live = live.where(UserSession.sid != except_sid)
    ids = list(session.scalars(live))
    if not ids:
        return 0
    ended = _changed(
        session.execute(
            update(UserSession)
            .where(UserSession.id.in_(ids), UserSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason[:64])
        )
    )
    if actor is None:
        user = session.get(User, user_id)
        actor = Actor(name=user.email if user is not None else f"user {user_id}", user_id=user_id)
    record(session, actor, "session.revoked_all", now=now, details={"sessions": ended, "reason": reason[:64]})
    return ended


def prune(session: Session, *, now: datetime, lifetimes: Lifetimes | None = None) -> int:
    """Delete sessions (and their refresh tokens) that ended more than KEEP_ENDED ago; how many."""
    lifetimes = lifetimes or Lifetimes.from_environment()
    before = now - KEEP_ENDED
    ended = or_(
        UserSession.revoked_at <= before,
        UserSession.expires_at <= before,
        UserSession.last_used_at <= before - lifetimes.idle,
    )
    deleted = 0
    while True:
        ids = list(session.scalars(select(UserSession.id).where(ended).order_by(UserSession.id).limit(_PRUNE_BATCH)))
        if not ids:
            return deleted
        session.execute(delete(RefreshToken).where(RefreshToken.session_id.in_(ids)))
        session.execute(delete(UserSession).where(UserSession.id.in_(ids)))
        session.flush()
        deleted += len(ids)


# --- inside -------------------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _digest_of(presented: object) -> str:
    if not isinstance(presented, str) or not 0 < len(presented) <= MAX_REFRESH_TOKEN_CHARS or not presented.isascii():
        raise SessionRefused("malformed token")
    return _digest(presented)


def _claim(session: Session, digest: str, *, now: datetime) -> int:
    """Mark the token with `digest` rotated unless it already was; 1 when this call did."""
    target = RefreshToken.token_hash == digest
    if session.get_bind().dialect.name != "sqlite":
        # InnoDB: by primary key, a record lock. Through the unique hash it would be a next-key lock, and
        # the winner's insert of its new token into that index gap deadlocks with the loser waiting on it.
        token_id = session.scalar(select(RefreshToken.id).where(target))
        if token_id is None:
            return 0
        target = RefreshToken.id == token_id
    # SQLite: a write before any read, so the second refresh waits for the first to commit and then
    # reads what it wrote; had it read first, its older snapshot could not be written from ("database is
    # locked") and the reuse would go unseen.
    return _changed(
        session.execute(
            update(RefreshToken)
            .where(target, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=now)
            .execution_options(synchronize_session=False)
        )
    )


def _changed(result: Any) -> int:
    return int(cast("CursorResult[Any]", result).rowcount)


def _check_lifetime(row: UserSession, *, now: datetime, lifetimes: Lifetimes) -> None:
    if row.revoked_at is not None:
        raise SessionRefused(f"revoked ({row.revoked_reason})")
    if now >= row.expires_at:
        raise SessionRefused("absolute timeout")
    if now >= row.last_used_at + lifetimes.idle:
        raise SessionRefused("idle timeout")


def _principal(session: Session, row: UserSession, user: User, *, now: datetime) -> Principal:
    """Who the session acts as now (the current role, the impersonator), or SessionRefused."""
    if user.status != UserStatus.ACTIVE:
        raise SessionRefused("user not active")
    role: Role | None = None
    if row.organization is None:
        if not user.platform_admin:
            raise SessionRefused("no organization and not a platform admin")
    else:
        membership = session.scalars(
            select(Membership).where(Membership.user_id == user.id, Membership.organization == row.organization)
        ).one_or_none()
        if membership is None:
            raise SessionRefused("not a member")
        role = Role(membership.role)
    impersonator: User | None = None
    if row.impersonation_id is not None:
        impersonation = session.get(Impersonation, row.impersonation_id)
        if impersonation is None or impersonation.ended_at is not None or now >= impersonation.expires_at:
            raise SessionRefused("impersonation over")
        impersonator = session.get(User, impersonation.impersonator_id)
        if impersonator is None or impersonator.status != UserStatus.ACTIVE or not impersonator.platform_admin:
            raise SessionRefused("impersonator no longer a platform admin")
    return Principal(
        user_id=user.id,
        email=user.email,
        organization=row.organization,
        role=role,
        platform_admin=user.platform_admin,
        session_id=row.sid,
        impersonator_id=None if impersonator is None else impersonator.id,
        impersonator_email=None if impersonator is None else impersonator.email,
    )


def _issued(
    row: UserSession,
    principal: Principal,
    refresh_token: str,
    *,
    now: datetime,
    lifetimes: Lifetimes,
    keys: Keys | None,
) -> Issued:
    # An access token never outlives its session (an impersonation's end, the absolute limit).
    access_end = min(now + lifetimes.access, row.expires_at)
    access_token = access_tokens.issue(principal, now=now, expires_at=access_end, keys=keys)
    return Issued(
        refresh_token=refresh_token,
        access_token=access_token,
        session_row=row,
        principal=principal,
        access_expires_at=access_end,
    )


def _revoke_for_reuse(session: Session, row: UserSession, *, now: datetime, ip: str | None) -> None:
    """Revoke the family a rotated token belongs to, audit it, commit, and refuse."""
    revoked = session.execute(
        update(UserSession)
        .where(UserSession.id == row.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason="reuse")
    )
    if _changed(revoked) == 1:
        record(
            session,
            _actor_of(session, row, ip=ip),
            "session.reuse_detected",
            now=now,
            organization=row.organization,
            details={"session": row.id},
        )
        session.commit()
    raise SessionRefused("reuse")


def _actor_of(session: Session, row: UserSession, *, ip: str | None = None) -> Actor:
    user = session.get(User, row.user_id)
    impersonator: str | None = None
    if row.impersonation_id is not None:
        impersonation = session.get(Impersonation, row.impersonation_id)
        by = None if impersonation is None else session.get(User, impersonation.impersonator_id)
        impersonator = None if by is None else by.email
    return Actor(
        name=user.email if user is not None else f"user {row.user_id}",
        user_id=row.user_id,
        organization=row.organization,
        impersonator=impersonator,
        ip=ip,
    )
