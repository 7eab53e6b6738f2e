"""Impersonation for support: a platform admin acts as a member of an organization, for a written reason,
for a limited time, told to the organization's admins and audited with both names.

`start` records an Impersonation and signs in a session for the member that carries it
(`UserSession.impersonation_id`): its access tokens hold the RFC 8693 `act` claim naming the platform
admin, every action under it is audited with both identities (`Actor.of` an impersonating principal),
and the policy refuses the member's own password, two-factor authentication and API tokens, and every
platform action, while it lasts. It lasts `minutes` (default 30, at most 60); the session's absolute end
is the impersonation's, so neither a refresh nor an access token outlives it. `end` ends it at once: its
sessions are revoked in the same transaction, and a refresh is refused from then on. One whose time ran
out is closed by `close_expired` (housekeeping, hourly), so its end is in the logs too.

`impersonation.started` and `impersonation.ended` are recorded twice: in the platform's log with the
platform admin as the actor, and in the organization's log with the member as the actor and the platform
admin as the impersonator, which is what the organization's admins read. Every admin of the organization
gets an email when one starts.

Functions flush and leave the commit to the caller.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from spectra.auth import policy, sessions
from spectra.auth.access_tokens import Keys
from spectra.auth.accounts import PRODUCT, find_user, links_base, organizations
from spectra.auth.audit import record
from spectra.auth.identity import Actor, Principal
from spectra.auth.mail import Mail, queue_mail
from spectra.auth.sessions import Issued, Lifetimes
from spectra.store.accounts import Impersonation, Membership, Role, User, UserSession, UserStatus

DEFAULT_MINUTES: Final = 30
MAX_MINUTES: Final = 60
MIN_REASON_CHARS: Final = 10
MAX_REASON_CHARS: Final = 1000  # the column's size

REASON_TOO_SHORT: Final = (
    f"write why (at least {MIN_REASON_CHARS} characters): the organization's admins read it in their "
    "email and audit log"
)
TOO_LONG: Final = f"an impersonation lasts at most {MAX_MINUTES} minutes"
TOO_SHORT: Final = "an impersonation lasts at least 1 minute"
SESSION_ENDED: Final = sessions.SIGN_IN_AGAIN
ENDED_REASON: Final = "impersonation ended"  # the revoked sessions' revoked_reason
EXPIRY: Final = "expiry"  # who ended an impersonation whose time ran out (audit)


class ImpersonationError(ValueError):
    """Refused for what was asked (the reason, the duration, the member): the message is shown as it is.
    Refusals of who asks are spectra.auth.policy's `Forbidden`."""


@dataclass(frozen=True)
class ActiveImpersonation:
    """An impersonation in effect, as a list of them shows it."""

    id: int
    impersonator: str
    user: str
    organization: str
    reason: str
    started_at: datetime
    expires_at: datetime


def start(
    session: Session,
    platform_admin: Principal,
    user_email: str,
    organization: str,
    *,
    reason: str,
    minutes: int = DEFAULT_MINUTES,
    now: datetime,
    ip: str | None,
    user_agent: str | None,
    public_url: str | None = None,
    lifetimes: Lifetimes | None = None,
    keys: Keys | None = None,
) -> Issued:
    """Start impersonating `user_email` in `organization`: a session for that member, which ends with the
    impersonation, audited and mailed to the organization's admins.

    Refused, with nothing written: by the policy (`Forbidden`) unless `platform_admin` is a platform
    admin acting as themselves (not by API token, not while impersonating), whose account is still an
    active platform admin and whose session is still live; and (`ImpersonationError`) for a reason shorter
    than MIN_REASON_CHARS, a duration outside 1..MAX_MINUTES, an unknown organization, an address that is
    not a member of it (one message for both), an account that is not active, and (`Forbidden`) another
    platform admin.
    """
    policy.require(platform_admin, policy.Action.IMPERSONATE, organization=None)
    impersonator = _live_platform_admin(session, platform_admin, now=now, lifetimes=lifetimes)
    why = _reason(reason)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise ImpersonationError(TOO_SHORT)
    if minutes > MAX_MINUTES:
        raise ImpersonationError(TOO_LONG)
    titles = organizations(session)
    if organization not in titles:
        raise ImpersonationError(f"there is no Organization named {organization!r}")
    address = user_email.strip().lower()
    not_a_member = ImpersonationError(f"{address} is not a member of {organization or 'this organization'}")
    user = find_user(session, address)
    if user is None:
        raise not_a_member
    membership = session.scalar(
        select(Membership).where(Membership.user_id == user.id, Membership.organization == organization)
    )
    if membership is None:
        raise not_a_member
    policy.require_impersonation(platform_admin, target_platform_admin=user.platform_admin)
    if user.status != UserStatus.ACTIVE:
        raise ImpersonationError(f"{address} has not set up an account, or it is disabled: it cannot be impersonated")

    row = Impersonation(
        impersonator_id=impersonator.id,
        user_id=user.id,
        organization=organization,
        reason=why,
        started_at=now,
        expires_at=now + timedelta(minutes=minutes),
    )
    session.add(row)
    session.flush()
    issued = sessions.start(
        session,
        user,
        organization=organization,
        now=now,
        # The person acting is the platform admin: their own session's second factor is what proved them.
        mfa_verified=_mfa_verified(session, platform_admin),
        ip=ip,
        user_agent=user_agent,
        impersonation=row,
        lifetimes=lifetimes,
        keys=keys,
    )
    details = {
        "impersonation": row.id,
        "reason": why,
        "minutes": minutes,
        "expires_at": row.expires_at.isoformat(),
        "role": membership.role,
    }
    staff = replace(Actor.of(platform_admin, ip=ip), organization=None)
    record(
        session,
        staff,
        "impersonation.started",
        now=now,
        target=("User", None, user.email),
        details={**details, "organization": organization},
    )
    record(
        session,
        Actor.of(issued.principal, ip=ip),
        "impersonation.started",
        now=now,
        organization=organization,
        target=("User", None, user.email),
        details=details,
    )
    _tell_admins(session, row, user, impersonator, titles[organization], base=links_base(public_url))
    return issued


def end(session: Session, impersonation_id: int, *, actor: Actor, now: datetime) -> bool:
    """End the impersonation now and revoke its sessions (a refresh is refused from now on; an access token
    already handed out lives at most its few minutes). False, with nothing written, when it had ended or
    expired already; ImpersonationError for an unknown id. Who may end it (the platform admin, another
    platform admin, the organization's admins) the caller asks the policy."""
    row = session.get(Impersonation, impersonation_id)
    if row is None:
        raise ImpersonationError(f"there is no impersonation {impersonation_id}")
    if row.ended_at is not None or now >= row.expires_at:
        return False
    return _close(session, row, at=now, actor=actor, ended_by=actor.name)


def close_expired(session: Session, *, now: datetime) -> int:
    """Record the end of every impersonation whose time ran out by ``now`` and that nobody ended: its
    `ended_at` and the two `impersonation.ended` audit records (ended by `expiry`, at its expiry time), so
    the organization's log says it is over. Housekeeping runs it every hour; how many it closed."""
    expired = session.scalars(
        select(Impersonation)
        .where(Impersonation.ended_at.is_(None), Impersonation.expires_at <= now)
        .order_by(Impersonation.id)
    ).all()
    return sum(_close(session, row, at=row.expires_at, actor=Actor.system(EXPIRY), ended_by=EXPIRY) for row in expired)


def active(session: Session, *, now: datetime, organization: str | None = None) -> list[ActiveImpersonation]:
    """Impersonations in effect at `now` (of one organization, or every one), the newest first."""
    staff = User.__table__.alias("staff")
    statement = (
        select(Impersonation, User.email, staff.c.email)
        .join(User, User.id == Impersonation.user_id)
        .join(staff, staff.c.id == Impersonation.impersonator_id)
        .where(Impersonation.ended_at.is_(None), Impersonation.expires_at > now)
        .order_by(Impersonation.id.desc())
    )
    if organization is not None:
        statement = statement.where(Impersonation.organization == organization)
    return [
        ActiveImpersonation(
            id=row.id,
            impersonator=staff_email,
            user=user_email,
            organization=row.organization,
            reason=row.reason,
            started_at=row.started_at,
            expires_at=row.expires_at,
        )
        for row, user_email, staff_email in session.execute(statement)
    ]


# --- inside -------------------------------------------------------------------------------------------


def _close(session: Session, row: Impersonation, *, at: datetime, actor: Actor, ended_by: str) -> bool:
    """End ``row`` at ``at`` unless something else ended it first; revoke its sessions; audit it in the
    platform's log and the organization's."""
    ended = session.execute(
        update(Impersonation)
        .where(Impersonation.id == row.id, Impersonation.ended_at.is_(None))
        .values(ended_at=at)
        .execution_options(synchronize_session="fetch")
    )
    if int(getattr(ended, "rowcount", 0) or 0) != 1:  # a concurrent end got there first
        return False
    revoked = session.execute(
        update(UserSession)
        .where(UserSession.impersonation_id == row.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=at, revoked_reason=ENDED_REASON)
        .execution_options(synchronize_session="fetch")
    )
    user = session.get(User, row.user_id)
    staff = session.get(User, row.impersonator_id)
    user_email = user.email if user is not None else f"user {row.user_id}"
    details = {
        "impersonation": row.id,
        "ended_by": ended_by,
        "started_at": row.started_at.isoformat(),
        "sessions_ended": int(getattr(revoked, "rowcount", 0) or 0),
    }
    record(
        session,
        replace(actor, organization=None),
        "impersonation.ended",
        now=at,
        target=("User", None, user_email),
        details={**details, "organization": row.organization},
    )
    record(
        session,
        Actor(
            name=user_email,
            user_id=row.user_id,
            organization=row.organization,
            impersonator=staff.email if staff is not None else f"user {row.impersonator_id}",
            ip=actor.ip,
        ),
        "impersonation.ended",
        now=at,
        organization=row.organization,
        target=("User", None, user_email),
        details=details,
    )
    session.flush()
    return True


def _reason(reason: str) -> str:
    text = reason.strip() if isinstance(reason, str) else ""
    if len(text) < MIN_REASON_CHARS:
        raise ImpersonationError(REASON_TOO_SHORT)
    if len(text) > MAX_REASON_CHARS:
        raise ImpersonationError(f"the reason is {len(text)} characters long; at most {MAX_REASON_CHARS}")
    if any(unicodedata.category(char) == "Cc" and char not in "\n\t" for char in text):
        raise ImpersonationError("the reason contains control characters; only line breaks and tabs are allowed")
    return text


def _live_platform_admin(session: Session, principal: Principal, *, now: datetime, lifetimes: Lifetimes | None) -> User:
    """The impersonator's account as the store has it now: an access token may be minutes older than a
    demotion, a disabled account or a logout, and starting an impersonation is no time to trust it."""
    user = session.get(User, principal.user_id)
    if user is None or not user.platform_admin or user.status != UserStatus.ACTIVE:
        raise policy.Forbidden(f"only platform admins may do {policy.Action.IMPERSONATE}")
    if principal.session_id is not None and not sessions.is_active(
        session, principal.session_id, now=now, lifetimes=lifetimes
    ):
        raise policy.Forbidden(SESSION_ENDED)
    return user


def _mfa_verified(session: Session, principal: Principal) -> bool:
    if principal.session_id is None:
        return False
    verified = session.scalar(select(UserSession.mfa_verified).where(UserSession.sid == principal.session_id))
    return bool(verified)


def _tell_admins(session: Session, row: Impersonation, user: User, staff: User, title: str, *, base: str) -> None:
    admins = session.scalars(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.organization == row.organization,
            Membership.role == Role.ADMIN,
            User.status == UserStatus.ACTIVE,
        )
        .order_by(User.id)
    )
    url = f"{base}/login"
    minutes = round((row.expires_at - row.started_at).total_seconds() / 60)
    text = (
        f"{staff.email} of {PRODUCT} support started acting as {user.email} in {title} at "
        f"{row.started_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC, for at most {minutes} minutes (until "
        f"{row.expires_at.astimezone(UTC):%H:%M} UTC).\n\n"
        f"The reason given: {row.reason}\n\n"
        "Everything done meanwhile is in your organization's audit log with both names. "
        f"Sign in to read it: {url}\n\n"
        f"If you did not expect this, contact {PRODUCT} support: an impersonation can be ended at once."
    )
    for admin in admins:
        queue_mail(
            session,
            Mail(
                key=f"impersonation:started:{row.id}:{admin.id}",
                recipient=admin.email,
                subject=f"{PRODUCT} support is acting as {user.email} in {title}",
                text=text,
                link=url,
                button="Sign in",
                kind="impersonation-started",
            ),
        )
