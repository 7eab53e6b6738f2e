"""The on-call JSON API (/api/v1/oncall): reads with a read token, overrides with a session or an admin
token, refusals with their exact answer and nothing changed, tenant isolation, the audit rows."""

from __future__ import annotations

from typing import Any

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
    [item] = answer.json()["items"]
    assert (item["namespace"], item["name"], item["on_call"]) == (
        "acme",
        "primary",
        [{"name": "ada", "display_name": "Ada"}],
    )
    assert answer.json()["next"] is None
    timeline = client.get(f"{BASE}/acme/primary?days=7", headers=headers).json()
    assert [(s["start"], s["end"], s["contact"]["name"], s["override"]) for s in timeline["shifts"]] == [
        ("2026-03-02T09:00:07Z", "2026-03-09T09:00:00Z", "ada", None),
        ("2026-03-09T09:00:00Z", "2026-03-09T09:00:07Z", "uma", None),
    ]
    mine = client.get(f"{BASE}/me?days=14&limit=1", headers=headers).json()
    assert [(s["schedule"], s["start"]) for s in mine["items"]] == [("primary", "2026-03-09T09:00:00Z")]
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


def test_take_and_cancel_through_the_api(site: ConsoleSite, people: dict[str, Principal]) -> None:
    uma = site.browser(ONCALL_UMA)
    taken = uma.api("POST", f"{BASE}/acme/primary/overrides", json={"until": "18:00", "reason": "ada is flying"})
    assert taken.status_code == 201, taken.text
    override = taken.json()["override"]
    assert (override["contact"]["name"], override["end"], override["taken_by"], override["cancellable"]) == (
        "uma", "2026-03-02T18:00:00Z", ONCALL_UMA, True,
    )  # fmt: skip
    now = uma.api("GET", BASE).json()["items"][0]
    assert now["on_call"] == [{"name": "uma", "display_name": "Uma"}]
    assert [o["id"] for o in now["overrides"]] == [override["id"]]
    ada = bearer(site.sessions, people[ONCALL_ADA], "admin")
    client = site.anonymous()
    cancelled = client.http.request("DELETE", f"{BASE}/acme/primary/overrides/{override['id']}", headers=ada)
    assert (cancelled.status_code, cancelled.json()["id"]) == (200, override["id"])
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
