"""The console's status pages (/console/status-pages): the list, posting an incident by hand with its
preview, updates, resolving, the post-mortem, ad-hoc maintenance; the public page and the subscriber mails
show each change at once; refusals change nothing; on SQLite and MariaDB."""

from __future__ import annotations

import re

import pytest
from anyio.from_thread import BlockingPortal
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.console.statuspages import service
from spectra.store import PageIncident
from spectra.web.auth_routes import CSRF_REFUSED
from tests.factories.statuspages import ADA, GIL, READER, UMA, WATCHER, PagesSite, pages_site
from tests.support.providers import Providers, deliver_outbox_emails, text_of

MAIN = "/console/status-pages/default/main"
HOSTILE = (
    "Fixing it <script>alert(1)</script> <img src=x onerror=alert(2)> "
    '[click](javascript:alert(3)) <a href="javascript:alert(4)">raw</a> **bold**'
)


@pytest.fixture
def world(sessions: sessionmaker[Session], portal: BlockingPortal) -> PagesSite:
    return pages_site(sessions, portal)


def incident_form(**changes: str) -> dict[str, str]:
    form = {
        "title": "Slow API",
        "impact:API": "partial_outage",
        "impact:Web": "",
        "impact:Database": "degraded",
        "status": "identified",
        "message": "We are **on it**.",
        "notify": "on",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v != "-"}


def public(world: PagesSite) -> str:
    answer = world.site.anonymous().get("/s/main")
    assert answer.status_code == 200
    return answer.text


def test_the_list_shows_our_pages_their_components_and_the_public_link(world: PagesSite) -> None:
    page = world.site.browser(UMA).get("/console/status-pages")
    assert page.status_code == 200
    assert 'href="/console/status-pages/default/main">Main status</a>' in page.text
    assert '<a href="/s/main">public page /s/main</a>' in page.text
    for name in ("API", "Web", "Database"):
        assert f'<td data-label="Component">{name}</td>' in page.text
    assert "Globex status" not in page.text  # another tenant's page
    assert page.text.count("<h1>") == 1


def test_a_hand_posted_incident_and_its_update_show_at_once_and_mail_the_subscribers(world: PagesSite) -> None:
    assert "Slow API" not in public(world)  # the public page's snapshots are cached from here on
    ada = world.site.browser(ADA)
    posted = ada.post(f"{MAIN}/incidents", incident_form())
    assert (posted.status_code, posted.headers["location"]) == (303, f"{MAIN}?done=opened")
    assert "The incident is posted." in ada.get(posted.headers["location"]).text
    shown = public(world)
    assert "Slow API" in shown
    assert "<p>We are <strong>on it</strong>.</p>" in shown
    # Components take the impacts posted while the incident is open.
    assert re.search(r"API</span>\s*<span class=\"state state-partial_outage\">", shown)
    assert re.search(r"Database</span>\s*<span class=\"state state-degraded\">", shown)
    assert sorted(m.recipient for m in world.mails()) == [WATCHER, READER]  # API's watcher is affected too
    with world.sessions() as session:
        incident = session.scalars(select(PageIncident)).one()
        assert (incident.impact, incident.state, incident.source) == ("major", "identified", "manual")
        assert incident.component_impacts == {"API": "partial_outage", "Database": "degraded"}
    update = ada.post(f"{MAIN}/incidents/{incident.id}/updates", {"status": "monitoring", "message": "A fix is out."})
    assert update.status_code == 303
    assert "A fix is out." in public(world)
    assert len(world.mails()) == 2  # "notify" unticked: nobody is mailed
    again = ada.post(
        f"{MAIN}/incidents/{incident.id}/updates",
        {"status": "monitoring", "message": "Still watching.", "notify": "on"},
    )
    assert again.status_code == 303
    assert len(world.mails()) == 4
    providers = Providers()
    try:
        assert deliver_outbox_emails(world.sessions, providers) == 4
        # The sender delivers due mails concurrently: their arrival order is not the order they were queued in.
        [latest, first] = sorted(providers.emails(READER), key=lambda mail: mail["subject"])
    finally:
        providers.close()
    assert first["subject"] == "[Main status] New incident: Slow API"
    assert "We are **on it**." in text_of(first)
    assert latest["subject"] == "[Main status] Incident update: Slow API"
    assert "Still watching." in text_of(latest)
    assert "State: monitoring" in text_of(latest)
    audit = world.audit()
    assert [row[0] for row in audit] == [
        "statuspage.incident.open",
        "statuspage.incident.update",
        "statuspage.incident.update",
    ]
    assert {(row[1], row[2]) for row in audit} == {(ADA, "main")}


def test_notify_no_queues_no_mail(world: PagesSite) -> None:
    answer = world.site.browser(UMA).post(f"{MAIN}/incidents", incident_form(notify="-"))
    assert answer.status_code == 303
    assert "Slow API" in public(world)
    assert world.mails() == []


def test_hostile_markdown_never_reaches_the_page_and_the_preview_changes_nothing(world: PagesSite) -> None:
    ada = world.site.browser(ADA)
    before = world.counts()
    preview = ada.post(f"{MAIN}/preview", incident_form(message=HOSTILE))
    assert preview.status_code == 200
    assert '<h3 id="preview-h">Preview</h3>' in preview.text
    assert world.counts() == before
    assert ada.post(f"{MAIN}/incidents", incident_form(message=HOSTILE)).status_code == 303
    for text in (preview.text.split('id="preview-h"')[1], public(world)):
        assert "<script>alert" not in text
        assert not re.search(r"<a [^>]*href=\"javascript", text)  # shown as text at most
        assert "<img" not in text
        assert "<strong>bold</strong>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in public(world)  # raw HTML is shown as text


def test_resolve_then_a_postmortem_shows_on_the_public_page(world: PagesSite) -> None:
    ada = world.site.browser(ADA)
    ada.post(f"{MAIN}/incidents", incident_form(notify="-"))
    with world.sessions() as session:
        incident_id = session.scalars(select(PageIncident.id)).one()
    early = ada.post(f"{MAIN}/incidents/{incident_id}/postmortem", {"postmortem": "Too soon"})
    assert (early.status_code, service.NOT_RESOLVED in early.text) == (400, True)
    resolved = ada.post(f"{MAIN}/incidents/{incident_id}/resolve", {"message": "All good.", "notify": "on"})
    assert resolved.headers["location"] == f"{MAIN}?done=resolved"
    assert [m.recipient for m in world.mails()] == [READER, WATCHER]
    shown = public(world)
    assert "Active incidents" not in shown
    assert "All good." in shown
    assert re.search(r"API</span>\s*<span class=\"state state-", shown)
    assert "state-partial_outage" not in shown  # a resolved incident no longer sets the components' state
    written = ada.post(
        f"{MAIN}/incidents/{incident_id}/postmortem", {"postmortem": "## What happened\n\nA *bad* deploy."}
    )
    assert written.headers["location"] == f"{MAIN}?done=postmortem"
    assert "<h2>What happened</h2>" in public(world)
    assert "<em>bad</em>" in public(world)
    late = ada.post(f"{MAIN}/incidents/{incident_id}/updates", {"status": "monitoring", "message": "x"})
    assert (late.status_code, service.RESOLVED_ALREADY in late.text) == (400, True)
    assert [row[0] for row in world.audit()][-2:] == ["statuspage.incident.resolve", "statuspage.incident.postmortem"]


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"title": "  "}, service.NO_TITLE),
        ({"title": "x" * 201}, service.LONG_TITLE),
        ({"impact:API": "", "impact:Database": ""}, service.NO_COMPONENT),
        ({"impact:API": "down"}, service.BAD_IMPACT),
        ({"impact:Nope": "degraded"}, service.unknown_component("Nope")),
        ({"status": "resolved"}, service.BAD_STATUS),
        ({"message": " "}, service.NO_MESSAGE),
    ],
)
def test_a_bad_incident_is_refused_with_its_sentence_and_changes_nothing(
    world: PagesSite, changes: dict[str, str], sentence: str
) -> None:
    before = world.counts()
    answer = world.site.browser(ADA).post(f"{MAIN}/incidents", incident_form(**changes))
    assert answer.status_code == 400
    assert f'<p class="error" role="alert">{escape(sentence)}</p>' in answer.text
    assert world.counts() == before


def test_refusals_another_tenant_no_csrf_and_unknown_ids_change_nothing(world: PagesSite) -> None:
    before = world.counts()
    gil = world.site.browser(GIL)
    assert gil.get(MAIN).status_code == 404
    assert gil.post(f"{MAIN}/incidents", incident_form()).status_code == 404
    assert world.site.browser(ADA).get("/console/status-pages/other/theirs").status_code == 404
    assert world.site.browser(ADA).get("/console/status-pages/default/nope").status_code == 404
    refused = world.site.browser(ADA).post(f"{MAIN}/incidents", incident_form(), csrf=False)
    assert refused.status_code == 403
    assert CSRF_REFUSED in refused.text
    assert world.site.browser(ADA).post(f"{MAIN}/incidents/999/resolve", {"message": "x"}).status_code == 404
    assert world.site.browser(ADA).post(f"{MAIN}/maintenance/999/end").status_code == 404
    assert world.counts() == before


def test_ad_hoc_maintenance_shows_on_the_public_page_and_ends_early(world: PagesSite) -> None:
    ada = world.site.browser(ADA)
    public(world)
    bad = ada.post(f"{MAIN}/maintenance", {"title": "DB upgrade", "component:Database": "on", "until": "soon"})
    assert bad.status_code == 400
    assert "is neither a time" in bad.text
    assert world.counts()[2] == 0
    started = ada.post(
        f"{MAIN}/maintenance",
        {"title": "DB upgrade", "component:Database": "on", "until": "2h", "message": "Upgrading *Postgres*"},
    )
    assert started.headers["location"] == f"{MAIN}?done=maintenance"
    shown = public(world)
    assert 'DB upgrade <span class="tag">In progress</span>' in shown
    assert "Affected: Database" in shown
    assert re.search(r"Database</span>\s*<span class=\"state state-maintenance\">", shown)
    page = ada.get(MAIN).text
    assert "End maintenance now" in page
    maintenance_id = int(re.findall(r"/maintenance/(\d+)/end", page)[0])
    assert ada.post(f"{MAIN}/maintenance/{maintenance_id}/end").headers["location"] == f"{MAIN}?done=ended"
    assert "DB upgrade" not in public(world)
    again = ada.post(f"{MAIN}/maintenance/{maintenance_id}/end")
    assert again.status_code == 400
    assert service.ENDED_ALREADY in again.text
    assert [row[0] for row in world.audit()] == ["statuspage.maintenance.start", "statuspage.maintenance.end"]
