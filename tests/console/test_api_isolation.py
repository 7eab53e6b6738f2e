"""Tenant isolation through the JSON API, for every endpoint (issue 16's acceptance).

The table is built from the OpenAPI document's operations (spectra.console.openapi.OPERATIONS): every
operation has a row, and a new endpoint fails `test_every_operation_has_a_row` until it gets one.

- An operation with an object in its path is called as acme's admin (an API token of every scope, and a
  signed-in session's access token) on globex's object: 404, and nothing in the store changed.
- An operation that names an organization in its query (`?organization=globex`) is refused the same way.
- A list is read as acme's admin: none of globex's names, namespaces, people or objects appear.
- The rest say why they are not tenant-scoped (public by design, platform-only, the caller's own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import sessions as auth_sessions
from spectra.console import openapi
from spectra.store import utcnow
from spectra.store.accounts import User
from spectra.store.base import Base
from spectra.web.auth_routes import Granted
from tests.factories.api_world import ApiWorld, Tenant, api_world

NOT_FOUND: Final = {"There is nothing here, or it is not yours to see.", "not found"}
# Columns a read may touch (when a token or session was last used), not the tenant's data.
VOLATILE: Final = {"last_used_at", "last_seen_at", "last_ip", "last_user_agent"}


@dataclass(frozen=True)
class Object:
    """Call on globex's object: `path` fills the path's parameters from globex's tenant."""

    path: Callable[[Tenant], dict[str, Any]]
    body: dict[str, Any] | None = None
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Listing:
    """A list read as acme: none of globex's markers may appear."""

    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Exempt:
    why: str


Row = Object | Listing | Exempt


def monitor(b: Tenant) -> dict[str, Any]:
    return {"namespace": b.monitor[0], "name": b.monitor[1]}


def page(b: Tenant, **more: Any) -> dict[str, Any]:
    return {"namespace": b.page[0], "name": b.page[1], **more}


def schedule(b: Tenant, **more: Any) -> dict[str, Any]:
    return {"namespace": b.schedule[0], "name": b.schedule[1], **more}


def incident(b: Tenant) -> dict[str, Any]:
    return {"incident_id": b.incident_id}


def member(b: Tenant) -> dict[str, Any]:
    return {"email": b.user}


GLOBEX: Final = {"organization": "globex"}
PAGE_INCIDENT: Final = "/api/v1/status-pages/{namespace}/{name}/incidents/{incident_id}"

TABLE: Final[dict[tuple[str, str], Row]] = {
    ("GET", "/api/v1/monitors"): Listing(),
    ("GET", "/api/v1/monitors/{namespace}/{name}"): Object(monitor),
    ("GET", "/api/v1/monitors/{namespace}/{name}/checks"): Object(monitor),
    ("GET", "/api/v1/monitors/{namespace}/{name}/latency"): Object(monitor),
    ("GET", "/api/v1/incidents"): Listing(),
    ("GET", "/api/v1/incidents/{incident_id}"): Object(incident),
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge"): Object(incident),
    ("POST", "/api/v1/incidents/{incident_id}/resolve"): Object(incident),
    ("POST", "/api/v1/incidents/{incident_id}/notes"): Object(incident, {"text": "mine now"}),
    ("POST", "/api/v1/incidents/{incident_id}/escalate"): Object(incident),
    ("POST", "/api/v1/incidents/{incident_id}/reassign"): Object(incident, {"contact": "globex/gus"}),
    ("GET", "/api/v1/oncall"): Listing(),
    ("GET", "/api/v1/oncall/me"): Listing(),
    ("GET", "/api/v1/oncall/{namespace}/{name}"): Object(schedule),
    ("POST", "/api/v1/oncall/{namespace}/{name}/overrides"): Object(schedule, {"until": "2h", "contact": "gus"}),
    ("DELETE", "/api/v1/oncall/{namespace}/{name}/overrides/{override_id}"): Object(
        lambda b: schedule(b, override_id=b.override_id)
    ),
    ("GET", "/api/v1/status-pages"): Listing(),
    ("GET", "/api/v1/status-pages/{namespace}/{name}/incidents"): Object(page),
    ("POST", "/api/v1/status-pages/{namespace}/{name}/incidents"): Object(
        page, {"title": "Ours", "components": {"Shop": "degraded"}, "message": "x"}
    ),
    ("POST", PAGE_INCIDENT + "/updates"): Object(
        lambda b: page(b, incident_id=b.page_incident_id), {"status": "identified", "message": "x"}
    ),
    ("POST", PAGE_INCIDENT + "/resolve"): Object(lambda b: page(b, incident_id=b.page_incident_id), {"message": "x"}),
    ("PUT", PAGE_INCIDENT + "/postmortem"): Object(
        lambda b: page(b, incident_id=b.page_incident_id), {"postmortem": "x"}
    ),
    ("POST", "/api/v1/status-pages/{namespace}/{name}/maintenance"): Object(
        page, {"title": "Ours", "components": ["Shop"], "until": "2h"}
    ),
    ("DELETE", "/api/v1/status-pages/{namespace}/{name}/maintenance/{maintenance_id}"): Object(
        lambda b: page(b, maintenance_id=b.maintenance_id)
    ),
    ("GET", "/api/v1/members"): Object(lambda b: {}, query=GLOBEX),
    ("POST", "/api/v1/members"): Object(lambda b: {}, {"email": "new@globex.example", "role": "admin"}, GLOBEX),
    ("POST", "/api/v1/members/{email}/role"): Object(member, {"role": "admin"}),
    ("POST", "/api/v1/members/{email}/disable"): Object(member),
    ("POST", "/api/v1/members/{email}/enable"): Object(member),
    ("POST", "/api/v1/members/{email}/reset-mfa"): Object(member),
    ("DELETE", "/api/v1/members/{email}"): Object(member),
    ("PUT", "/api/v1/organization/settings"): Exempt("the caller's own organization: no other can be named"),
    ("GET", "/api/v1/tokens"): Listing(),
    ("POST", "/api/v1/tokens"): Exempt("a token of the caller's own membership"),
    ("DELETE", "/api/v1/tokens/{token_id}"): Object(lambda b: {"token_id": b.token_id}),
    ("GET", "/api/v1/audit"): Listing(),
    ("GET", "/api/v1/platform/system"): Exempt("platform admins only (403 to every organization's member)"),
    ("GET", "/api/v1/platform/tenants"): Exempt("platform admins only"),
    ("GET", "/api/v1/platform/impersonations"): Exempt("platform admins only"),
    ("POST", "/api/v1/platform/impersonations"): Exempt("platform admins only"),
    ("DELETE", "/api/v1/platform/impersonations/{impersonation_id}"): Exempt("platform admins only"),
    ("GET", "/api/v1/platform/global-maintenance"): Exempt("platform admins only"),
    ("PUT", "/api/v1/platform/global-maintenance"): Exempt("platform admins only"),
    ("DELETE", "/api/v1/platform/global-maintenance"): Exempt("platform admins only"),
    ("POST", "/api/v1/auth/login"): Exempt("signing in: the caller's own account"),
    ("POST", "/api/v1/auth/mfa"): Exempt("signing in: the caller's own account"),
    ("POST", "/api/v1/auth/mfa/enrol"): Exempt("the caller's own two-factor authentication"),
    ("POST", "/api/v1/auth/mfa/confirm"): Exempt("the caller's own two-factor authentication"),
    ("POST", "/api/v1/auth/refresh"): Exempt("the caller's own session"),
    ("POST", "/api/v1/auth/logout"): Exempt("the caller's own session"),
    ("POST", "/api/v1/auth/logout-everywhere"): Exempt("the caller's own sessions"),
    ("GET", "/api/v1/auth/me"): Listing(),
    ("GET", "/api/v1/heartbeat/{token}"): Exempt("public by design: the token is the monitor's push capability"),
    ("POST", "/api/v1/heartbeat/{token}"): Exempt("public by design: the token is the monitor's push capability"),
    ("GET", "/api/v1/status-pages/{slug}"): Exempt("public by design: a public status page"),
    ("GET", "/api/v1/openapi.json"): Exempt("public: says nothing of any tenant"),
}

OBJECTS: Final = sorted(key for key, row in TABLE.items() if isinstance(row, Object))
LISTINGS: Final = sorted(key for key, row in TABLE.items() if isinstance(row, Listing))


def test_every_operation_has_a_row() -> None:
    listed = {(op.method, op.path) for op in openapi.OPERATIONS}
    assert sorted(listed - set(TABLE)) == [], "operations without a row in TABLE: add one"
    assert sorted(set(TABLE) - listed) == [], "rows of operations that no longer exist"


def test_every_operation_with_an_object_in_its_path_has_an_object_row() -> None:
    for (method, path), row in TABLE.items():
        if "{" in path and isinstance(row, Exempt):
            assert "public" in row.why or "platform" in row.why, (method, path)


def store(sessions: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but the columns a read may touch)."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with sessions() as session:
        for table in Base.metadata.sorted_tables:
            columns = [column for column in table.columns if column.name not in VOLATILE]
            rows = session.execute(select(*columns)).all()
            found[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return found


def session_token(world: ApiWorld, email: str) -> str:
    """A signed-in session's access token of `email` (as POST /api/v1/auth/login gives API clients)."""
    with world.sessions.begin() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        organization = sorted(m.organization for m in user.memberships)[0]
        issued = auth_sessions.start(
            session, user, organization=organization, now=utcnow(), mfa_verified=True,
            ip="127.0.0.1", user_agent="test",
        )  # fmt: skip
        return Granted.of(issued).access_token


@pytest.fixture
def world(sessions: sessionmaker[Session], portal: BlockingPortal) -> ApiWorld:
    return api_world(sessions, portal)


def callers(world: ApiWorld) -> dict[str, str]:
    return {"api token": world.a.token, "session": session_token(world, world.a.email)}


def test_acme_reaches_none_of_globex_objects(world: ApiWorld) -> None:
    before = store(world.sessions)
    answers: dict[str, tuple[int, str]] = {}
    for caller, token in callers(world).items():
        before = store(world.sessions)  # the session just started
        for method, path in OBJECTS:
            row = TABLE[(method, path)]
            assert isinstance(row, Object)
            url = path.format(**row.path(world.b))
            found = world.client().request(
                method, url, params=row.query, json=row.body, headers={"Authorization": f"Bearer {token}"}
            )
            detail = found.json().get("detail", found.json().get("error", "")) if found.content else ""
            answers[f"{caller}: {method} {url}"] = (found.status_code, detail)
        assert store(world.sessions) == before, f"{caller}: a refused call changed the store"
    # The members' endpoints name the address they were given, the same for an address nobody has.
    member_sentence = f"{world.b.user} is not a member of {world.a.organization}"
    unknown = world.call(world.a, "POST", "/api/v1/members/nobody@nowhere.example/disable").json()["detail"]
    assert unknown == member_sentence.replace(world.b.user, "nobody@nowhere.example")
    allowed = {*NOT_FOUND, member_sentence}
    wrong = {call: answer for call, answer in answers.items() if answer[0] != 404 or answer[1] not in allowed}
    assert wrong == {}, "not a 404 with the not-found sentence:\n" + "\n".join(f"{k}: {v}" for k, v in wrong.items())


def test_acme_lists_none_of_globex(world: ApiWorld) -> None:
    b = world.b
    markers = ("globex", b.email, b.user, f'"{b.monitor[0]}"', f"{b.monitor[0]}/", f'"{b.page[1]}"', '"GLOB"')
    for caller, token in callers(world).items():
        for method, path in LISTINGS:
            row = TABLE[(method, path)]
            assert isinstance(row, Listing)
            found = world.client().request(method, path, params=row.query, headers={"Authorization": f"Bearer {token}"})
            assert found.status_code in (200, 403), (caller, path, found.status_code, found.text)
            leaked = [marker for marker in markers if marker in found.text]
            assert leaked == [], (caller, path, leaked)
            if found.status_code == 200 and path != "/api/v1/auth/me":
                assert "acme" in found.text or world.a.monitor[0] in found.text or path == "/api/v1/oncall/me", (
                    caller,
                    path,
                    found.text[:300],
                )  # the list holds acme's own, so an empty answer does not pass for isolation
