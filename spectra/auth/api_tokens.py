"""API tokens: named and scoped, shown once, kept as their SHA-256, each bound to one membership.

A token reads `spt_` and 43 URL-safe characters (32 random bytes): the prefix lets secret scanners
and people recognise it, and lets `authenticate` refuse anything else without a lookup. Only the
SHA-256 of the whole text is stored (32 random bytes need no slow hash: nothing to guess), with the
first 8 characters after `spt_` to tell tokens apart in lists.

A token acts for its owner in its organization, as the owner's current role allows and its scopes
allow (spectra.auth.policy): disabling the owner, removing the membership or revoking the token ends
it at once; demoting the owner takes the admin actions away from an `admin` token. A token never
creates tokens, never changes its owner's account and carries no platform powers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from spectra.auth import audit, policy
from spectra.auth.identity import SCOPES, Actor, Principal
from spectra.store import ApiToken, Membership, Role, User, UserStatus

TOKEN_PREFIX: Final = "spt_"  # noqa: S105 - the mark of every token, not a token
_TOKEN_SHAPE: Final = re.compile(r"spt_[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
LIST_PREFIX_LEN: Final = 8
NAME_MAX: Final = 100
# last_used_at is written at most this often per token: a busy client must not write on every request.
LAST_USED_RESOLUTION: Final = timedelta(minutes=1)


class InvalidApiToken(Exception):
    """The one answer for every refused token; `reason` (malformed, unknown, revoked, expired, owner
    disabled, not a member) is for logs only."""

    def __init__(self, reason: str) -> None:
        super().__init__("invalid API token")
        self.reason = reason


class TokenProblem(ValueError):
    """A token cannot be made as asked; the message says why."""


def digest(token_text: str) -> str:
    return hashlib.sha256(token_text.encode()).hexdigest()


class TokenState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


def state(row: ApiToken, *, now: datetime) -> TokenState:
    if row.revoked_at is not None:
        return TokenState.REVOKED
    if row.expires_at is not None and row.expires_at <= now:
        return TokenState.EXPIRED
    return TokenState.ACTIVE


def create(
    session: Session,
    principal: Principal,
    *,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None,
    now: datetime,
    ip: str | None = None,
) -> tuple[str, ApiToken]:
    """A new token of the principal's membership: (its text, shown once and never again; its row).

    Refused (`policy.Forbidden`) with an API token or while impersonated, and for scopes beyond the
    creator's role; `TokenProblem` for a bad name, scope list or expiry. A revoked or expired token's
    name may be used again: that row goes (its creation and revocation stay in the audit log)."""
    policy.require(principal, policy.Action.SELF_TOKENS, organization=principal.organization)
    organization, role = principal.organization, principal.role
    if organization is None or role is None:  # the policy refused these already; this tells the type checker
        raise policy.Forbidden("an API token belongs to a membership of an organization")
    name = _checked_name(name)
    wanted = _checked_scopes(scopes, role)
    if expires_at is not None and expires_at <= now:
        raise TokenProblem("a token's expiry must be in the future")
    same_name = session.scalars(
        select(ApiToken).where(
            ApiToken.user_id == principal.user_id,
            ApiToken.organization == organization,
            ApiToken.name == name,
        )
    ).one_or_none()
    if same_name is not None:
        if state(same_name, now=now) is TokenState.ACTIVE:
            raise TokenProblem(f"you already have a token named {name!r} in this organization")
        session.delete(same_name)
        session.flush()
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=principal.user_id,
        organization=organization,
        name=name,
        token_hash=digest(text),
        prefix=text[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + LIST_PREFIX_LEN],
        scopes=list(wanted),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        Actor.of(principal, ip=ip),
        "token.created",
        now=now,
        target=("ApiToken", None, name),
        details={
            "prefix": row.prefix,
            "scopes": list(wanted),
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return text, row


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise TokenProblem("a token needs a name")
    if len(name) > NAME_MAX:
        raise TokenProblem(f"a token's name has at most {NAME_MAX} characters")
    if any(unicodedata.category(char).startswith("C") for char in name):
        raise TokenProblem("a token's name cannot hold control or invisible characters")
    return name


def _checked_scopes(scopes: Iterable[str], role: Role) -> tuple[str, ...]:
    asked = set(scopes)
    if not asked:
        raise TokenProblem("a token needs at least one scope")
    unknown = sorted(asked - set(SCOPES))
    if unknown:
        raise TokenProblem(f"unknown scope {unknown[0]!r}: the scopes are {', '.join(SCOPES)}")
    beyond = [scope for scope in SCOPES if scope in asked and scope not in policy.grantable_scopes(role)]
    if beyond:
        raise policy.Forbidden(f"the role {role} cannot give a token the scope {beyond[0]}")
    return tuple(scope for scope in SCOPES if scope in asked)


# Built once (building a statement costs more than running it) and as columns, not ORM objects: this
# runs on every API request.
_LOOKUP: Final = (
    select(
        ApiToken.id,
        ApiToken.token_hash,
        ApiToken.organization,
        ApiToken.scopes,
        ApiToken.expires_at,
        ApiToken.revoked_at,
        ApiToken.last_used_at,
        User.id.label("user_id"),
        User.email,
        User.status,
        User.platform_admin,
        Membership.role,
    )
    .join(User, User.id == ApiToken.user_id)
    .outerjoin(
        Membership, and_(Membership.user_id == ApiToken.user_id, Membership.organization == ApiToken.organization)
    )
    .where(ApiToken.token_hash == bindparam("digest"))
)


def authenticate(session: Session, token_text: str, *, now: datetime) -> Principal:
    """The principal a token acts as, or `InvalidApiToken`. Records the use (at most once a minute)."""
    if not _TOKEN_SHAPE.fullmatch(token_text):
        raise InvalidApiToken("malformed")
    wanted = digest(token_text)
    found = session.execute(_LOOKUP, {"digest": wanted}).one_or_none()
    # The lookup is by an index on the digest; the comparison after it does not stop at the first
    # differing character, so no timing tells how much of a digest matched.
    if found is None or not hmac.compare_digest(found.token_hash, wanted):
        raise InvalidApiToken("unknown")
    if found.revoked_at is not None:
        raise InvalidApiToken(TokenState.REVOKED.value)
    if found.expires_at is not None and found.expires_at <= now:
        raise InvalidApiToken(TokenState.EXPIRED.value)
    if found.status != UserStatus.ACTIVE:
        raise InvalidApiToken("owner disabled")
    if found.role is None:
        raise InvalidApiToken("not a member")
    if found.last_used_at is None or now - found.last_used_at >= LAST_USED_RESOLUTION:
        # Through the ORM (an object of the caller's session must not go stale); once a minute, so cheap.
        token = session.get(ApiToken, found.id)
        if token is not None:
            token.last_used_at = now
            session.flush()
    return Principal(
        user_id=found.user_id,
        email=found.email,
        organization=found.organization,
        role=Role(found.role),
        platform_admin=bool(found.platform_admin),
        scopes=frozenset(found.scopes),
        via="api-token",
    )


def revoke(session: Session, principal: Principal, token_id: int, *, now: datetime, ip: str | None = None) -> ApiToken:
    """Revoke a token: one's own (not while impersonated), or any member's with `tokens.manage`.
    Another organization's token answers `policy.NotFound`. Revoking twice changes nothing."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise policy.NotFound()
    own = row.user_id == principal.user_id
    action = policy.Action.SELF_TOKENS if own else policy.Action.TOKENS_MANAGE
    policy.require(principal, action, organization=row.organization)
    if row.revoked_at is not None:
        return row
    row.revoked_at = now
    session.flush()
    owner = session.get(User, row.user_id)
    audit.record(
        session,
        Actor.of(principal, ip=ip),
        "token.revoked",
        now=now,
        organization=row.organization,
        target=("ApiToken", None, row.name),
        details={"prefix": row.prefix, "owner": owner.email if owner is not None else str(row.user_id)},
    )
    return row


def list_for(session: Session, user_id: int, *, organization: str | None = None) -> list[ApiToken]:
    """A user's tokens (in one organization, or every one), newest first, revoked and expired included."""
    statement = select(ApiToken).where(ApiToken.user_id == user_id)
    if organization is not None:
        statement = statement.where(ApiToken.organization == organization)
    return list(session.scalars(statement.order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def list_for_organization(session: Session, principal: Principal) -> list[ApiToken]:
    """Every member's tokens in the principal's organization (`tokens.manage`), newest first."""
    policy.require(principal, policy.Action.TOKENS_MANAGE, organization=principal.organization)
    statement = select(ApiToken).where(ApiToken.organization == principal.organization)
    return list(session.scalars(statement.order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))
