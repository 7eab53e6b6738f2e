"""The incident actions of the console and API (spectra.console.incidents.service) over the state machine
of spectra.alerting.incidents and the real alerter; on SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta

import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.alerting.incidents import acknowledge
from spectra.auth import policy
from spectra.auth.identity import Principal
from spectra.console.incidents.service import NO_CONTACT, Filters, IncidentService, Refused, decode_cursor
from spectra.store import Role
from spectra.store.accounts import User
from tests.factories.accounts import member
from tests.factories.alerting import BOB_EMAIL
from tests.factories.incidents import ADA, GIL, IncidentWorld, incident_world


@pytest.fixture
def w(sessions: sessionmaker[Session], portal: BlockingPortal) -> IncidentWorld:
    return incident_world(sessions, portal)


def principal(w: IncidentWorld, email: str, organization: str) -> Principal:
    with w.sessions() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        role = Role(next(m.role for m in user.memberships if m.organization == organization))
        return Principal(user_id=user.id, email=email, organization=organization, role=role)


def service(w: IncidentWorld) -> IncidentService:
    return IncidentService(w.sessions, w.site.clock)


def test_the_alerter_opened_and_paged_the_incident(w: IncidentWorld) -> None:
    assert w.incident().state == "open"
    assert w.escalation() == ("active", 1)  # step 0 paged alice; bob's step is next
    assert [key.rsplit(":", 2)[-2] for key in w.outbox_keys()] == ["sms", "voice"]


def test_a_console_acknowledgement_stops_the_escalation_as_an_ack_link_does(w: IncidentWorld) -> None:
    ada = principal(w, ADA, "acme")
    item = service(w).act(ada, w.incident_id, "acknowledge", ip="127.0.0.1", channel="console")
    assert (item.state, item.acknowledged_by) == ("acknowledged", ADA)
    assert w.escalation() == ("stopped", 1)
    assert ("acknowledged", ADA, "console", f"acknowledged by {ADA}") in w.events()
    w.tick(minutes=11)  # bob's step would be due
    assert not any(BOB_EMAIL in key and ":step:1:" in key for key in w.outbox_keys())
    assert w.audit() == [("incident.acknowledged", ADA, None, item.code)]
    with pytest.raises(Refused) as again:
        service(w).act(ada, w.incident_id, "acknowledge", ip=None, channel="api")
    assert (again.value.status, again.value.sentence) == (
        409,
        f"Incident {item.code} is already acknowledged by {ADA}.",
    )


def test_the_same_function_for_both(w: IncidentWorld) -> None:
    with w.sessions.begin() as session:
        assert acknowledge(session, w.incident_id, by="+15550001111", channel="sms")
    with pytest.raises(Refused) as refused:
        service(w).act(principal(w, ADA, "acme"), w.incident_id, "acknowledge", ip=None, channel="console")
    assert refused.value.sentence.endswith("is already acknowledged by +15550001111.")


def test_escalate_now_pages_the_next_step_at_the_next_pass(w: IncidentWorld) -> None:
    item = service(w).act(principal(w, ADA, "acme"), w.incident_id, "escalate", ip=None, channel="console")
    assert ("escalated", ADA, "console", f"escalated now by {ADA}: step 1 pages at once") in w.events()
    w.tick()  # no time passes: the step is due now
    assert any(key.endswith(f":step:1:repeat:0:{BOB_EMAIL}") for key in w.outbox_keys())
    assert w.escalation() == ("exhausted", 1)
    with pytest.raises(Refused) as refused:
        service(w).act(principal(w, ADA, "acme"), w.incident_id, "escalate", ip=None, channel="console")
    assert refused.value.sentence == f"Every step of incident {item.code}'s escalation policy has paged already."
    assert [row[0] for row in w.audit()] == ["incident.escalated"]


def test_reassign_pages_the_contact(w: IncidentWorld) -> None:
    ada = principal(w, ADA, "acme")
    service(w).act(ada, w.incident_id, "reassign", ip=None, channel="api", contact="default/bob")
    assert ("reassigning", ADA, "api", f"reassigned to default/bob by {ADA}") in w.events()
    w.tick()
    reassigned = [key for key in w.outbox_keys() if ":step:r" in key]
    assert len(reassigned) == 1
    assert reassigned[0].endswith(BOB_EMAIL)
    types = [event[0] for event in w.events()]
    assert "reassigned" in types
    assert "reassigning" not in types
    assert ("notified", "bob", "email", f"paged bob by email (reassigned by {ADA})") in w.events()
    w.tick()  # paged once
    assert len([key for key in w.outbox_keys() if ":step:r" in key]) == 1
    # bob is told of the resolution like everyone paged
    service(w).act(ada, w.incident_id, "resolve", ip=None, channel="api")
    assert any(key.startswith(f"incident:{w.incident_id}:resolved:1:email:bob@") for key in w.outbox_keys())


@pytest.mark.parametrize("contact", ["bob", "default/nobody", "other/bob", "/bob", "default/bob/x", ""])
def test_reassign_to_an_unknown_or_foreign_contact_is_refused(w: IncidentWorld, contact: str) -> None:
    before = w.snapshot()
    with pytest.raises(Refused) as refused:
        service(w).act(principal(w, ADA, "acme"), w.incident_id, "reassign", ip=None, channel="api", contact=contact)
    assert (refused.value.status, refused.value.sentence) == (400, NO_CONTACT)
    assert w.snapshot() == before


def test_notes_and_their_refusals(w: IncidentWorld) -> None:
    ada = principal(w, ADA, "acme")
    service(w).act(ada, w.incident_id, "note", ip=None, channel="console", text="Restarted the <b>pods</b>")
    assert ("note", ADA, "console", "Restarted the <b>pods</b>") in w.events()
    before = w.snapshot()
    for text, sentence in (("  ", "The note is empty."), ("x" * 5001, "A note is at most 5000 characters.")):
        with pytest.raises(Refused) as refused:
            service(w).act(ada, w.incident_id, "note", ip=None, channel="console", text=text)
        assert (refused.value.status, refused.value.sentence) == (400, sentence)
    assert w.snapshot() == before


def test_another_tenants_incident_is_not_found(w: IncidentWorld) -> None:
    gil = principal(w, GIL, "globex")
    before = w.snapshot()
    for action in ("acknowledge", "resolve", "note", "escalate", "reassign"):
        with pytest.raises(policy.NotFound):
            service(w).act(gil, w.incident_id, action, ip=None, channel="api", text="x", contact="default/bob")
    with pytest.raises(policy.NotFound):
        service(w).detail(gil, w.incident_id)
    assert w.snapshot() == before
    assert [item.code for item in service(w).list(gil, Filters()).items] == ["GLBX"]


def test_the_list_orders_open_first_newest_first_with_cursors(w: IncidentWorld) -> None:
    ada = principal(w, ADA, "acme")
    with w.sessions.begin() as session:
        from spectra.store import Incident

        for n, state in enumerate(["resolved", "acknowledged", "open", "resolved"]):
            session.add(
                Incident(
                    code=f"T{n}XX", namespace="default", monitor_name=f"m{n}", title=f"m{n} is down", severity="warning",
                    state=state, opened_at=w.world.clock() - timedelta(hours=n + 1),
                )
            )  # fmt: skip
    svc = service(w)
    everything = svc.list(ada, Filters())
    codes = [item.code for item in everything.items]
    assert codes[:2] == [w.incident().code, "T2XX"]  # open, newest first
    assert codes[2:] == ["T1XX", "T0XX", "T3XX"]
    assert everything.counts == {"open": 2, "acknowledged": 1, "resolved": 2}
    pages: list[str] = []
    cursor: str | None = None
    while True:
        page = svc.list(ada, Filters(), limit=2, cursor=cursor)
        pages.extend(item.code for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == codes
    assert [i.code for i in svc.list(ada, Filters(state="resolved")).items] == ["T0XX", "T3XX"]
    assert [i.code for i in svc.list(ada, Filters(monitor="m1")).items] == ["T1XX"]
    since = w.world.clock() - timedelta(minutes=90)
    assert [i.code for i in svc.list(ada, Filters(since=since)).items] == [w.incident().code, "T0XX"]
    assert svc.list(ada, Filters(namespace="other")).items == ()
    with pytest.raises(Refused):
        decode_cursor("not-a-cursor")


def test_a_member_of_no_organization_sees_nothing(w: IncidentWorld) -> None:
    with w.sessions.begin() as session:
        lone = member(session, "lone@example.com", None, None)
    with pytest.raises(policy.NotFound):
        service(w).list(lone, Filters())
