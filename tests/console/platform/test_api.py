"""GET /api/v1/platform/system (platform admins only) and the platform endpoints' answers against the
models the OpenAPI document is made from (spectra.console.platform.models, field for field and by their
camelCase names only); on SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta

import pytest
from anyio.from_thread import BlockingPortal
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import Route

from spectra.console.organization.api import OPERATIONS as ORGANIZATION_OPERATIONS
from spectra.console.platform import models
from spectra.console.platform.api import OPERATIONS
from spectra.store import Role
from spectra.store.accounts import User
from spectra.store.migrate import head_revision
from spectra.store.worker_leases import ensure_leases
from tests.factories.accounts import member, token_of
from tests.factories.platform import leader, outbox_message, tenant, worker_holding
from tests.factories.store import monitor_factory
from tests.support.console import ConsoleSite
from tests.web.test_auth_routes import assert_problem

ADA, OPS, ROOT = "ada@acme.example", "ops@acme.example", "root@example.com"
REASON = "Ticket 4711: the customer cannot see their status page"


@pytest.fixture
def site(sessions: sessionmaker[Session], portal: BlockingPortal) -> ConsoleSite:
    made = ConsoleSite.make(sessions, portal)
    with sessions.begin() as session:
        tenant(session, "acme", ["acme"], plan={"maxMonitors": 10, "minInterval": "30s"},
               trialEnds=(made.clock() + timedelta(days=2)).isoformat())  # fmt: skip
        member(session, ADA, "acme", Role.ADMIN)
        member(session, OPS, "acme", Role.ADMIN, platform_admin=True)
        member(session, ROOT, None, None, platform_admin=True)
    return made


def valid(model: type[BaseModel], body: object) -> BaseModel:
    """`body` as `model` says, every field there and none else (the models forbid extra fields), by the
    camelCase names only: a snake_case one would be an unknown field."""
    return model.model_validate(body, by_alias=True, by_name=False)


def test_the_system_endpoint_answers_what_the_store_holds(site: ConsoleSite) -> None:
    now = site.clock()
    with site.sessions.begin() as session:
        make = monitor_factory(session)
        ids = [make(namespace="acme", locations=("us-east",)).resource_id for _ in range(2)]
        ensure_leases(session, ids, "us-east")
        worker_holding(session, "probe-us-1", "us-east", ids[:1], now=now, until=now + timedelta(seconds=20))
        leader(session, "alerter", "alerter-1", now=now, until=now + timedelta(seconds=6))
        leader(session, "operator", "operator-1", now=now - timedelta(minutes=1), until=now - timedelta(seconds=1))
        outbox_message(session, "a", "pending", created_at=now - timedelta(seconds=42))
    answer = site.browser(ROOT).get("/api/v1/platform/system")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    system = valid(models.System, answer.json())
    assert isinstance(system, models.System)
    assert answer.json()["outbox"]["oldestPendingAgeSeconds"] == 42
    assert [(loc.location, loc.monitors, loc.unowned) for loc in system.locations] == [("us-east", 2, 1)]
    assert [(w.worker_id, w.silent, w.monitors, w.last_seen_at) for w in system.locations[0].workers] == [
        ("probe-us-1", False, 1, now),
    ]  # fmt: skip
    assert (system.alerter.holder, system.alerter.lease_until) == ("alerter-1", now + timedelta(seconds=6))
    assert [(found.name, found.holder) for found in system.leaders] == [("alerter", "alerter-1"), ("operator", None)]
    assert (system.outbox.backlog, system.outbox.oldest_pending_age_seconds, system.outbox.by_status["pending"]) == (
        1, 42, 1,
    )  # fmt: skip
    assert (system.database.reachable, system.database.revision, system.database.up_to_date) == (
        True, head_revision(), True,
    )  # fmt: skip
    assert system.database.size_bytes is not None
    assert system.database.size_bytes > 0
    assert "someone@example.com" not in answer.text
    assert "secret" not in answer.text


def test_the_system_endpoint_is_for_platform_admins_in_their_own_session(site: ConsoleSite) -> None:
    assert_problem(site.browser(ADA).get("/api/v1/platform/system"), 403, "only platform admins may do system.read")
    assert_problem(site.anonymous().get("/api/v1/platform/system"), 401, "Sign in first.")
    with site.sessions.begin() as session:
        ops_id = session.scalars(select(User.id).where(User.email == OPS)).one()
        from spectra.auth.identity import Principal

        text = token_of(session, Principal(user_id=ops_id, email=OPS, organization="acme", role=Role.ADMIN,
                                           platform_admin=True), "admin")  # fmt: skip
    by_token = site.anonymous().get("/api/v1/platform/system", headers={"Authorization": f"Bearer {text}"})
    assert_problem(by_token, 403, "an API token cannot do system.read: platform admins sign in for it")
    root = site.browser(ROOT)
    started = root.api("POST", "/api/v1/platform/impersonations",
                       json={"email": ADA, "organization": "acme", "reason": REASON})  # fmt: skip
    assert started.status_code == 201
    impersonating = site.anonymous().get(
        "/api/v1/platform/system", headers={"Authorization": f"Bearer {started.json()['accessToken']}"}
    )
    assert_problem(impersonating, 403, "not while impersonating: system.read is a platform admin's own")


def test_the_platform_endpoints_answer_their_models(site: ConsoleSite) -> None:
    root = site.browser(ROOT)
    tenants = valid(models.Tenants, root.get("/api/v1/platform/tenants").json())
    assert isinstance(tenants, models.Tenants)
    assert tenants.items[0].plan.min_interval_seconds == 30.0
    assert tenants.next is None
    started = root.api("POST", "/api/v1/platform/impersonations",
                       json={"email": ADA, "organization": "acme", "reason": REASON})  # fmt: skip
    assert started.status_code == 201
    session_answer = valid(models.ImpersonationSession, started.json())
    assert isinstance(session_answer, models.ImpersonationSession)
    with_cookies = site.browser(ROOT).api("POST", "/api/v1/platform/impersonations", json={
        "email": ADA, "organization": "acme", "reason": REASON, "useCookies": True})  # fmt: skip
    assert valid(models.ImpersonationSession, with_cookies.json())
    listed = valid(models.Impersonations, root.get("/api/v1/platform/impersonations").json())
    assert isinstance(listed, models.Impersonations)
    assert len(listed.items) == 2
    ended = root.api("DELETE", f"/api/v1/platform/impersonations/{session_answer.impersonation.id}")
    assert valid(models.Ended, ended.json())
    turn_on = {"message": "Racks", "until": "2h", "showOnStatusPages": True}
    for method, body in (("GET", None), ("PUT", turn_on), ("DELETE", None)):
        answer = root.api(method, "/api/v1/platform/global-maintenance", json=body)
        assert answer.status_code == 200, answer.text
        assert valid(models.Maintenance, answer.json())


def test_every_operation_is_a_route_of_the_site(site: ConsoleSite) -> None:
    routes = {
        (method, route.path) for route in site.app.routes if isinstance(route, Route) for method in route.methods or ()
    }
    for operation in (*OPERATIONS, *ORGANIZATION_OPERATIONS):
        assert (operation.method, operation.path) in routes, operation
