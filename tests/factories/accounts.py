"""Accounts in the shared migrated database: members of organizations (as the principals they sign in
as), stored Organizations, and API tokens made the real way (spectra.auth.api_tokens.create)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.orm import Session

from spectra.auth import api_tokens
from spectra.auth.identity import Principal
from spectra.store import Membership, Resource, Role, User, UserStatus

TOKEN_MADE_AT: Final = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def member(
    session: Session, email: str, organization: str | None, role: Role | None, *, platform_admin: bool = False
) -> Principal:
    """An active user, a member of `organization` with `role` (none when either is None); flushed. The
    principal is the one a session of theirs would carry."""
    user = User(email=email, status=UserStatus.ACTIVE, platform_admin=platform_admin)
    if organization is not None and role is not None:
        user.memberships.append(Membership(organization=organization, role=role))
    session.add(user)
    session.flush()
    return Principal(
        user_id=user.id, email=user.email, organization=organization, role=role, platform_admin=platform_admin
    )


def organization_resource(session: Session, name: str, namespaces: Sequence[str]) -> None:
    """An Organization as the operator or `spectra apply` stores it (cluster-scoped: namespace ""); flushed."""
    spec = {"displayName": name.title(), "namespaces": list(namespaces)}
    session.add(Resource(kind="Organization", namespace="", name=name, spec=spec, spec_hash="0" * 64, source="cluster"))
    session.flush()


def token_of(session: Session, principal: Principal, *scopes: str, name: str = "ci") -> str:
    """A new API token of `principal`'s membership (never expiring); its text. Flushed."""
    text, _ = api_tokens.create(
        session, principal, name=name, scopes=scopes or ("read",), expires_at=None, now=TOKEN_MADE_AT
    )
    return text
