"""The console's on-call pages: schedules now, my shifts, the calendar URL, a schedule's timeline, taking
and cancelling overrides by form (CSRF, tenants, bad input: exact answers, nothing changed), the feed."""

from __future__ import annotations

import re

import icalendar
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth.identity import Principal
from spectra.console.oncall.service import CANCEL_OTHERS
from spectra.store import AuditLog, OncallOverride
from spectra.web.auth_routes import CSRF_REFUSED
from tests.factories.oncall import ONCALL_ADA, ONCALL_GUS, ONCALL_UMA
from tests.support.console import ConsoleSite

PAGE = "/console/oncall/acme/primary"


def stored(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(OncallOverride)) or 0


def calendar_url(page: str) -> str:
    found = re.search(
        r'id="calendar-url" class="oncall-copy" type="text" readonly value="http://testserver([^"]+)"', page
    )
    assert found is not None
    return found[1]


def test_the_on_call_page(site: ConsoleSite, people: dict[str, Principal]) -> None:
    page = site.browser(ONCALL_UMA).get("/console/oncall")
    assert page.status_code == 200
    text = page.text
    assert text.count("<h1>") == 1
    assert '<a href="/console/oncall/acme/primary">acme/primary</a>' in text
    assert "globex" not in text
    assert '<time datetime="2026-03-09T09:00:00Z">' in text  # the next handoff, and uma's shift
    assert "My shifts (next 14 days)" in text
    assert calendar_url(text).startswith("/console/oncall/calendar/")


def test_take_the_shift_then_cancel_it(site: ConsoleSite, people: dict[str, Principal]) -> None:
    uma = site.browser(ONCALL_UMA)
    page = uma.get(PAGE).text
    assert '<option value="uma" selected>Uma (uma)</option>' in page
    assert 'data-shortcut="t"' in page
    taken = uma.post(f"{PAGE}/overrides", {"until": "18:00", "contact": "uma", "reason": "swap"})
    assert (taken.status_code, taken.headers["location"]) == (303, f"{PAGE}?done=taken")
    page = uma.get(f"{PAGE}?done=taken").text
    assert "Override taken: you are on call until it ends." in page
    assert "On call now: <strong>Uma</strong>" in page
    assert '<span class="state state-acknowledged">override</span> taken here' in page
    assert 'class="shift-override shift-mine"' in page
    [override_id] = re.findall(r"/overrides/(\d+)/cancel", page)
    refused = site.browser(ONCALL_ADA, organization="acme")  # an admin may cancel anyone's
    gone = refused.post(f"{PAGE}/overrides/{override_id}/cancel")
    assert (gone.status_code, gone.headers["location"]) == (303, f"{PAGE}?done=cancelled")
    with site.sessions() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.action.like("oncall.%"))).all()
        assert actions == ["oncall.override_taken", "oncall.override_cancelled"]
        assert session.scalars(select(OncallOverride.cancelled_by)).all() == [ONCALL_ADA]


def test_refusals_on_the_pages_change_nothing(site: ConsoleSite, people: dict[str, Principal]) -> None:
    uma = site.browser(ONCALL_UMA)
    no_csrf = uma.post(f"{PAGE}/overrides", {"until": "1h"}, csrf=False)
    assert no_csrf.status_code == 403
    assert CSRF_REFUSED in no_csrf.text
    bad = uma.post(f"{PAGE}/overrides", {"until": "40d", "contact": "uma"})
    assert bad.status_code == 400
    assert "until 2026-04-11T09:00:07Z is more than 31 days ahead" in bad.text
    assert 'value="40d"' in bad.text  # the form keeps what was typed
    gus = site.browser(ONCALL_GUS)
    assert gus.get(PAGE).status_code == 404
    assert gus.post(f"{PAGE}/overrides", {"until": "1h", "contact": "gus"}).status_code == 404
    assert stored(site.sessions) == 0
    ada = site.browser(ONCALL_ADA)
    ada.post(f"{PAGE}/overrides", {"until": "1h", "contact": "ada"})
    [override_id] = re.findall(r"/overrides/(\d+)/cancel", ada.get(PAGE).text)
    assert f"/overrides/{override_id}/cancel" not in uma.get(PAGE).text  # not hers: no button
    refused = uma.post(f"{PAGE}/overrides/{override_id}/cancel")
    assert refused.status_code == 403
    assert CANCEL_OTHERS in refused.text
    with site.sessions() as session:
        assert session.scalars(select(OncallOverride.cancelled_at)).all() == [None]


def test_the_calendar_feed_needs_no_cookie_and_rotates(site: ConsoleSite, people: dict[str, Principal]) -> None:
    uma = site.browser(ONCALL_UMA)
    url = calendar_url(uma.get("/console/oncall").text)
    feed = site.anonymous().get(url)
    assert (feed.status_code, feed.headers["content-type"]) == (200, "text/calendar; charset=utf-8")
    events = icalendar.Calendar.from_ical(feed.content).walk("VEVENT")
    assert {str(event["summary"]) for event in events} == {"On call: acme/primary"}
    assert site.anonymous().get(url.replace("/calendar/", "/calendar/x")).status_code == 404
    rotated = uma.post("/console/oncall/calendar/rotate")
    assert (rotated.status_code, rotated.headers["location"]) == (303, "/console/oncall?done=rotated")
    assert site.anonymous().get(url).status_code == 404
    fresh = calendar_url(uma.get("/console/oncall?done=rotated").text)
    assert fresh != url
    assert site.anonymous().get(fresh).status_code == 200
    with site.sessions() as session:
        assert session.scalars(select(AuditLog.action).where(AuditLog.action == "oncall.feed_rotated")).all() == [
            "oncall.feed_rotated"
        ]
