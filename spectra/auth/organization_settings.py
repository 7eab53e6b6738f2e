"""What an organization's admins decide at runtime: whether every member must use two-factor
authentication. (Plan, namespaces, trial end and suspension stay in Git, on the Organization.)

While `require_mfa` is on, a member without TOTP is made to enrol at their next sign-in before any session
is issued; a platform admin acting in the organization is held to it too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.auth import policy
from spectra.auth.audit import record
from spectra.auth.identity import Actor, Principal
from spectra.store.accounts import OrganizationSettings


def requires_mfa(session: Session, organization: str | None) -> bool:
    """Whether `organization` requires two-factor authentication of every member (off by default)."""
    if organization is None:
        return False
    found = session.scalar(
        select(OrganizationSettings.require_mfa).where(OrganizationSettings.organization == organization)
    )
    return bool(found)


def require_mfa(session: Session, principal: Principal, on: bool, *, now: datetime, ip: str | None = None) -> bool:
    """Turn the requirement on or off for the principal's organization (its admins only: `policy.Denied`
    otherwise); returns whether it changed. Audited `org.require_mfa_on` / `org.require_mfa_off`."""
    policy.require(principal, policy.Action.ORG_SETTINGS, organization=principal.organization)
    organization = principal.organization
    if organization is None:  # the policy refused this already; this tells the type checker
        raise policy.Forbidden("this setting belongs to an organization")
    row = session.get(OrganizationSettings, organization)
    if row is not None and row.require_mfa == on:
        return False
    if row is None:
        row = OrganizationSettings(organization=organization)
        session.add(row)
    row.require_mfa = on
    row.updated_at = now
    row.updated_by = principal.impersonator_email or principal.email
    record(
        session,
        Actor.of(principal, ip=ip),
        "org.require_mfa_on" if on else "org.require_mfa_off",
        now=now,
        target=("Organization", None, organization),
    )
    return True
