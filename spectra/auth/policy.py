"""The one place that decides who may do what, and in which namespaces: every endpoint asks here.

Three kinds of action:

- organization actions, decided within one organization: the principal must act in that organization
  (its session's or token's), its role must allow the action, and an API token's scopes must too. An
  action in another organization answers `NotFound`, never `Forbidden`: a tenant learns nothing of
  another's objects, not even that they exist.
- the signed-in person's own account (password, two-factor authentication, API tokens): only in a
  session (never with an API token) and never while a platform admin impersonates them.
- platform actions (tenants, impersonation, global maintenance, system health, every audit log): platform
  admins in a session or at the command line; never with an API token, never while impersonating.

Platform admins see no tenant's monitors, incidents or status pages by being platform admins: they do
so as members of an organization, or by impersonating one of its people (time-limited, audited, and the
organization's admins are told).

Tenant isolation: an Organization object (Git) lists its namespaces. Without any Organization in the
store, the implicit organization "" owns every namespace (standalone); once one exists, "" owns none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final, final

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.auth.identity import SCOPES, Principal
from spectra.store import Resource, Role

IMPLICIT_ORGANIZATION: Final = ""  # standalone's one organization, while no Organization is stored


class Action(StrEnum):
    # Organization actions.
    MONITORS_READ = "monitors.read"
    INCIDENTS_READ = "incidents.read"
    INCIDENTS_WRITE = "incidents.write"
    STATUSPAGES_READ = "statuspages.read"
    STATUSPAGES_WRITE = "statuspages.write"
    ONCALL_READ = "oncall.read"
    ONCALL_OVERRIDE = "oncall.override"
    ONCALL_MANAGE = "oncall.manage"
    MEMBERS_MANAGE = "members.manage"
    TOKENS_MANAGE = "tokens.manage"
    AUDIT_READ = "audit.read"
    ORG_SETTINGS = "org.settings"
    # The signed-in person's own account.
    SELF_PASSWORD = "self.password"  # noqa: S105 - an action's name, not a password
    SELF_MFA = "self.mfa"
    SELF_TOKENS = "self.tokens"
    # Platform actions.
    TENANTS_MANAGE = "tenants.manage"
    IMPERSONATE = "impersonate"
    MAINTENANCE_GLOBAL = "maintenance.global"
    SYSTEM_READ = "system.read"


# What each action lets a principal do, for people (docs/access.md's table is made from it).
DESCRIPTIONS: Final[Mapping[Action, str]] = {
    Action.MONITORS_READ: "see the organization's monitors and their states",
    Action.INCIDENTS_READ: "see its incidents and their timelines",
    Action.INCIDENTS_WRITE: "acknowledge, resolve, add notes to, escalate and reassign incidents",
    Action.STATUSPAGES_READ: "see its status pages and their incidents",
    Action.STATUSPAGES_WRITE: "post status-page incidents and updates",
    Action.ONCALL_READ: "see on-call schedules and who is on call",
    Action.ONCALL_OVERRIDE: "take on-call overrides",
    Action.ONCALL_MANAGE: "cancel anyone's on-call override",
    Action.MEMBERS_MANAGE: "invite, disable and remove members, set roles, reset a member's two-factor authentication",
    Action.TOKENS_MANAGE: "see and revoke every member's API tokens",
    Action.AUDIT_READ: "read the organization's audit log",
    Action.ORG_SETTINGS: "require two-factor authentication, see plan, usage and trial",
    Action.SELF_PASSWORD: "change one's own password",
    Action.SELF_MFA: "enrol and remove one's own two-factor authentication",
    Action.SELF_TOKENS: "create and revoke one's own API tokens",
    Action.TENANTS_MANAGE: "list organizations with plan, usage, trial and suspension",
    Action.IMPERSONATE: "act as an organization's member for a written reason (never as a platform admin)",
    Action.MAINTENANCE_GLOBAL: "turn global maintenance on and off",
    Action.SYSTEM_READ: "see the health of every process",
}

_USER: Final = frozenset(
    {
        Action.MONITORS_READ,
        Action.INCIDENTS_READ,
        Action.INCIDENTS_WRITE,
        Action.STATUSPAGES_READ,
        Action.STATUSPAGES_WRITE,
        Action.ONCALL_READ,
        Action.ONCALL_OVERRIDE,
    }
)
ROLE_ACTIONS: Final[Mapping[Role, frozenset[Action]]] = {
    Role.USER: _USER,
    Role.ADMIN: _USER
    | {Action.ONCALL_MANAGE, Action.MEMBERS_MANAGE, Action.TOKENS_MANAGE, Action.AUDIT_READ, Action.ORG_SETTINGS},
}
ORGANIZATION_ACTIONS: Final = ROLE_ACTIONS[Role.ADMIN]
SELF_ACTIONS: Final = frozenset({Action.SELF_PASSWORD, Action.SELF_MFA, Action.SELF_TOKENS})
PLATFORM_ACTIONS: Final = frozenset(
    {Action.TENANTS_MANAGE, Action.IMPERSONATE, Action.MAINTENANCE_GLOBAL, Action.SYSTEM_READ}
)
# Organization actions a platform admin may take in every organization without being a member.
# Tenant management: reading any log, and inviting, changing and removing the members of any organization
# (onboarding a tenant, a locked-out admin). Never its monitors, incidents or settings: for those, impersonate.
PLATFORM_EVERYWHERE: Final = frozenset({Action.AUDIT_READ, Action.MEMBERS_MANAGE})

# An API token may do what its scopes allow AND its owner's current role allows (a demoted admin's
# `admin` token loses the admin actions with the role). A write scope includes reading what it writes.
SCOPE_ACTIONS: Final[Mapping[str, frozenset[Action]]] = {
    "read": frozenset({Action.MONITORS_READ, Action.INCIDENTS_READ, Action.STATUSPAGES_READ, Action.ONCALL_READ}),
    "incidents:write": frozenset({Action.INCIDENTS_READ, Action.INCIDENTS_WRITE}),
    "statuspages:write": frozenset({Action.STATUSPAGES_READ, Action.STATUSPAGES_WRITE}),
    "admin": ORGANIZATION_ACTIONS,
}


class Denied(Exception):
    """A refusal; `status` is the HTTP status the web floor answers with."""

    status = 403


class Forbidden(Denied):
    """The principal may see the object's organization but not do this there."""


class NotFound(Denied):
    """The object belongs to another tenant (or does not exist): the same answer for both."""

    status = 404

    def __init__(self) -> None:
        super().__init__("not found")


def grantable_scopes(role: Role) -> tuple[str, ...]:
    """The scopes a member of `role` may give a token: those whose actions the role has, in SCOPES order."""
    return tuple(scope for scope in SCOPES if SCOPE_ACTIONS[scope] <= ROLE_ACTIONS[role])


def scope_actions(scopes: Iterable[str]) -> frozenset[Action]:
    """Everything some of `scopes` allows (unknown scopes allow nothing)."""
    return frozenset().union(*(SCOPE_ACTIONS.get(scope, frozenset()) for scope in scopes))


def _platform_admin(principal: Principal) -> bool:
    # Platform powers belong to the person, in a session or at the command line: never to a token, and
    # never to someone acting as another (the impersonated user has none, whoever the impersonator is).
    return principal.platform_admin and principal.scopes is None and not principal.impersonated


def _refusal(principal: Principal, action: Action, organization: str | None) -> Denied | None:
    """Why `principal` may not do `action` in `organization`, or None when it may."""
    if action in PLATFORM_ACTIONS:
        if principal.impersonated:
            return Forbidden(f"not while impersonating: {action} is a platform admin's own")
        if principal.scopes is not None and principal.platform_admin:
            return Forbidden(f"an API token cannot do {action}: platform admins sign in for it")
        return None if _platform_admin(principal) else Forbidden(f"only platform admins may do {action}")
    if action in SELF_ACTIONS:
        if principal.impersonated:
            return Forbidden(f"not while impersonating: {action} stays with the person impersonated")
        if principal.scopes is not None:
            return Forbidden(f"an API token cannot do {action}: sign in for it")
        if action is Action.SELF_TOKENS:  # tokens belong to a membership: only the organization acted in
            if principal.organization is None or principal.role is None:
                return Forbidden(f"{action} needs a membership of an organization")
            if organization != principal.organization:
                return NotFound()
        return None
    if action in PLATFORM_EVERYWHERE and _platform_admin(principal):
        return None
    if organization is None or organization != principal.organization or principal.role is None:
        return NotFound()
    if action not in ROLE_ACTIONS[principal.role]:
        return Forbidden(f"the role {principal.role} does not allow {action}")
    if principal.scopes is not None and action not in scope_actions(principal.scopes):
        return Forbidden(f"this API token's scopes do not allow {action}")
    return None


def allowed(principal: Principal, action: Action, *, organization: str | None) -> bool:
    """Whether `principal` may do `action` in `organization` (None for platform and own-account actions)."""
    return _refusal(principal, action, organization) is None


def require(principal: Principal, action: Action, *, organization: str | None) -> None:
    """`allowed`, or raise `NotFound` (another tenant's) or `Forbidden` (this tenant's, not this role's)."""
    refusal = _refusal(principal, action, organization)
    if refusal is not None:
        raise refusal


OWN_ACCOUNT_WHILE_IMPERSONATING: Final = (
    "not while impersonating: the role, membership and account of the person impersonated stay theirs to change"
)


def require_member_change(principal: Principal, member_email: str, *, resets_mfa: bool) -> None:
    """Whether `principal` may change the member `member_email` (role, disable, enable, reset two-factor
    authentication, remove), beyond `members.manage` itself: while impersonating, the person's own account
    is out of reach through the members' endpoints as through their own (resetting their two-factor
    authentication is refused as `self.mfa` is)."""
    if not principal.impersonated or member_email.strip().lower() != principal.email.lower():
        return
    if resets_mfa:
        require(principal, Action.SELF_MFA, organization=None)
    raise Forbidden(OWN_ACCOUNT_WHILE_IMPERSONATING)


def require_impersonation(principal: Principal, *, target_platform_admin: bool) -> None:
    """Whether `principal` may impersonate someone: a platform admin may, but never another platform admin."""
    require(principal, Action.IMPERSONATE, organization=None)
    if target_platform_admin:
        raise Forbidden("a platform admin cannot be impersonated")


# --- tenant isolation --------------------------------------------------------------------------------


@final
class AllNamespaces:
    """Every namespace, present and future: what the implicit organization owns while no Organization exists."""

    def __contains__(self, namespace: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "ALL"


ALL: Final = AllNamespaces()
Namespaces = frozenset[str] | AllNamespaces


# Built once: asked on every API request, and building a statement costs more than running this one.
_ORGANIZATIONS: Final = select(Resource.name, Resource.spec).where(Resource.kind == "Organization")


def organization_namespaces(session: Session) -> dict[str, frozenset[str]]:
    """Each stored Organization's namespaces (the operator checked that no namespace is in two)."""
    found: dict[str, frozenset[str]] = {}
    for name, spec in session.execute(_ORGANIZATIONS):
        listed = spec.get("namespaces") if isinstance(spec, dict) else None
        found[name] = frozenset(ns for ns in listed if isinstance(ns, str)) if isinstance(listed, list) else frozenset()
    return found


def namespaces_of(session: Session, organization: str) -> Namespaces:
    """What `organization` owns: its Organization's namespaces, ALL for the implicit one of a store
    without Organizations, nothing for an organization that is not (or no longer) stored."""
    organizations = organization_namespaces(session)
    if not organizations:
        return ALL if organization == IMPLICIT_ORGANIZATION else frozenset()
    return organizations.get(organization, frozenset())


def visible_namespaces(session: Session, principal: Principal) -> Namespaces:
    """The namespaces whose objects `principal` may see at all (what it may do there, `require` says)."""
    if principal.organization is None or principal.role is None:
        return frozenset()
    return namespaces_of(session, principal.organization)


def owns(session: Session, principal: Principal, namespace: str) -> bool:
    return namespace in visible_namespaces(session, principal)


def owner_of(session: Session, namespace: str) -> str | None:
    """The organization owning `namespace`: "" while no Organization exists, None if none lists it."""
    organizations = organization_namespaces(session)
    if not organizations:
        return IMPLICIT_ORGANIZATION
    return next((name for name, owned in organizations.items() if namespace in owned), None)


def require_in(session: Session, principal: Principal, action: Action, *, namespace: str) -> None:
    """`require` for an object in `namespace`: NotFound unless the principal's organization owns it."""
    if not owns(session, principal, namespace):
        raise NotFound()
    require(principal, action, organization=principal.organization)


# --- the roles table of docs/access.md -----------------------------------------------------------------


def roles_markdown() -> str:
    """The table of docs/access.md's "Roles" section, made from the data above (a test keeps them equal)."""
    lines = [
        "| action | what it allows | user | admin | platform admin | API token scopes |",
        "|---|---|---|---|---|---|",
    ]
    for action in Action:
        own_account = action in SELF_ACTIONS  # everyone's, for their own account
        user = own_account or action in ROLE_ACTIONS[Role.USER]
        admin = own_account or action in ROLE_ACTIONS[Role.ADMIN]
        platform = (
            "every organization" if action in PLATFORM_EVERYWHERE else _yes(own_account or action in PLATFORM_ACTIONS)
        )
        scopes = ", ".join(f"`{scope}`" for scope in SCOPES if action in SCOPE_ACTIONS[scope]) or "none"
        lines.append(f"| `{action}` | {DESCRIPTIONS[action]} | {_yes(user)} | {_yes(admin)} | {platform} | {scopes} |")
    return "\n".join(lines) + "\n"


def _yes(value: bool) -> str:
    return "yes" if value else ""


if __name__ == "__main__":
    print(roles_markdown(), end="")
