"""The incident pages (/console/incidents): the list with filters and counts, an incident's whole timeline,
the actions as forms (CSRF, PRG, acknowledge first and one tap, `a` on the keyboard), refusals with their
sentence and nothing changed, another tenant's incident 404, both names while impersonating."""

from __future__ import annotations

import re

import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import impersonation
from spectra.auth import sessions as auth_sessions
from spectra.console.incidents.service import NO_CONTACT
from spectra.console.incidents.views import DONE
from spectra.console.rendering import CONSOLE_CSP
from spectra.store.accounts import User
from spectra.web.auth_routes import CSRF_REFUSED, Granted
from tests.factories.alerting import BOB_EMAIL
from tests.factories.incidents import ADA, GIL, ROOT, UMA, IncidentWorld, incident_world


@pytest.fixture
def w(sessions: sessionmaker[Session], portal: BlockingPortal) -> IncidentWorld:
    return incident_world(sessions, portal)


def test_the_list_shows_open_incidents_with_counts_and_filters(w: IncidentWorld) -> None:
    page = w.site.browser(UMA).get("/console/incidents")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONSOLE_CSP
    assert "style=" not in page.text
    assert "<script>" not in page.text
    code = w.incident().code
    assert f'<a href="/console/incidents/{w.incident_id}">{code}</a>' in page.text
    assert '<span class="state state-open">open</span> 1' in page.text
    assert "GLBX" not in page.text  # globex's
    assert page.text.count("<h1>") == 1
    filtered = w.site.browser(UMA).get("/console/incidents?state=resolved")
    assert code not in filtered.text
    assert "No incidents match these filters." in filtered.text
    bad = w.site.browser(UMA).get("/console/incidents?since=yesterday")
    assert bad.status_code == 400
    assert "since: " in bad.text


def test_the_incident_page_shows_the_whole_timeline_and_acknowledge_first(w: IncidentWorld) -> None:
    page = w.site.browser(UMA).get(f"/console/incidents/{w.incident_id}").text
    actions = page.split('aria-label="Actions">', 1)[1]
    first_form = re.search(r"<form[^>]*>", actions)
    assert first_form is not None
    assert 'class="primary-action"' in first_form.group(0)
    assert f'action="/console/incidents/{w.incident_id}/acknowledge"' in first_form.group(0)
    assert 'data-shortcut="a">Acknowledge</button>' in page
    assert "paged alice by sms" in page
    assert "paged alice by voice" in page
    assert '<td data-label="Recipient">+4915112345678</td>' in page  # who was paged, at which number
    assert "Escalate now" in page
    assert '<option value="default/bob">default/bob</option>' in page
    assert '<time datetime="' in page


def test_acknowledge_from_the_console_stops_the_escalation(w: IncidentWorld) -> None:
    ada = w.site.browser(ADA)
    answer = ada.post(f"/console/incidents/{w.incident_id}/acknowledge")
    assert (answer.status_code, answer.headers["location"]) == (
        303,
        f"/console/incidents/{w.incident_id}?done=acknowledge",
    )
    page = ada.get(answer.headers["location"]).text
    assert DONE["acknowledge"] in page
    assert "Acknowledge</button>" not in page
    assert w.escalation() == ("stopped", 1)
    w.tick(minutes=11)
    assert not any(key.endswith(f":step:1:repeat:0:{BOB_EMAIL}") for key in w.outbox_keys())
    again = w.site.browser(ADA).post(f"/console/incidents/{w.incident_id}/acknowledge")  # 11 minutes on: a new session
    assert again.status_code == 409
    assert f"Incident {w.incident().code} is already acknowledged by {ADA}." in again.text
    assert [row[:2] for row in w.audit()] == [("incident.acknowledged", ADA)]


def test_note_escalate_reassign_and_resolve_from_the_console(w: IncidentWorld) -> None:
    uma = w.site.browser(UMA)
    base = f"/console/incidents/{w.incident_id}"
    assert uma.post(f"{base}/note", {"text": "DB failover <started>"}).status_code == 303
    assert "DB failover &lt;started&gt;" in uma.get(base).text
    assert uma.post(f"{base}/escalate").status_code == 303
    w.tick()
    assert any(key.endswith(f":step:1:repeat:0:{BOB_EMAIL}") for key in w.outbox_keys())
    assert uma.post(f"{base}/reassign", {"contact": "default/alice"}).status_code == 303
    assert "(waiting for the alerter)" in uma.get(base).text
    w.tick()
    assert any(":step:r" in key and key.endswith(":sms:+4915112345678") for key in w.outbox_keys())
    assert uma.post(f"{base}/resolve").status_code == 303
    assert w.incident().state == "resolved"
    assert [row[0] for row in w.audit()] == [
        "incident.note_added", "incident.escalated", "incident.reassigned", "incident.resolved",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "form", "status", "sentence"),
    [
        ("note", {"text": "   "}, 400, "The note is empty."),
        ("reassign", {"contact": "other/x"}, 400, NO_CONTACT),
    ],
)
def test_bad_input_shows_the_sentence_and_changes_nothing(
    w: IncidentWorld, path: str, form: dict[str, str], status: int, sentence: str
) -> None:
    before = w.snapshot()
    answer = w.site.browser(UMA).post(f"/console/incidents/{w.incident_id}/{path}", form)
    assert answer.status_code == status
    assert f'<p class="error" role="alert">{sentence}</p>' in answer.text
    assert w.snapshot() == before


def test_a_form_without_the_csrf_token_is_refused(w: IncidentWorld) -> None:
    before = w.snapshot()
    for path in ("acknowledge", "resolve", "note", "escalate", "reassign"):
        answer = w.site.browser(UMA).post(f"/console/incidents/{w.incident_id}/{path}", {"text": "x"}, csrf=False)
        assert answer.status_code == 403
        assert CSRF_REFUSED in answer.text
    assert w.snapshot() == before


def test_another_tenants_incident_is_404(w: IncidentWorld) -> None:
    gil = w.site.browser(GIL)
    before = w.snapshot()
    assert gil.get(f"/console/incidents/{w.incident_id}").status_code == 404
    for path in ("acknowledge", "resolve", "note", "escalate", "reassign"):
        answer = gil.post(f"/console/incidents/{w.incident_id}/{path}", {"text": "x", "contact": "default/bob"})
        assert answer.status_code == 404
    assert w.snapshot() == before
    assert w.site.browser(UMA).get(f"/console/incidents/{w.foreign_id}").status_code == 404
    assert w.site.browser(UMA).get("/console/incidents/nope").status_code == 404


def test_a_platform_admin_outside_any_organization_sees_no_incident(w: IncidentWorld) -> None:
    root = w.site.browser(ROOT, organization=None)
    assert root.get(f"/console/incidents/{w.incident_id}").status_code == 404
    assert root.get("/console/incidents").status_code == 404


def test_impersonated_actions_carry_both_names(w: IncidentWorld) -> None:
    with w.sessions.begin() as session:
        root = session.scalars(select(User).where(User.email == ROOT)).one()
        staff = auth_sessions.start(
            session, root, organization=None, now=w.site.clock(), mfa_verified=True, ip=None, user_agent=None
        )
        issued = impersonation.start(
            session, staff.principal, UMA, "acme", reason="Ticket 4711: pager stuck on an incident",
            now=w.site.clock(), ip="127.0.0.1", user_agent="test",
        )  # fmt: skip
        granted = Granted.of(issued)
    support = w.site.signed_in(granted, UMA)
    assert support.post(f"/console/incidents/{w.incident_id}/acknowledge").status_code == 303
    both = f"{UMA} (impersonated by {ROOT})"
    assert w.incident().acknowledged_by == both
    assert ("acknowledged", both, "console", f"acknowledged by {both}") in w.events()
    assert w.audit() == [("incident.acknowledged", UMA, ROOT, w.incident().code)]
