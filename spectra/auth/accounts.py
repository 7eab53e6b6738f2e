"""Accounts: users, memberships, invitations, password resets and the first admin's setup link.

Links (setup, invitation, reset) are signed, single-purpose, expiring tokens (spectra.tokens) carrying
the user id, a random nonce, their expiry and a fingerprint of the account as it was when the link was
made (email, status, password hash). A link is refused when its signature or purpose is wrong, when it
expired, when its nonce is in UsedLink (single use, kept until it would have expired anyway), and when
the account changed since (a password set, the account disabled): so using one link kills every other
link of the account made before it.

The first platform admin has no account to bind a link to: `first_admin_link` makes a setup link that
creates one (`claim_first_admin`), good only while no platform admin has set up an account (the accounts
Organizations declare in `spec.admins` may exist already: they are no platform admins); all such links
share one UsedLink entry, so two people racing with two links make one admin.

Mails (invitations, resets) are queued in the notification outbox in the caller's transaction
(spectra.auth.mail), as the alerter's pages are; the outbox's sender delivers them. Every change is
audited with its actor; errors a person sees are exact and never say whether an address has an account,
except to whoever manages it. Functions flush but do not commit: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spectra.auth import sessions, totp
from spectra.auth.audit import record
from spectra.auth.identity import Actor
from spectra.auth.mail import Mail, queue_mail
from spectra.auth.passwords import hash_password, password_problem
from spectra.auth.policy import IMPLICIT_ORGANIZATION
from spectra.runtime.public_url import configured_public_url
from spectra.store.accounts import (
    EMAIL_LEN,
    Membership,
    Role,
    UsedLink,
    User,
    UserSession,
    UserStatus,
)
from spectra.store.config import Resource as ResourceRow
from spectra.tokens import InvalidToken, Purpose, Tokens

PRODUCT: Final = "SpectraMonitor"
# Where links point when neither the caller nor SPECTRA_PUBLIC_URL says: `spectra run`'s default address.
DEFAULT_PUBLIC_URL: Final = "http://127.0.0.1:8080"

LINK_LIFETIMES: Final = {
    Purpose.SETUP: timedelta(days=7),
    Purpose.INVITE: timedelta(days=7),
    # Short, as OWASP's forgot-password guidance asks: a reset link is a password while it lives.
    Purpose.RESET: timedelta(hours=1),
}
LINK_PATHS: Final = {Purpose.SETUP: "setup", Purpose.INVITE: "invite", Purpose.RESET: "reset"}
# At most one reset mail per account in this window, however often someone asks: no mail bombing.
RESET_MAIL_WINDOW: Final = timedelta(minutes=10)

LINK_INVALID: Final = "this link is not valid"
LINK_EXPIRED: Final = "this link has expired"
LINK_USED: Final = "this link has already been used"
LINK_SUPERSEDED: Final = "this link is no longer valid: ask for a new one"
BAD_EMAIL: Final = "this is not a valid email address"
RESET_ANSWER: Final = (
    "If an account exists for that address, a link to choose a new password is on its way. "
    "The link works once, for one hour."
)

_FIRST_ADMIN_NONCE: Final = "first-admin"  # one UsedLink entry for every first-admin link
_FINGERPRINT_LEN: Final = 32


DISABLE_SELF: Final = "you cannot disable your own account: ask another admin"


class AccountError(ValueError):
    """Refused: the message is what the person is shown, exactly."""


@dataclass(frozen=True)
class LinkTarget:
    """What a valid link acts on: `user`, or None for the first admin's setup link (no account yet)."""

    purpose: Purpose
    user: User | None
    expires_at: datetime
    nonce: str


@dataclass(frozen=True)
class Invitation:
    """The membership an invitation made or renewed; `mailed` is False for a disabled account."""

    user: User
    membership: Membership
    mailed: bool


@dataclass(frozen=True)
class UserSummary:
    email: str
    display_name: str
    status: UserStatus
    mfa_enabled: bool
    platform_admin: bool
    memberships: tuple[tuple[str, Role], ...]  # (organization, role), by organization
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class DeclaredAdmins:
    """What `invite_declared_admins` did: the (organization, email) pairs invited, and those it could not."""

    invited: list[tuple[str, str]]
    refused: list[tuple[str, str, str]]  # (organization, email, why)


# --- lookups -------------------------------------------------------------------------------------


def normalized_email(email: str) -> str:
    """The address as the store keeps it (lower-cased), or AccountError(BAD_EMAIL)."""
    text = email.strip()
    if not text or len(text) > EMAIL_LEN:
        raise AccountError(BAD_EMAIL)
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise AccountError(BAD_EMAIL) from None
    return text.lower()


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def organizations(session: Session) -> dict[str, str]:
    """Organization name -> display name; standalone without any Organization: the implicit one ("")."""
    found = {
        row.name: str((row.spec or {}).get("displayName") or row.name)
        for row in session.scalars(select(ResourceRow).where(ResourceRow.kind == "Organization"))
    }
    return found or {IMPLICIT_ORGANIZATION: PRODUCT}


def is_standalone(session: Session) -> bool:
    """No Organization is declared: the implicit organization owns every namespace."""
    return IMPLICIT_ORGANIZATION in organizations(session)


def link_url(public_url: str, purpose: Purpose, token: str) -> str:
    return f"{public_url.rstrip('/')}/{LINK_PATHS[purpose]}/{token}"


def links_base(public_url: str | None) -> str:
    """`public_url`, else SPECTRA_PUBLIC_URL, else `spectra run`'s default address."""
    return (public_url or "").strip().rstrip("/") or configured_public_url() or DEFAULT_PUBLIC_URL


# --- links ---------------------------------------------------------------------------------------


def _fingerprint(user: User) -> str:
    # The account as the link saw it: a password set, an address changed or the account disabled since
    # makes it another account state, and the link dead. The token is readable (signed, not sealed), so
    # only a digest of the (salted, slow) password hash goes into it.
    state = f"{user.id}\x00{user.email}\x00{user.status}\x00{user.password_hash or ''}"
    return hashlib.sha256(state.encode()).hexdigest()[:_FINGERPRINT_LEN]


def _used_key(purpose: Purpose, nonce: str) -> str:
    return hashlib.sha256(f"{purpose.value}:{nonce}".encode()).hexdigest()


def _expiry(purpose: Purpose, now: datetime) -> datetime:
    return (now + LINK_LIFETIMES[purpose]).astimezone(UTC).replace(microsecond=0)


def make_link_token(purpose: Purpose, user: User, *, now: datetime, tokens: Tokens | None = None) -> str:
    """A new link of `purpose` for `user`, good until its lifetime ends, once, while the account stays as it is."""
    if user.id is None:
        raise ValueError("flush the user before making a link for it")
    payload = {
        "u": user.id,
        "f": _fingerprint(user),
        "n": secrets.token_urlsafe(12),
        "e": int(_expiry(purpose, now).timestamp()),
    }
    return (tokens or Tokens()).make(purpose, payload)


def has_platform_admin(session: Session) -> bool:
    """Whether a platform admin has set up an account (an invited one has not, yet)."""
    return bool(
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.platform_admin.is_(True), User.status == UserStatus.ACTIVE)
        )
    )


def first_admin_link(session: Session, *, now: datetime, tokens: Tokens | None = None) -> str | None:
    """A setup link that creates the first platform admin, or None once a platform admin has an account."""
    if has_platform_admin(session) or session.get(UsedLink, _used_key(Purpose.SETUP, _FIRST_ADMIN_NONCE)) is not None:
        return None
    payload = {"first": True, "n": secrets.token_urlsafe(12), "e": int(_expiry(Purpose.SETUP, now).timestamp())}
    return (tokens or Tokens()).make(Purpose.SETUP, payload)


def check_link(
    session: Session, purpose: Purpose, token: str, *, now: datetime, tokens: Tokens | None = None
) -> LinkTarget:
    """What the link would act on, changing nothing (the page the link opens); AccountError when refused."""
    try:
        payload = (tokens or Tokens()).read(purpose, token, max_age_s=int(LINK_LIFETIMES[purpose].total_seconds()))
    except InvalidToken as exc:
        raise AccountError(LINK_EXPIRED if "expired" in str(exc) else LINK_INVALID) from None
    expires = payload.get("e")
    nonce = payload.get("n")
    if not isinstance(expires, int) or not isinstance(nonce, str):
        raise AccountError(LINK_INVALID)
    expires_at = datetime.fromtimestamp(expires, UTC)
    if now >= expires_at:
        raise AccountError(LINK_EXPIRED)
    if payload.get("first") is True and purpose is Purpose.SETUP:
        if session.get(UsedLink, _used_key(purpose, _FIRST_ADMIN_NONCE)) is not None:
            raise AccountError(LINK_USED)
        if has_platform_admin(session):
            raise AccountError(LINK_SUPERSEDED)
        return LinkTarget(purpose, None, expires_at, _FIRST_ADMIN_NONCE)
    user_id, fingerprint = payload.get("u"), payload.get("f")
    if not isinstance(user_id, int) or not isinstance(fingerprint, str):
        raise AccountError(LINK_INVALID)
    if session.get(UsedLink, _used_key(purpose, nonce)) is not None:
        raise AccountError(LINK_USED)
    user = session.get(User, user_id)
    if (
        user is None
        or user.status == UserStatus.DISABLED
        or not hmac.compare_digest(_fingerprint(user).encode(), fingerprint.encode())
    ):
        raise AccountError(LINK_SUPERSEDED)
    return LinkTarget(purpose, user, expires_at, nonce)


def _spend(session: Session, target: LinkTarget, *, now: datetime) -> None:
    """Mark the link used; a concurrent use of the same link that got there first makes this one refused."""
    try:
        with session.begin_nested():
            session.add(
                UsedLink(token_hash=_used_key(target.purpose, target.nonce), used_at=now, expires_at=target.expires_at)
            )
    except IntegrityError:
        raise AccountError(LINK_USED) from None


def use_link(
    session: Session,
    purpose: Purpose,
    token: str,
    new_password: str,
    *,
    now: datetime,
    tokens: Tokens | None = None,
    ip: str | None = None,
) -> User:
    """Set the password a setup, invitation or reset link was sent for, and activate the account.

    Refused (AccountError, nothing changed) for a bad, expired, used or superseded link and for a password
    that breaks the rules (spectra.auth.passwords). A reset also ends every session of the account.
    """
    target = check_link(session, purpose, token, now=now, tokens=tokens)
    user = target.user
    if user is None:  # the first admin's link creates an account: claim_first_admin
        raise AccountError(LINK_INVALID)
    problem = password_problem(new_password, email=user.email, display_name=user.display_name)
    if problem is not None:
        raise AccountError(problem)
    _spend(session, target, now=now)
    was = user.status
    user.password_hash = hash_password(new_password)
    user.password_changed_at = now
    user.status = UserStatus.ACTIVE
    actor = Actor(name=user.email, user_id=user.id, ip=ip)
    if purpose is Purpose.RESET:
        ended = sessions.revoke_all(session, user.id, now=now, reason="password-reset", actor=actor)
        record(session, actor, "user.password_reset", now=now, target=_target(user), details={"sessions_ended": ended})
    else:
        record(
            session,
            actor,
            "user.activated",
            now=now,
            target=_target(user),
            details={"via": purpose.value, "was": str(was)},
        )
    session.flush()
    return user


def claim_first_admin(
    session: Session,
    token: str,
    *,
    email: str,
    display_name: str,
    password: str,
    now: datetime,
    tokens: Tokens | None = None,
    ip: str | None = None,
) -> User:
    """Make the first platform admin with the link `first_admin_link` made (once, while there is none).

    The address may be an invited account (an Organization's declared admin): it is set up and becomes a
    platform admin; an account already set up is refused (only whoever holds this link, the operator who
    reads the server's log, learns that). Standalone, the admin also administers the implicit organization.
    """
    target = check_link(session, Purpose.SETUP, token, now=now, tokens=tokens)
    if target.user is not None:
        raise AccountError(LINK_INVALID)
    address = normalized_email(email)
    name = display_name.strip()
    user = find_user(session, address)
    if user is not None and user.status != UserStatus.INVITED:
        raise AccountError(f"{address} already has an account: choose another address")
    problem = password_problem(password, email=address, display_name=name)
    if problem is not None:
        raise AccountError(problem)
    _spend(session, target, now=now)
    created = user is None
    if user is None:
        user = User(email=address, created_at=now)
        session.add(user)
    user.display_name = name or user.display_name
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    user.status = UserStatus.ACTIVE
    user.platform_admin = True
    session.flush()
    if is_standalone(session) and _membership(session, user, IMPLICIT_ORGANIZATION) is None:
        session.add(Membership(user_id=user.id, organization=IMPLICIT_ORGANIZATION, role=Role.ADMIN, created_at=now))
    record(
        session,
        Actor(name=address, user_id=user.id, ip=ip),
        "user.created" if created else "user.activated",
        now=now,
        target=_target(user),
        details={"platform_admin": True, "via": "first-admin-link"},
    )
    session.flush()
    return user


def prune_used_links(session: Session, *, now: datetime) -> int:
    """Forget used links that would have expired anyway; how many."""
    rows = list(session.scalars(select(UsedLink).where(UsedLink.expires_at <= now)))
    for row in rows:
        session.delete(row)
    session.flush()
    return len(rows)


# --- accounts and memberships ---------------------------------------------------------------------


def _target(user: User) -> tuple[str, None, str]:
    return ("User", None, user.email)


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AccountError(f"{role!r} is not a role: use user or admin") from None


def _require_organization(session: Session, organization: str) -> str:
    known = organizations(session)
    if organization in known:
        return known[organization]
    if organization == IMPLICIT_ORGANIZATION:
        raise AccountError("Organizations are declared, so there is no implicit organization: name one")
    raise AccountError(f"there is no Organization named {organization!r}")


def _membership(session: Session, user: User, organization: str) -> Membership | None:
    return session.scalar(
        select(Membership).where(Membership.user_id == user.id, Membership.organization == organization)
    )


def _user(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise AccountError(f"there is no account for {email.strip().lower()}")
    return user


def _member(session: Session, email: str, organization: str) -> tuple[User, Membership]:
    # An organization's admin learns nothing about addresses outside it: one message for both cases.
    refused = AccountError(f"{email.strip().lower()} is not a member of {organization or 'this organization'}")
    user = find_user(session, email)
    if user is None:
        raise refused
    membership = _membership(session, user, organization)
    if membership is None:
        raise refused
    return user, membership


def add_user(
    session: Session,
    email: str,
    *,
    display_name: str,
    platform_admin: bool,
    actor: Actor,
    now: datetime,
    organization: str | None = None,
    role: Role | str = Role.USER,
    tokens: Tokens | None = None,
) -> tuple[User, str]:
    """Create an invited account (and its membership of `organization` with `role`); its setup link token.

    Adding an address again while its account is still invited issues a new link (and updates the name,
    the platform-admin flag and the membership); an account already set up is refused.
    """
    address = normalized_email(email)
    wanted_role = _role(role)
    if organization is not None:
        _require_organization(session, organization)
    user = find_user(session, address)
    again = user is not None
    if user is None:
        user = User(email=address, display_name=display_name.strip(), status=UserStatus.INVITED, created_at=now)
        user.platform_admin = platform_admin
        session.add(user)
        session.flush()
    elif user.status != UserStatus.INVITED:
        raise AccountError(f"{address} already has an account ({user.status}); a forgotten password is reset by mail")
    else:
        user.display_name = display_name.strip() or user.display_name
        user.platform_admin = user.platform_admin or platform_admin
    if organization is not None:
        membership = _membership(session, user, organization)
        if membership is None:
            session.add(Membership(user_id=user.id, organization=organization, role=wanted_role, created_at=now))
        else:
            membership.role = wanted_role
    session.flush()
    record(
        session,
        actor,
        "user.setup_link_issued" if again else "user.created",
        now=now,
        organization=organization,
        target=_target(user),
        details={
            "platform_admin": user.platform_admin,
            **({"role": wanted_role.value} if organization is not None else {}),
        },
    )
    return user, make_link_token(Purpose.SETUP, user, now=now, tokens=tokens)


def invite(
    session: Session,
    email: str,
    organization: str,
    role: Role | str,
    *,
    actor: Actor,
    now: datetime,
    display_name: str = "",
    public_url: str | None = None,
    tokens: Tokens | None = None,
) -> Invitation:
    """Make `email` a member of `organization` with `role` and mail them.

    A new address gets an invited account and an invitation link (7 days, once); inviting an invited
    member again with the same role sends a new link; an account already set up gets a mail saying it was
    added; a disabled account gets the membership and no mail. Refused for a member already in, or one
    invited with another role (change roles with `set_role`).
    """
    address = normalized_email(email)
    wanted_role = _role(role)
    title = _require_organization(session, organization)
    user = find_user(session, address)
    if user is None:
        user = User(email=address, display_name=display_name.strip(), status=UserStatus.INVITED, created_at=now)
        session.add(user)
        session.flush()
    membership = _membership(session, user, organization)
    renewed = membership is not None
    if membership is not None:
        where = organization or "this organization"
        if user.status != UserStatus.INVITED:
            raise AccountError(f"{address} is already a member of {where}")
        if membership.role != wanted_role:
            raise AccountError(f"{address} is already invited to {where} as {membership.role}: change the role instead")
    else:
        membership = Membership(user_id=user.id, organization=organization, role=wanted_role, created_at=now)
        session.add(membership)
        session.flush()
    base = links_base(public_url)
    mailed = True
    if user.status == UserStatus.INVITED:
        token = make_link_token(Purpose.INVITE, user, now=now, tokens=tokens)
        queue_mail(session, _invitation_mail(user, title, wanted_role, link_url(base, Purpose.INVITE, token), actor))
    elif user.status == UserStatus.ACTIVE:
        queue_mail(session, _added_mail(user, title, wanted_role, base, membership))
    else:
        mailed = False
    record(
        session,
        actor,
        "member.invited",
        now=now,
        organization=organization,
        target=_target(user),
        details={"role": wanted_role.value, "again": renewed, "mailed": mailed},
    )
    return Invitation(user, membership, mailed)


def invite_declared_admins(
    session: Session, *, now: datetime, public_url: str | None = None, tokens: Tokens | None = None
) -> DeclaredAdmins:
    """Invite each address an Organization lists in `spec.admins` as its admin, once: an address that is
    already a member of it (whatever its role now) is left alone. Never raises for one bad entry."""
    outcome = DeclaredAdmins(invited=[], refused=[])
    git = Actor.system("operator")
    for row in session.scalars(
        select(ResourceRow).where(ResourceRow.kind == "Organization").order_by(ResourceRow.name)
    ):
        declared = (row.spec or {}).get("admins") or []
        for email in declared if isinstance(declared, list) else []:
            try:
                address = normalized_email(str(email))
                user = find_user(session, address)
                if user is not None and _membership(session, user, row.name) is not None:
                    continue
                invite(session, address, row.name, Role.ADMIN, actor=git, now=now, public_url=public_url, tokens=tokens)
            except AccountError as exc:
                outcome.refused.append((row.name, str(email), str(exc)))
                continue
            outcome.invited.append((row.name, address))
    return outcome


def request_reset(
    session: Session,
    email: str,
    *,
    now: datetime,
    public_url: str | None = None,
    tokens: Tokens | None = None,
    ip: str | None = None,
) -> str:
    """Queue a password-reset mail when `email` has an account that may sign in; the same answer either way.

    Unknown and disabled addresses go through the same steps (a link signed, a mail written and inserted
    into the outbox, the request audited), only the insert is rolled back to its savepoint: the answer's
    timing tells little. At most one mail per account per RESET_MAIL_WINDOW.
    """
    address = normalized_email(email)
    user = find_user(session, address)
    rehearse = user is None or user.status == UserStatus.DISABLED
    account = User(id=0, email=address, status=UserStatus.ACTIVE) if user is None or rehearse else user
    token = make_link_token(Purpose.RESET, account, now=now, tokens=tokens)
    slot = int(now.timestamp() // RESET_MAIL_WINDOW.total_seconds())
    mail = _reset_mail(account, link_url(links_base(public_url), Purpose.RESET, token), slot)
    if rehearse:  # a key of its own, so that rehearsals never wait on each other's unique-key locks
        mail = replace(mail, key=f"account:reset:none:{secrets.token_hex(12)}")
    queue_mail(session, mail, rehearse=rehearse)
    record(
        session,
        Actor(name="anonymous", ip=ip),
        "user.reset_requested",
        now=now,
        target=("User", None, address),
    )
    return RESET_ANSWER


def set_role(
    session: Session, email: str, organization: str, role: Role | str, *, actor: Actor, now: datetime
) -> Membership:
    """Change a member's role (it takes effect at their next token refresh); an organization keeps one admin."""
    wanted = _role(role)
    user, membership = _member(session, email, organization)
    if membership.role == wanted:
        return membership
    if membership.role == Role.ADMIN:
        _keep_an_admin(session, user, organization, "demoted")
    before = membership.role
    membership.role = wanted
    session.flush()
    record(
        session,
        actor,
        "member.role_changed",
        now=now,
        organization=organization,
        target=_target(user),
        details={"from": str(before), "to": wanted.value},
    )
    return membership


def remove_member(session: Session, email: str, organization: str, *, actor: Actor, now: datetime) -> None:
    """Take `email` out of `organization` and end their sessions in it; an organization keeps one admin."""
    user, membership = _member(session, email, organization)
    if membership.role == Role.ADMIN:
        _keep_an_admin(session, user, organization, "removed")
    session.delete(membership)
    ended = _end_sessions_in(session, user.id, organization, now=now)
    session.flush()
    record(
        session,
        actor,
        "member.removed",
        now=now,
        organization=organization,
        target=_target(user),
        details={"sessions_ended": ended},
    )


def _keep_an_admin(session: Session, user: User, organization: str, verb: str) -> None:
    others = session.scalar(
        select(func.count())
        .select_from(Membership)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.organization == organization,
            Membership.role == Role.ADMIN,
            Membership.user_id != user.id,
            User.status != UserStatus.DISABLED,
        )
    )
    if not others:
        where = organization or "the organization"
        raise AccountError(
            f"{user.email} is the last admin of {where} and cannot be {verb}: make another member admin first"
        )


def _scoped(session: Session, email: str, organization: str | None) -> User:
    """The account, for a platform admin (organization None) or an organization's admin (only its members
    who belong to no other organization, and never a platform admin: the change is account-wide)."""
    if organization is None:
        return _user(session, email)
    user, _ = _member(session, email, organization)
    if user.platform_admin:
        raise AccountError(f"{user.email} is a platform admin: only platform admins manage that account")
    elsewhere = session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.user_id == user.id, Membership.organization != organization)
    )
    if elsewhere:
        raise AccountError(f"{user.email} is also a member of other organizations: remove them from yours instead")
    return user


def disable(session: Session, email: str, *, actor: Actor, now: datetime, organization: str | None = None) -> bool:
    """Disable the account and end its sessions; False when it was disabled already. Nobody disables
    their own account (another admin does: a locked-out admin cannot undo it), and the last active
    platform admin stays enabled."""
    user = _scoped(session, email, organization)
    if user.status == UserStatus.DISABLED:
        return False
    if actor.user_id is not None and actor.user_id == user.id:
        raise AccountError(DISABLE_SELF)
    if user.platform_admin:
        others = session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.platform_admin.is_(True), User.status == UserStatus.ACTIVE, User.id != user.id)
        )
        if not others:
            raise AccountError(f"{user.email} is the last active platform admin and cannot be disabled")
    user.status = UserStatus.DISABLED
    ended = sessions.revoke_all(session, user.id, now=now, reason="disabled", actor=actor)
    session.flush()
    record(
        session,
        actor,
        "user.disabled",
        now=now,
        organization=organization,
        target=_target(user),
        details={"sessions_ended": ended},
    )
    return True


def enable(session: Session, email: str, *, actor: Actor, now: datetime, organization: str | None = None) -> bool:
    """Enable a disabled account (active again, or invited when it never set a password); False when it
    was not disabled."""
    user = _scoped(session, email, organization)
    if user.status != UserStatus.DISABLED:
        return False
    user.status = UserStatus.ACTIVE if user.password_hash else UserStatus.INVITED
    session.flush()
    record(session, actor, "user.enabled", now=now, organization=organization, target=_target(user))
    return True


def reset_mfa(session: Session, email: str, *, actor: Actor, now: datetime, organization: str | None = None) -> bool:
    """Remove the account's TOTP secret and recovery codes (it enrols again at its next sign-in when MFA is
    required); False when it had neither."""
    return totp.reset(session, _scoped(session, email, organization), actor, now=now)


def list_users(session: Session, *, actor: Actor, now: datetime, organization: str | None = None) -> list[UserSummary]:
    """Every account (organization None: for platform admins) or the members of one organization (with
    that membership only), by email. Reading the member list is audited as a use of admin powers."""
    statement = select(User).order_by(User.email)
    if organization is not None:
        statement = statement.join(Membership, Membership.user_id == User.id).where(
            Membership.organization == organization
        )
    users = list(session.scalars(statement))
    memberships: dict[int, list[tuple[str, Role]]] = {}
    ids = [user.id for user in users]
    if ids:
        query = select(Membership).where(Membership.user_id.in_(ids)).order_by(Membership.organization)
        if organization is not None:
            query = query.where(Membership.organization == organization)
        for membership in session.scalars(query):
            memberships.setdefault(membership.user_id, []).append((membership.organization, Role(membership.role)))
    summaries = [
        UserSummary(
            email=user.email,
            display_name=user.display_name,
            status=UserStatus(user.status),
            mfa_enabled=user.mfa_enabled,
            platform_admin=user.platform_admin,
            memberships=tuple(memberships.get(user.id, ())),
            created_at=user.created_at,
            last_login_at=user.last_login_at,
        )
        for user in users
    ]
    record(session, actor, "users.listed", now=now, organization=organization, details={"count": len(summaries)})
    return summaries


def _end_sessions_in(session: Session, user_id: int, organization: str, *, now: datetime) -> int:
    """End the user's live sessions acting in `organization` (a removed member's); how many. Ending all of
    an account's sessions is spectra.auth.sessions.revoke_all."""
    statement = (
        update(UserSession)
        .where(
            UserSession.user_id == user_id,
            UserSession.organization == organization,
            UserSession.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_reason="removed")
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(session.execute(statement), "rowcount", 0) or 0)


# --- mails ---------------------------------------------------------------------------------------


def _role_text(role: Role) -> str:
    return "an admin" if role == Role.ADMIN else "a member"


def _invitation_mail(user: User, title: str, role: Role, url: str, actor: Actor) -> Mail:
    who = f"{actor.name} invited you" if actor.user_id is not None else "You are invited"
    text = (
        f"{who} to join {title} on {PRODUCT} as {_role_text(role)}.\n\n"
        f"Choose your password to accept: {url}\n\n"
        "The link works once, for seven days. If you did not expect this invitation, ignore this message."
    )
    return Mail(
        key=f"account:invite:{user.id}:{hashlib.sha256(url.encode()).hexdigest()[:24]}",
        recipient=user.email,
        subject=f"You are invited to {title} on {PRODUCT}",
        text=text,
        link=url,
        button="Accept the invitation",
        kind="account-invite",
    )


def _added_mail(user: User, title: str, role: Role, base: str, membership: Membership) -> Mail:
    url = f"{base}/login"
    text = (
        f"You are now {_role_text(role)} of {title} on {PRODUCT}.\n\n"
        f"Sign in with your account to see it: {url}\n\n"
        "If you did not expect this, tell the organization's admins."
    )
    return Mail(
        key=f"account:added:{user.id}:{membership.id}",
        recipient=user.email,
        subject=f"You were added to {title} on {PRODUCT}",
        text=text,
        link=url,
        button="Sign in",
        kind="account-added",
    )


def _reset_mail(user: User, url: str, slot: int) -> Mail:
    text = (
        f"Someone, hopefully you, asked to reset the password of your {PRODUCT} account.\n\n"
        f"Choose a new password: {url}\n\n"
        "The link works once, for one hour. If you did not ask for this, ignore this message: "
        "your password stays as it is."
    )
    return Mail(
        key=f"account:reset:{user.id}:{slot}",
        recipient=user.email,
        subject=f"Reset your {PRODUCT} password",
        text=text,
        link=url,
        button="Choose a new password",
        kind="password-reset",
    )
