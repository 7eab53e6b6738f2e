"""`/api/v1/incidents` (spectra.console.incidents.api): API tokens by scope, sessions' cookies with the
CSRF header, tenant isolation, 409 for acting twice, exact problem details, camelCase field names (answers
and bodies); on SQLite and MariaDB."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.console.incidents.api import OPERATIONS
from spectra.console.incidents.models import IncidentDetailModel, IncidentList, IncidentModel
from spectra.console.incidents.service import BAD_CURSOR, NO_CONTACT
from spectra.store import Role
from spectra.store.accounts import User
from spectra.web.auth_routes import CSRF_REFUSED
from tests.factories.accounts import token_of
from tests.factories.incidents import ADA, GIL, UMA, IncidentWorld, incident_world
from tests.support.console import Browser

CAMEL = re.compile(r"[a-z][a-zA-Z0-9]*")


@pytest.fixture
def w(sessions: sessionmaker[Session], portal: BlockingPortal) -> IncidentWorld:
    return incident_world(sessions, portal)


def token(w: IncidentWorld, email: str, organization: str, *scopes: str) -> str:
    from spectra.auth.identity import Principal

    with w.sessions.begin() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        role = Role(next(m.role for m in user.memberships if m.organization == organization))
        return token_of(session, Principal(user.id, email, organization, role), *scopes, name=f"t-{'-'.join(scopes)}")


def call(w: IncidentWorld, method: str, url: str, bearer: str, **options: object) -> httpx.Response:
    client = w.site.anonymous().http
    return client.request(method, url, headers={"Authorization": f"Bearer {bearer}"}, **options)


def keys_of(value: Any) -> set[str]:
    """Every object key anywhere in a JSON value."""
    if isinstance(value, dict):
        return set(value).union(*(keys_of(inner) for inner in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_of(inner) for inner in value))
    return set()


def problem_of(answer: httpx.Response) -> tuple[int, str]:
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.status_code, answer.json()["detail"]


def test_list_and_detail_with_a_read_token(w: IncidentWorld) -> None:
    read = token(w, UMA, "acme", "read")
    listed = call(w, "GET", "/api/v1/incidents", read)
    assert listed.status_code == 200
    assert listed.headers["cache-control"] == "no-store"
    body = IncidentList.model_validate(listed.json())
    assert [item.code for item in body.items] == [w.incident().code]
    assert body.next is None
    assert body.counts.open == 1
    detail = call(w, "GET", f"/api/v1/incidents/{w.incident_id}", read)
    found = IncidentDetailModel.model_validate(detail.json())
    assert [(n.channel, n.kind, n.status) for n in found.notifications] == [
        ("sms", "page", "pending"),
        ("voice", "page", "pending"),
    ]
    assert [e.type for e in found.timeline][:2] == ["opened", "notified"]
    assert found.escalation is not None
    assert (found.escalation.status, found.escalation.step) == ("active", 1)
    assert found.monitor_state.exists
    assert found.monitor_state.locations[0].state == "down"
    assert set(detail.json()) == {field.alias for field in IncidentDetailModel.model_fields.values()}
    assert {"openedAt", "acknowledgedAt", "acknowledgedBy", "resolvedAt", "monitorState"} <= set(detail.json())
    assert {"createdAt", "sentAt", "lastError", "nextStepAt", "lastCheckAt"} <= keys_of(detail.json())
    assert {key for key in keys_of([listed.json(), detail.json()]) if not CAMEL.fullmatch(key)} == set()


def test_a_read_token_may_not_act(w: IncidentWorld) -> None:
    read = token(w, UMA, "acme", "read")
    before = w.snapshot()
    answer = call(w, "POST", f"/api/v1/incidents/{w.incident_id}/acknowledge", read)
    assert problem_of(answer) == (403, "this API token's scopes do not allow incidents.write")
    assert w.snapshot() == before


def test_actions_with_an_incidents_write_token(w: IncidentWorld) -> None:
    write = token(w, UMA, "acme", "incidents:write")
    base = f"/api/v1/incidents/{w.incident_id}"
    noted = call(w, "POST", f"{base}/notes", write, json={"text": "Looking"})
    assert noted.status_code == 201
    assert IncidentModel.model_validate(noted.json()).state == "open"
    acked = call(w, "POST", f"{base}/acknowledge", write)
    assert acked.status_code == 200
    assert (acked.json()["acknowledgedBy"], acked.json()["acknowledgedAt"] is not None) == (UMA, True)
    again = call(w, "POST", f"{base}/acknowledge", write)
    assert problem_of(again) == (409, f"Incident {w.incident().code} is already acknowledged by {UMA}.")
    escalate = call(w, "POST", f"{base}/escalate", write)
    assert problem_of(escalate) == (409, f"Incident {w.incident().code} is already acknowledged by {UMA}.")
    reassigned = call(w, "POST", f"{base}/reassign", write, json={"contact": "default/bob"})
    assert reassigned.status_code == 200
    resolved = call(w, "POST", f"{base}/resolve", write)
    assert resolved.json()["state"] == "resolved"
    assert problem_of(call(w, "POST", f"{base}/resolve", write)) == (
        409,
        f"Incident {w.incident().code} is already resolved.",
    )
    assert [row[0] for row in w.audit()] == [
        "incident.note_added", "incident.acknowledged", "incident.reassigned", "incident.resolved",
    ]  # fmt: skip
    assert {row[1] for row in w.audit()} == {UMA}
    channels = {event[2] for event in w.events() if event[1] == UMA}
    assert channels == {"api"}


@pytest.mark.parametrize(
    ("path", "body", "sentence"),
    [
        ("notes", {"text": ""}, "The note is empty."),
        ("notes", {"text": 5}, "text: Input should be a valid string"),
        ("notes", {"words": "x"}, None),
        (
            "notes",
            {"text": "x", "incident_id": 1},
            "incident_id: unknown field (check the spelling; see the field reference)",
        ),
        ("notes", [1], "The request body must be a JSON object."),
        ("reassign", {"contact": "default/nobody"}, NO_CONTACT),
        ("reassign", {}, "contact: required field is missing"),
    ],
)
def test_bad_bodies_say_what_is_wrong(w: IncidentWorld, path: str, body: object, sentence: str | None) -> None:
    write = token(w, UMA, "acme", "incidents:write")
    before = w.snapshot()
    answer = call(w, "POST", f"/api/v1/incidents/{w.incident_id}/{path}", write, json=body)
    status, detail = problem_of(answer)
    assert status == 400
    if sentence is not None:
        assert detail == sentence
    assert w.snapshot() == before


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ("limit=0", None),
        ("limit=501", None),
        ("state=closed", None),
        ("since=yesterday", None),
        ("colour=red", "colour: not a filter of incidents (state, namespace, monitor, code, since, limit, cursor)."),
        ("cursor=garbage", BAD_CURSOR),
        ("state=open&state=resolved", "state: give it once."),
    ],
)
def test_bad_queries_say_what_is_wrong(w: IncidentWorld, query: str, sentence: str | None) -> None:
    answer = call(w, "GET", f"/api/v1/incidents?{query}", token(w, UMA, "acme", "read"))
    status, detail = problem_of(answer)
    assert status == 400
    assert detail == sentence if sentence is not None else detail.split(":")[0] == query.split("=", maxsplit=1)[0]


def test_pages_follow_next(w: IncidentWorld) -> None:
    from datetime import timedelta

    from spectra.store import Incident

    with w.sessions.begin() as session:
        for n in range(4):
            session.add(
                Incident(code=f"P{n}AA", namespace="default", monitor_name="m", title="t", severity="warning",
                         state="resolved", opened_at=w.world.clock() - timedelta(hours=n + 1))
            )  # fmt: skip
    read = token(w, UMA, "acme", "read")
    url: str | None = "/api/v1/incidents?limit=2&state=resolved"
    seen: list[str] = []
    while url:
        body = call(w, "GET", url, read).json()
        seen += [item["code"] for item in body["items"]]
        url = body["next"]
        assert url is None or "state=resolved" in url
    assert seen == ["P0AA", "P1AA", "P2AA", "P3AA"]


def test_another_tenants_incident_is_404_on_every_endpoint(w: IncidentWorld) -> None:
    gil = token(w, GIL, "globex", "incidents:write")
    before = w.snapshot()
    base = f"/api/v1/incidents/{w.incident_id}"
    assert problem_of(call(w, "GET", base, gil)) == (404, "not found")
    for path, body in (("acknowledge", None), ("resolve", None), ("escalate", None), ("notes", {"text": "x"}),
                       ("reassign", {"contact": "default/bob"})):  # fmt: skip
        assert problem_of(call(w, "POST", f"{base}/{path}", gil, json=body)) == (404, "not found")
    assert w.snapshot() == before
    assert [i["code"] for i in call(w, "GET", "/api/v1/incidents", gil).json()["items"]] == ["GLBX"]
    assert problem_of(call(w, "GET", "/api/v1/incidents/abc", gil))[0] == 404


def test_the_console_cookie_needs_the_csrf_header_to_act(w: IncidentWorld) -> None:
    ada: Browser = w.site.browser(ADA)
    before = w.snapshot()
    url = f"/api/v1/incidents/{w.incident_id}/acknowledge"
    refused = ada.http.request("POST", url)
    assert problem_of(refused) == (403, CSRF_REFUSED)
    assert w.snapshot() == before
    assert ada.api("GET", "/api/v1/incidents").status_code == 200
    assert ada.api("POST", url).json()["state"] == "acknowledged"


def test_nobody_is_401(w: IncidentWorld) -> None:
    answer = w.site.anonymous().get("/api/v1/incidents")
    assert problem_of(answer) == (401, "Sign in first.")


def test_every_route_has_its_operation() -> None:
    paths = {(op.method, op.path) for op in OPERATIONS}
    assert paths == {
        ("GET", "/api/v1/incidents"), ("GET", "/api/v1/incidents/{incident_id}"),
        *{("POST", f"/api/v1/incidents/{{incident_id}}/{a}") for a in ("acknowledge", "resolve", "notes", "escalate", "reassign")},
    }  # fmt: skip
