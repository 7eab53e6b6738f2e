"""The policy: one table of who may do what where (role, API token scopes, platform admin, impersonation,
another tenant's organization), and which namespaces each organization owns."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from spectra.auth.identity import SCOPES, Principal
from spectra.auth.policy import (
    ALL,
    DESCRIPTIONS,
    ORGANIZATION_ACTIONS,
    PLATFORM_ACTIONS,
    ROLE_ACTIONS,
    SCOPE_ACTIONS,
    SELF_ACTIONS,
    Action,
    Denied,
    Forbidden,
    NotFound,
    allowed,
    grantable_scopes,
    namespaces_of,
    owner_of,
    owns,
    require,
    require_impersonation,
    require_in,
    require_member_change,
    roles_markdown,
    visible_namespaces,
)
from spectra.store import Resource, Role
from tests.factories.accounts import organization_resource

ACCESS_DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"

USER = Principal(user_id=1, email="uma@acme.example", organization="acme", role=Role.USER)
ADMIN = Principal(user_id=2, email="adam@acme.example", organization="acme", role=Role.ADMIN)
PLATFORM = Principal(user_id=3, email="staff@spectra.example", organization=None, role=None, platform_admin=True)
PLATFORM_MEMBER = Principal(
    user_id=3, email="staff@spectra.example", organization="acme", role=Role.ADMIN, platform_admin=True
)
STAFF_AS_ADMIN = Principal(
    user_id=2,
    email="adam@acme.example",
    organization="acme",
    role=Role.ADMIN,
    impersonator_id=3,
    impersonator_email="staff@spectra.example",
)
NOBODY = Principal(user_id=4, email="newcomer@example.com", organization=None, role=None)


def token(principal: Principal, *scopes: str) -> Principal:
    return Principal(
        user_id=principal.user_id,
        email=principal.email,
        organization=principal.organization,
        role=principal.role,
        platform_admin=principal.platform_admin,
        scopes=frozenset(scopes),
        via="api-token",
    )


READ_TOKEN = token(USER, "read")
INCIDENTS_TOKEN = token(USER, "incidents:write")
ADMIN_TOKEN = token(ADMIN, "admin")
DEMOTED_ADMIN_TOKEN = token(USER, "admin")  # made while admin; the owner is a user now
PLATFORM_TOKEN = token(PLATFORM_MEMBER, "admin")

OK, FORBIDDEN, NOT_FOUND = "allowed", "forbidden", "not found"

CASES: list[tuple[str, Principal, Action, str | None, str]] = [
    # A user: the organization's monitors, incidents, status pages and on-call; not its administration.
    ("user reads monitors", USER, Action.MONITORS_READ, "acme", OK),
    ("user acknowledges", USER, Action.INCIDENTS_WRITE, "acme", OK),
    ("user posts a status update", USER, Action.STATUSPAGES_WRITE, "acme", OK),
    ("user takes an override", USER, Action.ONCALL_OVERRIDE, "acme", OK),
    ("user cancels anyone's override", USER, Action.ONCALL_MANAGE, "acme", FORBIDDEN),
    ("admin cancels anyone's override", ADMIN, Action.ONCALL_MANAGE, "acme", OK),
    ("user reads on-call", USER, Action.ONCALL_READ, "acme", OK),
    ("user reads status pages", USER, Action.STATUSPAGES_READ, "acme", OK),
    ("user manages members", USER, Action.MEMBERS_MANAGE, "acme", FORBIDDEN),
    ("user manages tokens", USER, Action.TOKENS_MANAGE, "acme", FORBIDDEN),
    ("user reads the audit log", USER, Action.AUDIT_READ, "acme", FORBIDDEN),
    ("user changes settings", USER, Action.ORG_SETTINGS, "acme", FORBIDDEN),
    ("user in another tenant", USER, Action.MONITORS_READ, "globex", NOT_FOUND),
    ("user writes in another tenant", USER, Action.INCIDENTS_WRITE, "globex", NOT_FOUND),
    ("user without an organization named", USER, Action.MONITORS_READ, None, NOT_FOUND),
    ("user: own password", USER, Action.SELF_PASSWORD, None, OK),
    ("user: own MFA", USER, Action.SELF_MFA, None, OK),
    ("user: own tokens", USER, Action.SELF_TOKENS, "acme", OK),
    ("user: own tokens of another tenant", USER, Action.SELF_TOKENS, "globex", NOT_FOUND),
    ("user calls a platform endpoint", USER, Action.TENANTS_MANAGE, None, FORBIDDEN),
    ("user impersonates", USER, Action.IMPERSONATE, None, FORBIDDEN),
    # An admin: all of a user's, and the organization's administration; no platform powers.
    ("admin reads monitors", ADMIN, Action.MONITORS_READ, "acme", OK),
    ("admin manages members", ADMIN, Action.MEMBERS_MANAGE, "acme", OK),
    ("admin manages tokens", ADMIN, Action.TOKENS_MANAGE, "acme", OK),
    ("admin reads the audit log", ADMIN, Action.AUDIT_READ, "acme", OK),
    ("admin changes settings", ADMIN, Action.ORG_SETTINGS, "acme", OK),
    ("admin of another tenant", ADMIN, Action.MEMBERS_MANAGE, "globex", NOT_FOUND),
    ("admin reads another tenant's audit log", ADMIN, Action.AUDIT_READ, "globex", NOT_FOUND),
    ("admin lists tenants", ADMIN, Action.TENANTS_MANAGE, None, FORBIDDEN),
    ("admin impersonates", ADMIN, Action.IMPERSONATE, None, FORBIDDEN),
    ("admin turns on global maintenance", ADMIN, Action.MAINTENANCE_GLOBAL, None, FORBIDDEN),
    ("admin reads system health", ADMIN, Action.SYSTEM_READ, None, FORBIDDEN),
    # A platform admin: the platform, every audit log; a tenant's objects only as its member.
    ("platform: tenants", PLATFORM, Action.TENANTS_MANAGE, None, OK),
    ("platform: impersonate", PLATFORM, Action.IMPERSONATE, None, OK),
    ("platform: global maintenance", PLATFORM, Action.MAINTENANCE_GLOBAL, None, OK),
    ("platform: system health", PLATFORM, Action.SYSTEM_READ, None, OK),
    ("platform: any audit log", PLATFORM, Action.AUDIT_READ, "globex", OK),
    ("platform: a tenant's monitors", PLATFORM, Action.MONITORS_READ, "acme", NOT_FOUND),
    ("platform: a tenant's incidents", PLATFORM, Action.INCIDENTS_WRITE, "acme", NOT_FOUND),
    ("platform: a tenant's members", PLATFORM, Action.MEMBERS_MANAGE, "acme", OK),
    ("platform: a tenant's settings", PLATFORM, Action.ORG_SETTINGS, "acme", NOT_FOUND),
    ("platform: a tenant's tokens", PLATFORM, Action.TOKENS_MANAGE, "acme", NOT_FOUND),
    ("platform: own password", PLATFORM, Action.SELF_PASSWORD, None, OK),
    ("platform: tokens without a membership", PLATFORM, Action.SELF_TOKENS, None, FORBIDDEN),
    ("platform member: its tenant", PLATFORM_MEMBER, Action.MEMBERS_MANAGE, "acme", OK),
    ("platform member: another tenant", PLATFORM_MEMBER, Action.MONITORS_READ, "globex", NOT_FOUND),
    ("platform member: platform", PLATFORM_MEMBER, Action.IMPERSONATE, None, OK),
    # API tokens: the scopes AND the owner's current role; never the account, never the platform.
    ("read token reads monitors", READ_TOKEN, Action.MONITORS_READ, "acme", OK),
    ("read token reads incidents", READ_TOKEN, Action.INCIDENTS_READ, "acme", OK),
    ("read token acknowledges", READ_TOKEN, Action.INCIDENTS_WRITE, "acme", FORBIDDEN),
    ("read token posts a status update", READ_TOKEN, Action.STATUSPAGES_WRITE, "acme", FORBIDDEN),
    ("read token reads on-call", READ_TOKEN, Action.ONCALL_READ, "acme", OK),
    ("read token takes an override", READ_TOKEN, Action.ONCALL_OVERRIDE, "acme", FORBIDDEN),
    ("read token in another tenant", READ_TOKEN, Action.MONITORS_READ, "globex", NOT_FOUND),
    ("incidents token acknowledges", INCIDENTS_TOKEN, Action.INCIDENTS_WRITE, "acme", OK),
    ("incidents token reads incidents", INCIDENTS_TOKEN, Action.INCIDENTS_READ, "acme", OK),
    ("incidents token reads monitors", INCIDENTS_TOKEN, Action.MONITORS_READ, "acme", FORBIDDEN),
    ("admin token manages members", ADMIN_TOKEN, Action.MEMBERS_MANAGE, "acme", OK),
    ("admin token reads monitors", ADMIN_TOKEN, Action.MONITORS_READ, "acme", OK),
    ("admin token makes tokens", ADMIN_TOKEN, Action.SELF_TOKENS, "acme", FORBIDDEN),
    ("admin token changes the password", ADMIN_TOKEN, Action.SELF_PASSWORD, None, FORBIDDEN),
    ("admin token changes MFA", ADMIN_TOKEN, Action.SELF_MFA, None, FORBIDDEN),
    ("demoted admin's token manages members", DEMOTED_ADMIN_TOKEN, Action.MEMBERS_MANAGE, "acme", FORBIDDEN),
    ("demoted admin's token reads monitors", DEMOTED_ADMIN_TOKEN, Action.MONITORS_READ, "acme", OK),
    ("platform admin's token: tenants", PLATFORM_TOKEN, Action.TENANTS_MANAGE, None, FORBIDDEN),
    ("platform admin's token: any audit log", PLATFORM_TOKEN, Action.AUDIT_READ, "globex", NOT_FOUND),
    ("platform admin's token: its tenant", PLATFORM_TOKEN, Action.AUDIT_READ, "acme", OK),
    # Impersonation: the impersonated admin's powers, minus their account, never the platform.
    ("impersonating: members", STAFF_AS_ADMIN, Action.MEMBERS_MANAGE, "acme", OK),
    ("impersonating: incidents", STAFF_AS_ADMIN, Action.INCIDENTS_WRITE, "acme", OK),
    ("impersonating: another tenant", STAFF_AS_ADMIN, Action.MONITORS_READ, "globex", NOT_FOUND),
    ("impersonating: their password", STAFF_AS_ADMIN, Action.SELF_PASSWORD, None, FORBIDDEN),
    ("impersonating: their MFA", STAFF_AS_ADMIN, Action.SELF_MFA, None, FORBIDDEN),
    ("impersonating: their tokens", STAFF_AS_ADMIN, Action.SELF_TOKENS, "acme", FORBIDDEN),
    ("impersonating: tenants", STAFF_AS_ADMIN, Action.TENANTS_MANAGE, None, FORBIDDEN),
    ("impersonating: impersonate again", STAFF_AS_ADMIN, Action.IMPERSONATE, None, FORBIDDEN),
    ("impersonating: global maintenance", STAFF_AS_ADMIN, Action.MAINTENANCE_GLOBAL, None, FORBIDDEN),
    ("impersonating: another audit log", STAFF_AS_ADMIN, Action.AUDIT_READ, "globex", NOT_FOUND),
    # Someone without a membership: their own account only.
    ("no membership: monitors", NOBODY, Action.MONITORS_READ, "acme", NOT_FOUND),
    ("no membership: own password", NOBODY, Action.SELF_PASSWORD, None, OK),
    ("no membership: tokens", NOBODY, Action.SELF_TOKENS, None, FORBIDDEN),
]


@pytest.mark.parametrize(("case", "principal", "action", "organization", "expected"), CASES, ids=[c[0] for c in CASES])
def test_who_may_do_what(
    case: str, principal: Principal, action: Action, organization: str | None, expected: str
) -> None:
    assert allowed(principal, action, organization=organization) is (expected == OK)
    if expected == OK:
        require(principal, action, organization=organization)
        return
    refusal: type[Denied] = Forbidden if expected == FORBIDDEN else NotFound
    with pytest.raises(refusal) as raised:
        require(principal, action, organization=organization)
    assert type(raised.value) is refusal  # NotFound is no Forbidden, and the reverse
    assert raised.value.status == (403 if expected == FORBIDDEN else 404)


def test_every_action_kind_is_covered_by_the_table() -> None:
    assert {action for _, _, action, _, _ in CASES} == set(Action)


@pytest.mark.parametrize(
    ("principal", "action", "organization", "message"),
    [
        (USER, Action.MEMBERS_MANAGE, "acme", "the role user does not allow members.manage"),
        (READ_TOKEN, Action.INCIDENTS_WRITE, "acme", "this API token's scopes do not allow incidents.write"),
        (USER, Action.MONITORS_READ, "globex", "not found"),
        (ADMIN, Action.TENANTS_MANAGE, None, "only platform admins may do tenants.manage"),
        (
            PLATFORM_TOKEN,
            Action.TENANTS_MANAGE,
            None,
            "an API token cannot do tenants.manage: platform admins sign in for it",
        ),
        (STAFF_AS_ADMIN, Action.IMPERSONATE, None, "not while impersonating: impersonate is a platform admin's own"),
        (STAFF_AS_ADMIN, Action.SELF_MFA, None, "not while impersonating: self.mfa stays with the person impersonated"),
        (ADMIN_TOKEN, Action.SELF_PASSWORD, None, "an API token cannot do self.password: sign in for it"),
        (NOBODY, Action.SELF_TOKENS, None, "self.tokens needs a membership of an organization"),
    ],
)
def test_refusals_say_why(principal: Principal, action: Action, organization: str | None, message: str) -> None:
    with pytest.raises((Forbidden, NotFound)) as raised:
        require(principal, action, organization=organization)
    assert str(raised.value) == message


def test_impersonation_never_of_a_platform_admin() -> None:
    require_impersonation(PLATFORM, target_platform_admin=False)
    with pytest.raises(Forbidden, match=r"^a platform admin cannot be impersonated$"):
        require_impersonation(PLATFORM, target_platform_admin=True)
    with pytest.raises(Forbidden, match=r"^only platform admins may do impersonate$"):
        require_impersonation(ADMIN, target_platform_admin=False)
    with pytest.raises(Forbidden, match=r"^not while impersonating"):
        require_impersonation(STAFF_AS_ADMIN, target_platform_admin=False)


def test_while_impersonating_the_persons_own_account_is_out_of_reach_through_the_members_endpoints() -> None:
    own = STAFF_AS_ADMIN.email
    require_member_change(ADMIN, ADMIN.email, resets_mfa=True)  # one's own, not impersonated: allowed
    require_member_change(STAFF_AS_ADMIN, "someone.else@acme.example", resets_mfa=True)  # another member
    with pytest.raises(Forbidden, match=r"^not while impersonating: self.mfa stays with the person impersonated$"):
        require_member_change(STAFF_AS_ADMIN, own, resets_mfa=True)
    for written in (own, f"  {own.upper()} "):
        with pytest.raises(Forbidden, match=r"^not while impersonating: the role, membership and account"):
            require_member_change(STAFF_AS_ADMIN, written, resets_mfa=False)


def test_the_tables_are_whole() -> None:
    assert set(SCOPE_ACTIONS) == set(SCOPES)
    assert set(DESCRIPTIONS) == set(Action)
    assert set(Action) == ORGANIZATION_ACTIONS | SELF_ACTIONS | PLATFORM_ACTIONS
    assert not ORGANIZATION_ACTIONS & SELF_ACTIONS
    assert not ORGANIZATION_ACTIONS & PLATFORM_ACTIONS
    assert ROLE_ACTIONS[Role.USER] < ROLE_ACTIONS[Role.ADMIN]
    assert all(actions <= ORGANIZATION_ACTIONS for actions in SCOPE_ACTIONS.values())  # no token does more
    assert grantable_scopes(Role.USER) == ("read", "incidents:write", "statuspages:write")
    assert grantable_scopes(Role.ADMIN) == SCOPES


def test_the_roles_table_in_the_docs_is_the_policy() -> None:
    expected = roles_markdown()
    text = ACCESS_DOC.read_text()
    section = text.split("\n## Roles\n", 1)[1].split("\n## ", 1)[0]
    assert expected in section, f"docs/access.md, ## Roles: paste `python -m spectra.auth.policy`:\n{expected}"


# --- namespaces: which organization owns what ---------------------------------------------------------


STANDALONE_USER = Principal(user_id=5, email="solo@example.com", organization="", role=Role.ADMIN)


def test_without_organizations_the_implicit_one_owns_every_namespace(session: Session) -> None:
    assert visible_namespaces(session, STANDALONE_USER) is ALL
    assert owns(session, STANDALONE_USER, "default")
    assert owns(session, STANDALONE_USER, "anything-at-all")
    assert owner_of(session, "default") == ""
    require_in(session, STANDALONE_USER, Action.INCIDENTS_WRITE, namespace="default")
    # A member of an organization that is not stored, or no member at all, sees nothing.
    assert visible_namespaces(session, USER) == frozenset()
    assert visible_namespaces(session, PLATFORM) == frozenset()


def test_organizations_own_their_namespaces(session: Session) -> None:
    organization_resource(session, "acme", ["acme-prod", "acme-dev"])
    organization_resource(session, "globex", ["globex"])
    organization_resource(session, "empty", [])
    session.commit()

    assert visible_namespaces(session, USER) == frozenset({"acme-prod", "acme-dev"})
    assert visible_namespaces(session, STAFF_AS_ADMIN) == frozenset({"acme-prod", "acme-dev"})
    assert visible_namespaces(session, READ_TOKEN) == frozenset({"acme-prod", "acme-dev"})
    assert namespaces_of(session, "empty") == frozenset()
    assert namespaces_of(session, "gone") == frozenset()
    # The implicit organization owns nothing once Organizations exist; a platform admin is no member.
    assert visible_namespaces(session, STANDALONE_USER) == frozenset()
    assert visible_namespaces(session, PLATFORM) == frozenset()
    assert (owner_of(session, "acme-dev"), owner_of(session, "globex"), owner_of(session, "default")) == (
        "acme",
        "globex",
        None,
    )
    assert owns(session, USER, "acme-prod")
    assert not owns(session, USER, "globex")

    require_in(session, USER, Action.INCIDENTS_WRITE, namespace="acme-prod")
    with pytest.raises(NotFound):
        require_in(session, USER, Action.INCIDENTS_WRITE, namespace="globex")
    with pytest.raises(NotFound):
        require_in(session, USER, Action.MONITORS_READ, namespace="default")  # nobody's
    with pytest.raises(Forbidden):
        require_in(session, USER, Action.MEMBERS_MANAGE, namespace="acme-dev")
    with pytest.raises(NotFound):
        require_in(session, PLATFORM, Action.MONITORS_READ, namespace="acme-prod")


def test_a_spec_that_lists_no_namespaces_owns_none(session: Session) -> None:
    session.add(Resource(kind="Organization", namespace="", name="acme", spec={}, spec_hash="0" * 64, source="cluster"))
    session.add(
        Resource(
            kind="Organization",
            namespace="",
            name="odd",
            spec={"namespaces": ["odd", 7]},
            spec_hash="0" * 64,
            source="cluster",
        )
    )
    session.commit()
    assert visible_namespaces(session, USER) == frozenset()
    assert namespaces_of(session, "odd") == frozenset({"odd"})
