"""The whole JSON API on one store with two organizations' data, for the OpenAPI, schemathesis and tenant
isolation tests: the app `spectra run` serves (create_app with the console's routes, the ack links and the
status pages), acme (namespaces `default` and `acme`) and globex (`other` and `globex`), each with
monitors, an open incident, a status page with a posted incident and ad-hoc maintenance, a schedule with
an override, an admin holding an API token of every scope and a user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import httpx
import yaml
from anyio.from_thread import BlockingPortal
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from spectra.api import parse_object
from spectra.api.secrets import NoSecrets
from spectra.auth import api_tokens
from spectra.console.routes import console_routes
from spectra.domain.egress import EgressPolicy
from spectra.processes.alerting_side import AlertingSide
from spectra.reconcile import apply_set
from spectra.runtime.metrics import Metrics
from spectra.store import Incident, Role, utcnow
from spectra.web.app import AppParts, create_app
from tests.factories.accounts import TOKEN_MADE_AT, member, organization_resource, token_of
from tests.factories.oncall import ONCALL_MANIFESTS
from tests.factories.pages import MONITORS, PAGE, PUBLIC_URL, page_db
from tests.factories.statuspages import OTHER_MONITOR, OTHER_PAGE
from tests.support.web import Client

ADA: Final = "ada@acme.example"  # acme's admin
GIL: Final = "gil@globex.example"  # globex's admin
UMA: Final = "uma@acme.example"  # acme's user
GUS: Final = "gus@globex.example"  # globex's user
SCOPES: Final = ("read", "incidents:write", "statuspages:write", "admin")


def spectra_run_app(sessions: sessionmaker[Session]) -> Starlette:
    """The app of `spectra run` (spectra.processes.run), without its background tasks."""
    side = AlertingSide(sessions, NoSecrets(), PUBLIC_URL, egress=EgressPolicy.standalone())
    parts = AppParts(
        sessions,
        Metrics(),
        lambda: None,
        loopback_only=False,
        routes=[*console_routes(sessions), *side.routes(sessions)],
        sign_in=True,
    )
    return create_app(parts)


@dataclass
class Tenant:
    organization: str
    email: str
    user: str  # another member, a user
    token: str  # an API token of the admin, every scope
    namespaces: tuple[str, str]  # (the pages' and monitors', the schedule's)
    monitor: tuple[str, str]
    page: tuple[str, str]
    schedule: tuple[str, str]
    incident_id: int = 0
    page_incident_id: int = 0
    maintenance_id: int = 0
    override_id: int = 0
    token_id: int = 0


@dataclass
class ApiWorld:
    sessions: sessionmaker[Session]
    app: Starlette
    portal: BlockingPortal
    a: Tenant
    b: Tenant

    def client(self) -> Client:
        return Client(self.app, self.portal)

    def call(self, tenant: Tenant, method: str, url: str, **options: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {tenant.token}", **options.pop("headers", {})}
        return self.client().request(method, url, headers=headers, **options)


def api_world(sessions: sessionmaker[Session], portal: BlockingPortal) -> ApiWorld:
    page_db(sessions, MONITORS, PAGE, OTHER_MONITOR, OTHER_PAGE)
    tenants: dict[str, Tenant] = {}
    with sessions.begin() as session:
        organization_resource(session, "acme", ["default", "acme"])
        organization_resource(session, "globex", ["other", "globex"])
        apply_set(
            session,
            [parse_object(doc) for doc in yaml.safe_load_all(ONCALL_MANIFESTS) if doc],
            "files:/manifests",
            prune=False,
        )
        for organization, email, user, namespaces, monitor, page in (
            ("acme", ADA, UMA, ("default", "acme"), "api", "main"),
            ("globex", GIL, GUS, ("other", "globex"), "shop", "theirs"),
        ):
            principal = member(session, email, organization, Role.ADMIN)
            member(session, user, organization, Role.USER)
            token = token_of(session, principal, *SCOPES, name=f"{organization}-all")
            _, spare = api_tokens.create(
                session, principal, name="spare", scopes=("read",), expires_at=None, now=TOKEN_MADE_AT
            )
            session.flush()
            incident = Incident(
                code=organization[:4].upper(),
                namespace=namespaces[0],
                monitor_name=monitor,
                title=f"{namespaces[0]}/{monitor} is down",
                severity="critical",
                state="open",
                opened_at=utcnow() - timedelta(minutes=5),
            )
            session.add(incident)
            session.flush()
            tenants[organization] = Tenant(
                organization,
                email,
                user,
                token,
                namespaces,
                (namespaces[0], monitor),
                (namespaces[0], page),
                (namespaces[1], "primary"),
                incident_id=incident.id,
                token_id=spare.id,
            )
    world = ApiWorld(sessions, spectra_run_app(sessions), portal, tenants["acme"], tenants["globex"])
    for tenant in (world.a, world.b):
        _objects(world, tenant)
    return world


def _objects(world: ApiWorld, tenant: Tenant) -> None:
    """What each tenant makes through the API: a page incident, ad-hoc maintenance, an override."""
    namespace, name = tenant.page
    base = f"/api/v1/status-pages/{namespace}/{name}"
    found = world.call(tenant, "GET", f"/api/v1/status-pages/{namespace}/{name}/incidents")
    assert found.status_code == 200, found.text
    component = "API" if name == "main" else "Shop"
    made = world.call(
        tenant,
        "POST",
        f"{base}/incidents",
        json={"title": "Slow", "components": {component: "degraded"}, "status": "investigating", "message": "Looking"},
    )
    assert made.status_code == 201, made.text
    tenant.page_incident_id = made.json()["id"]
    until = (utcnow() + timedelta(hours=2)).isoformat()
    made = world.call(
        tenant, "POST", f"{base}/maintenance", json={"title": "Upgrade", "components": [component], "until": until}
    )
    assert made.status_code == 201, made.text
    tenant.maintenance_id = made.json()["id"]
    namespace, name = tenant.schedule
    made = world.call(
        tenant,
        "POST",
        f"/api/v1/oncall/{namespace}/{name}/overrides",
        json={"until": until, "contact": "ada" if namespace == "acme" else "gus"},
    )
    assert made.status_code == 201, made.text
    tenant.override_id = made.json()["override"]["id"]
