"""The on-call JSON API (/api/v1/oncall): reads with a read token, overrides with a session or an admin
token, camelCase field names and `{"items", "next"}` pages, refusals with their exact answer and nothing
changed, tenant isolation, the audit rows."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth.identity import Principal
from spectra.console.oncall.service import CANCEL_OTHERS
from spectra.store import AuditLog, OncallOverride
from spectra.web.auth_routes import CSRF_REFUSED
from tests.factories.accounts import token_of
from tests.factories.oncall import ONCALL_ADA, ONCALL_GUS, ONCALL_UMA
from tests.support.console import ConsoleSite

BASE = "/api/v1/oncall"


def bearer(sessions: sessionmaker[Session], who: Principal, *scopes: str) -> dict[str, str]:
    with sessions.begin() as session:
        return {"Authorization": f"Bearer {token_of(session, who, *scopes)}"}


def stored(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(OncallOverride)) or 0


def problem(answer: Any, status: int, detail: str) -> None:
    assert (answer.status_code, answer.headers["content-type"]) == (status, "application/problem+json")
    assert answer.json()["detail"] == detail


def test_reads_with_a_read_token(site: ConsoleSite, people: dict[str, Principal]) -> None:
    headers = bearer(site.sessions, people[ONCALL_UMA], "read")
    client = site.anonymous()
    answer = client.get(BASE, headers=headers)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {
        "items": [
            {
                "namespace": "acme",
                "name": "primary",
                "timeZone": "UTC",
                "description": None,
                "source": "files:/manifests",
                "onCall": [{"name": "ada", "displayName": "Ada"}],
                "nextHandoff": "2026-03-09T09:00:00Z",
                "overrides": [],
            }
        ],
        "next": None,
    }
    timeline = client.get(f"{BASE}/acme/primary?days=7", headers=headers).json()
    assert set(timeline) == {"schedule", "start", "end", "shifts"}
    assert timeline["shifts"] == [
        {"start": "2026-03-02T09:00:07Z", "end": "2026-03-09T09:00:00Z", "contact": {"name": "ada", "displayName": "Ada"},
         "override": None, "overrideId": None, "mine": False},
        {"start": "2026-03-09T09:00:00Z", "end": "2026-03-09T09:00:07Z", "contact": {"name": "uma", "displayName": "Uma"},
         "override": None, "overrideId": None, "mine": True},
    ]  # fmt: skip
    mine = client.get(f"{BASE}/me?days=14&limit=1", headers=headers).json()
    assert mine["items"] == [
        {"namespace": "acme", "schedule": "primary", "start": "2026-03-09T09:00:00Z", "end": "2026-03-16T09:00:00Z",
         "contact": "uma", "override": None},
    ]  # fmt: skip
    assert mine["next"] is None
    assert mine["calendar"].startswith("/console/oncall/calendar/")
    assert client.get(mine["calendar"]).status_code == 200


def test_pages_of_schedules(site: ConsoleSite, people: dict[str, Principal]) -> None:
    headers = bearer(site.sessions, people[ONCALL_UMA], "read")
    client = site.anonymous()
    first = client.get(f"{BASE}?limit=1", headers=headers).json()
    assert first["next"] is None  # one schedule in acme
    problem(client.get(f"{BASE}?cursor=%%%", headers=headers), 400, "cursor is not valid: ask again without it.")
    problem(client.get(f"{BASE}?limit=0", headers=headers), 400, "limit: Input should be greater than or equal to 1")


def test_pages_of_my_shifts_follow_next(site: ConsoleSite, people: dict[str, Principal]) -> None:
    headers = bearer(site.sessions, people[ONCALL_UMA], "read")
    client = site.anonymous()
    first = client.get(f"{BASE}/me?days=28&limit=1", headers=headers).json()
    assert set(first) == {"items", "next", "calendar"}
    assert [shift["start"] for shift in first["items"]] == ["2026-03-09T09:00:00Z"]
    path, _, query = first["next"].partition("?")
    assert (path, parse_qs(query)["days"], parse_qs(query)["limit"]) == (f"{BASE}/me", ["28"], ["1"])
    second = client.get(first["next"], headers=headers).json()
    assert [shift["start"] for shift in second["items"]] == ["2026-03-23T09:00:00Z"]
    assert second["next"] is None
    problem(
        client.get(f"{BASE}/me?limit=501", headers=headers), 400, "limit: Input should be less than or equal to 500"
    )


def test_take_and_cancel_through_the_api(site: ConsoleSite, people: dict[str, Principal]) -> None:
    uma = site.browser(ONCALL_UMA)
    taken = uma.api("POST", f"{BASE}/acme/primary/overrides", json={"until": "18:00", "reason": "ada is flying"})
    assert taken.status_code == 201, taken.text
    override = taken.json()["override"]
    assert override == {
        "id": override["id"], "contact": {"name": "uma", "displayName": "Uma"}, "start": "2026-03-02T09:00:07Z",
        "end": "2026-03-02T18:00:00Z", "takenBy": ONCALL_UMA, "reason": "ada is flying",
        "createdAt": "2026-03-02T09:00:07Z", "cancellable": True,
    }  # fmt: skip
    now = uma.api("GET", BASE).json()["items"][0]
    assert now["onCall"] == [{"name": "uma", "displayName": "Uma"}]
    assert now["overrides"] == [override]
    [shift, *_] = uma.api("GET", f"{BASE}/acme/primary?days=1").json()["shifts"]
    assert (shift["override"], shift["overrideId"], shift["mine"]) == ("stored", override["id"], True)
    ada = bearer(site.sessions, people[ONCALL_ADA], "admin")
    client = site.anonymous()
    cancelled = client.http.request("DELETE", f"{BASE}/acme/primary/overrides/{override['id']}", headers=ada)
    assert (cancelled.status_code, cancelled.json()) == (
        200,
        {"id": override["id"], "cancelledAt": "2026-03-02T09:00:07Z"},
    )
    problem(
        client.http.request("DELETE", f"{BASE}/acme/primary/overrides/{override['id']}", headers=ada), 404, "not found"
    )
    with site.sessions() as session:
        rows = session.execute(
            select(AuditLog.action, AuditLog.actor, AuditLog.target_namespace, AuditLog.target_name, AuditLog.ip)
            .where(AuditLog.action.like("oncall.%"))
            .order_by(AuditLog.id)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("oncall.override_taken", ONCALL_UMA, "acme", "primary", "127.0.0.1"),
        ("oncall.override_cancelled", ONCALL_ADA, "acme", "primary", "127.0.0.1"),
    ]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"until": "soon"}, "until 'soon' is neither a time of day (18:00), a duration (90m, 2h, 1d) nor a time with "
                            "an offset (2026-03-02T18:00+01:00)"),
        ({"until": "1h", "contact": "gus"}, "there is no Contact 'gus' in namespace acme"),
        ({"until": 5}, "until: Input should be a valid string"),
        ({"until": "1h", "colour": "red"}, "colour: unknown field (check the spelling; see the field reference)"),
        # The answers' old snake_case spelling is no twin of a camelCase name (the shared body reader: 400).
        ({"until": "1h", "taken_by": "uma"}, "taken_by: unknown field (check the spelling; see the field reference)"),
    ],
)  # fmt: skip
def test_bad_bodies_are_refused(site: ConsoleSite, people: dict[str, Principal], body: Any, detail: str) -> None:
    answer = site.browser(ONCALL_UMA).api("POST", f"{BASE}/acme/primary/overrides", json=body)
    problem(answer, 400, detail)
    assert stored(site.sessions) == 0


def test_refusals_change_nothing(site: ConsoleSite, people: dict[str, Principal]) -> None:
    client = site.anonymous()
    read = bearer(site.sessions, people[ONCALL_UMA], "read")
    problem(
        client.http.post(f"{BASE}/acme/primary/overrides", json={"until": "1h"}, headers=read),
        403,
        "this API token's scopes do not allow oncall.override",
    )
    gus = site.browser(ONCALL_GUS)
    problem(gus.api("GET", f"{BASE}/acme/primary"), 404, "not found")
    problem(gus.api("POST", f"{BASE}/acme/primary/overrides", json={"until": "1h", "contact": "gus"}), 404, "not found")
    uma = site.browser(ONCALL_UMA)
    problem(uma.http.post(f"{BASE}/acme/primary/overrides", json={"until": "1h"}), 403, CSRF_REFUSED)
    problem(client.get(BASE), 401, client.get(BASE).json()["detail"])
    assert stored(site.sessions) == 0
    ada = site.browser(ONCALL_ADA)
    taken = ada.api("POST", f"{BASE}/acme/primary/overrides", json={"until": "2h", "contact": "ada"}).json()
    refused = uma.api("DELETE", f"{BASE}/acme/primary/overrides/{taken['override']['id']}")
    problem(refused, 403, CANCEL_OTHERS)
    with site.sessions() as session:
        assert session.scalars(select(OncallOverride.cancelled_at)).all() == [None]
