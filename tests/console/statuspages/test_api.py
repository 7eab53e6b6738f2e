"""The JSON twins of the console's status pages (/api/v1/status-pages...): listing, posting, updating,
resolving, the post-mortem and ad-hoc maintenance with API tokens and the session cookie; camelCase field
names (answers and bodies); cursor pages; the public /api/v1/status-pages/{slug} still answers; refusals
change nothing; on SQLite and MariaDB."""

from __future__ import annotations

import re
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy.orm import Session, sessionmaker

from spectra.console.statuspages import service
from spectra.console.statuspages.api import BAD_CURSOR, BAD_LIMIT
from spectra.console.statuspages.models import MaintenanceOut
from spectra.web.auth_routes import CSRF_REFUSED
from tests.factories.statuspages import ADA, GIL, PagesSite, pages_site

BASE = "/api/v1/status-pages"
MAIN = f"{BASE}/default/main"
NEW = {
    "title": "Slow API",
    "components": {"API": "major_outage"},
    "status": "investigating",
    "message": "Looking *now*.",
    "notify": False,
}
CAMEL = re.compile(r"[a-z][a-zA-Z0-9]*")


@pytest.fixture
def world(sessions: sessionmaker[Session], portal: BlockingPortal) -> PagesSite:
    return pages_site(sessions, portal)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def keys_of(value: Any, data: frozenset[str] = frozenset({"componentImpacts"})) -> set[str]:
    """Every object key anywhere in a JSON value, but not inside `data` (objects keyed by components' names)."""
    if isinstance(value, dict):
        inner = (keys_of(found) for key, found in value.items() if key not in data)
        return set(value).union(*inner)
    if isinstance(value, list):
        return set().union(*(keys_of(found) for found in value))
    return set()


def call(world: PagesSite, method: str, url: str, token: str, body: Any = None) -> Any:
    return world.site.anonymous().http.request(method, url, headers=bearer(token), json=body)


def test_list_and_the_public_page_json_both_answer(world: PagesSite) -> None:
    listed = call(world, "GET", BASE, world.read_token)
    assert listed.status_code == 200
    assert listed.headers["cache-control"] == "no-store"
    body = listed.json()
    assert [p["title"] for p in body["items"]] == ["Main status"]
    assert body["next"] is None
    assert body["items"][0]["url"] == "/s/main"
    assert [c["name"] for c in body["items"][0]["components"]] == ["API", "Web", "Database"]
    assert (body["items"][0]["activeIncidents"], body["items"][0]["maintenanceNow"]) == (0, 0)
    assert {key for key in keys_of(body) if not CAMEL.fullmatch(key)} == set()
    public = world.site.anonymous().get(f"{BASE}/main")
    assert public.status_code == 200
    assert public.json()["title"] == "Main status"
    assert call(world, "GET", f"{BASE}?limit=0", world.read_token).json()["detail"] == BAD_LIMIT
    assert call(world, "GET", f"{BASE}?cursor=%%%", world.read_token).json()["detail"] == BAD_CURSOR


def test_the_whole_life_of_an_incident_through_the_api(world: PagesSite) -> None:
    opened = call(world, "POST", f"{MAIN}/incidents", world.write_token, NEW)
    assert opened.status_code == 201
    incident = opened.json()
    assert (incident["status"], incident["impact"], incident["componentImpacts"]) == (
        "investigating",
        "critical",
        {"API": "major_outage"},
    )
    assert incident["updates"][0]["messageHtml"] == "<p>Looking <em>now</em>.</p>"
    assert (incident["startedAt"] is not None, incident["resolvedAt"], incident["postmortemAt"]) == (True, None, None)
    assert world.mails() == []
    url = f"{MAIN}/incidents/{incident['id']}"
    update = {"status": "monitoring", "message": "Fixed, watching.", "notify": True}
    assert call(world, "POST", f"{url}/updates", world.write_token, update).status_code == 201
    assert len(world.mails()) == 2
    resolved = call(world, "POST", f"{url}/resolve", world.write_token, {"message": "Done.", "notify": False})
    assert resolved.json()["resolvedAt"] is not None
    written = call(world, "PUT", f"{url}/postmortem", world.write_token, {"postmortem": "A **deploy**."})
    assert written.json()["postmortemHtml"] == "<p>A <strong>deploy</strong>.</p>"
    assert written.json()["postmortemAt"] is not None
    assert {key for key in keys_of(written.json()) if not CAMEL.fullmatch(key)} == set()
    listed = call(world, "GET", f"{MAIN}/incidents?limit=1", world.read_token).json()
    assert [i["id"] for i in listed["items"]] == [incident["id"]]
    assert listed["next"] is None
    actions = [row[0] for row in world.audit()]
    assert actions == [
        "statuspage.incident.open",
        "statuspage.incident.update",
        "statuspage.incident.resolve",
        "statuspage.incident.postmortem",
    ]


def test_maintenance_through_the_api_with_the_session_cookie(world: PagesSite) -> None:
    ada = world.site.browser(ADA)
    body = {"title": "Deploy", "components": ["Web"], "until": "45m"}
    started = ada.api("POST", f"{MAIN}/maintenance", json=body)
    assert started.status_code == 201
    assert started.json()["active"] is True
    assert started.json()["components"] == ["Web"]
    assert (started.json()["startedBy"], started.json()["endedAt"], started.json()["endedBy"]) == (ADA, None, None)
    assert started.json()["startsAt"] < started.json()["endsAt"]
    ended = ada.api("DELETE", f"{MAIN}/maintenance/{started.json()['id']}")
    assert ended.status_code == 200
    assert ended.json()["active"] is False
    assert (ended.json()["endedAt"] is not None, ended.json()["endedBy"]) == (True, ADA)
    assert set(ended.json()) == {field.alias for field in MaintenanceOut.model_fields.values()}
    assert {key for key in keys_of(ended.json()) if not CAMEL.fullmatch(key)} == set()
    without_csrf = ada.http.post(f"{MAIN}/maintenance", json=body)
    assert (without_csrf.status_code, without_csrf.json()["detail"]) == (403, CSRF_REFUSED)


def test_refusals_change_nothing(world: PagesSite) -> None:
    before = world.counts()
    read_only = call(world, "POST", f"{MAIN}/incidents", world.read_token, NEW)
    assert read_only.status_code == 403
    assert read_only.json()["detail"] == "this API token's scopes do not allow statuspages.write"
    gil = world.site.browser(GIL)
    assert gil.api("POST", f"{MAIN}/incidents", json=NEW).status_code == 404
    assert gil.api("GET", f"{MAIN}/incidents").status_code == 404
    assert call(world, "GET", f"{BASE}/other/theirs/incidents", world.read_token).status_code == 404
    assert call(world, "POST", f"{MAIN}/incidents/999/resolve", world.write_token, {"message": "x"}).status_code == 404
    assert call(world, "DELETE", f"{MAIN}/maintenance/abc", world.write_token).status_code == 404
    unknown = call(world, "POST", f"{MAIN}/incidents", world.write_token, {**NEW, "components": {"Nope": "degraded"}})
    assert (unknown.status_code, unknown.json()["detail"]) == (400, service.unknown_component("Nope"))
    bad = call(world, "POST", f"{MAIN}/incidents", world.write_token, {**NEW, "components": {"API": "down"}})
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("components.API:")
    extra = call(world, "POST", f"{MAIN}/incidents", world.write_token, {**NEW, "color": "red"})
    assert extra.status_code == 400
    snake = {"title": "Deploy", "components": ["Web"], "until": "2h", "ends_at": "2h"}
    refused = call(world, "POST", f"{MAIN}/maintenance", world.write_token, snake)
    assert (refused.status_code, refused.json()["detail"]) == (
        400,
        "ends_at: unknown field (check the spelling; see the field reference)",
    )
    nobody = world.site.anonymous().http.get(BASE)
    assert nobody.status_code == 401
    assert world.counts() == before


def test_page_incidents_follow_next(world: PagesSite) -> None:
    opened = [
        call(world, "POST", f"{MAIN}/incidents", world.write_token, {**NEW, "title": f"Slow {n}"}).json()["id"]
        for n in range(3)
    ]
    url: str | None = f"{MAIN}/incidents?limit=2"
    seen: list[int] = []
    while url:
        body = call(world, "GET", url, world.read_token).json()
        assert set(body) == {"items", "next"}
        seen += [item["id"] for item in body["items"]]
        url = body["next"]
    assert seen == opened[::-1]
