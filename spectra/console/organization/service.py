"""What the organization pages read and do, as the viewer: thin calls of spectra.auth (the same functions as
the admin JSON endpoints and `spectra users ...`), which ask the policy and audit with the viewer as the
actor. Blocking: the pages run these in worker threads, each in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.auth import accounts, api_tokens, audit, organization_settings, policy, tenants
from spectra.auth.identity import Actor, Principal
from spectra.auth.policy import Action
from spectra.store.accounts import ApiToken, AuditLog, Role, User
from spectra.tokens import Tokens
from spectra.web.admin_routes import require_member

# How long a new token lasts, as the form offers it ("" never expires).
EXPIRY_CHOICES: Final = {"": None, "7": 7, "30": 30, "90": 90, "365": 365}
BAD_EXPIRY: Final = "expires_in must be one of: never, 7, 30, 90 or 365 days."
BAD_ROLE: Final = "role must be user or admin."
AUDIT_PAGE: Final = 50  # records per page of the console's audit log

# What each member button does (spectra.auth.accounts), by the last part of its path.
ACCOUNT_CHANGES: Final = {"disable": accounts.disable, "enable": accounts.enable, "reset-mfa": accounts.reset_mfa}
DONE: Final = {
    "disable": "disabled",
    "enable": "enabled",
    "reset-mfa": "two-factor authentication reset",
    "remove": "removed",
    "role": "role changed",
}


def organization_of(principal: Principal, action: Action) -> str:
    """The viewer's organization, once the policy allows `action` there."""
    policy.require(principal, action, organization=principal.organization)
    if principal.organization is None:  # the policy refused this already; this tells the type checker
        raise policy.NotFound()
    return principal.organization


@dataclass(frozen=True)
class Overview:
    """The organization page: its members, the two-factor requirement, its plan, usage and trial."""

    organization: str
    members: list[accounts.UserSummary]
    require_mfa: bool
    tenant: tenants.Tenant | None  # None: no Organization stored under this name (standalone's "")
    roles: tuple[str, ...] = tuple(role.value for role in Role)


def overview(session: Session, principal: Principal, *, actor: Actor, now: datetime) -> Overview:
    organization = organization_of(principal, Action.MEMBERS_MANAGE)
    members = accounts.list_users(session, actor=actor, now=now, organization=organization)
    tenant = None
    if policy.allowed(principal, Action.ORG_SETTINGS, organization=organization):
        tenant = next((found for found in tenants.tenants(session, now=now) if found.name == organization), None)
    return Overview(organization, members, organization_settings.requires_mfa(session, organization), tenant)


def invite(
    session: Session,
    principal: Principal,
    email: str,
    role: str,
    name: str,
    *,
    actor: Actor,
    now: datetime,
    tokens: Tokens,
) -> accounts.Invitation:
    organization = organization_of(principal, Action.MEMBERS_MANAGE)
    if role not in (Role.USER, Role.ADMIN):
        raise accounts.AccountError(BAD_ROLE)
    address = accounts.normalized_email(email)
    return accounts.invite(
        session, address, organization, role, actor=actor, now=now, display_name=name.strip(), tokens=tokens
    )


def change_member(
    session: Session, principal: Principal, email: str, change: str, *, actor: Actor, now: datetime, role: str = ""
) -> bool:
    """One member button (`change`: role, disable, enable, reset-mfa, remove) on a member of the viewer's
    organization (404 for anyone else); whether something changed."""
    organization = organization_of(principal, Action.MEMBERS_MANAGE)
    address = email.strip().lower()
    policy.require_member_change(principal, address, resets_mfa=change == "reset-mfa")
    require_member(session, address, organization)
    if change == "role":
        if role not in (Role.USER, Role.ADMIN):
            raise accounts.AccountError(BAD_ROLE)
        changed = accounts.set_role(session, address, organization, role, actor=actor, now=now)
        return changed.role == role
    if change == "remove":
        accounts.remove_member(session, address, organization, actor=actor, now=now)
        return True
    return ACCOUNT_CHANGES[change](session, address, actor=actor, now=now, organization=organization)


def require_mfa(session: Session, principal: Principal, on: bool, *, now: datetime, ip: str | None) -> bool:
    organization_of(principal, Action.ORG_SETTINGS)
    return organization_settings.require_mfa(session, principal, on, now=now, ip=ip)


# --- API tokens ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenLine:
    """One API token as a list shows it (never its secret)."""

    id: int
    owner: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    state: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class TokenLists:
    own: list[TokenLine]
    members: list[TokenLine] | None  # every other member's (None: the viewer may not see them)
    scopes: tuple[str, ...]  # what the viewer may give a token
    admin: bool  # the viewer manages the organization's members (the page links their other pages)


def _line(row: ApiToken, owner: str, *, now: datetime) -> TokenLine:
    return TokenLine(
        id=row.id,
        owner=owner,
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(row.scopes),
        state=api_tokens.state(row, now=now).value,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def token_lists(session: Session, principal: Principal, *, now: datetime) -> TokenLists:
    organization = organization_of(principal, Action.SELF_TOKENS)
    own = [
        _line(row, principal.email, now=now)
        for row in api_tokens.list_for(session, principal.user_id, organization=organization)
    ]
    members = None
    if policy.allowed(principal, Action.TOKENS_MANAGE, organization=organization):
        rows = [row for row in api_tokens.list_for_organization(session, principal) if row.user_id != principal.user_id]
        owners = dict(
            session.execute(select(User.id, User.email).where(User.id.in_({row.user_id for row in rows}))).all()
        )
        members = [_line(row, owners.get(row.user_id, "?"), now=now) for row in rows]
    role = principal.role or Role.USER
    admin = policy.allowed(principal, Action.MEMBERS_MANAGE, organization=organization)
    return TokenLists(own, members, policy.grantable_scopes(role), admin)


def expiry(choice: str, *, now: datetime) -> datetime | None:
    if choice not in EXPIRY_CHOICES:
        raise api_tokens.TokenProblem(BAD_EXPIRY)
    days = EXPIRY_CHOICES[choice]
    return None if days is None else now + timedelta(days=days)


def create_token(
    session: Session,
    principal: Principal,
    name: str,
    scopes: list[str],
    expires_in: str,
    *,
    now: datetime,
    ip: str | None,
) -> tuple[str, TokenLine]:
    """A new token of the viewer's membership: (its secret, shown once; its line)."""
    organization_of(principal, Action.SELF_TOKENS)
    until = expiry(expires_in, now=now)
    text, row = api_tokens.create(session, principal, name=name, scopes=scopes, expires_at=until, now=now, ip=ip)
    return text, _line(row, principal.email, now=now)


def revoke_token(session: Session, principal: Principal, token_id: int, *, now: datetime, ip: str | None) -> TokenLine:
    """Revoke one's own token, or a member's where the policy allows (`tokens.manage`); another
    organization's is not found."""
    row = api_tokens.revoke(session, principal, token_id, now=now, ip=ip)
    owner = session.scalar(select(User.email).where(User.id == row.user_id)) or "?"
    return _line(row, owner, now=now)


# --- the audit log ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditLog]
    following: int | None  # the `before` of the next page, or None on the last page


def audit_page(session: Session, where: audit.AuditFilter, *, before: int | None, limit: int = AUDIT_PAGE) -> AuditPage:
    """One page of the records `where` selects, newest first (the caller made `where` with the policy:
    spectra.web.admin_routes.audit_filter)."""
    rows = audit.query(session, where, limit=limit + 1, before_id=before)
    following = rows[limit - 1].id if len(rows) > limit else None
    return AuditPage(rows[:limit], following)
