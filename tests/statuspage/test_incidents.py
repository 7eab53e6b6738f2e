"""Automatic page incidents open on outages and resolve on recovery; people post updates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.statuspage.incidents import PageIncidentError, add_update, open_incident, sync_auto_incidents
from spectra.store import Incident, PageIncident, PageIncidentUpdate
from tests.factories.pages import DB_NOW as NOW
from tests.factories.pages import MONITORS, PAGE, PageDb, page_db

QUIET_PAGE = (
    PAGE.replace("name: main}", "name: quiet}")
    .replace("slug: main", "slug: quiet")
    .replace("autoIncidents: true", "autoIncidents: false")
    .replace("hostnames: [status.example.test]", "hostnames: []")
)


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> PageDb:
    return page_db(sessions, MONITORS, PAGE, QUIET_PAGE)


def sync(db: PageDb, minutes: int = 0) -> list[tuple[str, str, str]]:
    with db.sessions() as session:
        events = sync_auto_incidents(session, NOW + timedelta(minutes=minutes))
        session.commit()
    return [(e.kind, e.page_name, e.title) for e in events]


def incidents(db: PageDb) -> list[tuple[str, str, str, list[str], list[tuple[str, str]]]]:
    with db.sessions() as session:
        rows = session.scalars(select(PageIncident).order_by(PageIncident.id)).all()
        return [(i.page_name, i.title, i.state, i.components, [(u.state, u.body) for u in i.updates]) for i in rows]


def test_auto_incident_opens_once_and_resolves(db: PageDb) -> None:
    current = {"api": "up", "web-1": "up", "web-2": "up", "db": "up"}

    def step(minutes: int, **changes: str) -> list[tuple[str, str, str]]:
        current.update({name.replace("_", "-"): state for name, state in changes.items()})
        db.set_states(current, now=NOW + timedelta(minutes=minutes))  # every monitor freshly checked
        return sync(db, minutes)

    assert step(0) == []
    assert step(1, web_1="down") == [("opened", "main", "Outage: Web")]  # not on the page without autoIncidents
    assert step(2) == []  # still down: no second incident
    assert step(3, web_1="degraded") == []  # degraded is not operational yet: stays open
    assert step(4, web_1="up") == [("resolved", "main", "Outage: Web")]
    assert step(5) == []
    assert incidents(db) == [
        (
            "main",
            "Outage: Web",
            "resolved",
            ["Web"],
            [
                ("investigating", "We are investigating issues with Web."),
                ("resolved", "Web is operating normally again. This incident has been resolved."),
            ],
        )
    ]
    with db.sessions() as session:
        row = session.scalars(select(PageIncident)).one()
        assert (row.source, row.started_at, row.resolved_at) == (
            "auto",
            NOW + timedelta(minutes=1),
            NOW + timedelta(minutes=4),
        )


def test_open_alerting_incident_opens_and_links(db: PageDb) -> None:
    db.set_states({"api": "degraded", "web-1": "up", "web-2": "up", "db": "up"})
    with db.sessions() as session:
        alert = Incident(
            code="K7Q2",
            namespace="default",
            monitor_id=db.ids()["api"],
            monitor_name="api",
            title="api is down",
            severity="critical",
            state="acknowledged",
            opened_at=NOW,
        )
        session.add(alert)
        session.commit()
        alert_id = alert.id
    events = None
    with db.sessions() as session:
        events = sync_auto_incidents(session, NOW)
        session.commit()
    assert [(e.kind, e.components, e.state, e.impact) for e in events] == [
        ("opened", ("API",), "investigating", "minor")
    ]
    with db.sessions() as session:
        row = session.get(PageIncident, events[0].page_incident_id)
        assert row is not None
        assert row.monitor_incident_id == alert_id
        assert events[0].update_id == session.scalars(select(PageIncidentUpdate.id)).one()


def test_manual_incidents_block_auto_ones_and_are_never_auto_resolved(db: PageDb) -> None:
    db.set_states({"api": "up", "web-1": "up", "web-2": "up", "db": "down"})
    with db.sessions() as session:
        manual = open_incident(
            session, "default", "main", title="Database trouble", impact="major", components=["Database"],
            body="We see errors.", author="alice", now=NOW,
        )  # fmt: skip
        session.commit()
    assert manual.kind == "opened"
    assert sync(db) == []  # the component already has an incident
    db.set_states({"db": "up"})
    assert sync(db, 5) == []  # a person resolves it, not the worker
    assert [i[2] for i in incidents(db)] == ["investigating"]


def test_add_update_sets_state_and_resolves_and_reopens(db: PageDb) -> None:
    with db.sessions() as session:
        opened = open_incident(
            session, "default", "main", title="Slow API", impact="minor", components=["API"], body="Looking.", now=NOW
        )
        first = add_update(session, opened.page_incident_id, "identified", "Found a bad deploy.", "bob", now=NOW)
        done = add_update(session, opened.page_incident_id, "resolved", "Rolled back.", "bob", now=NOW)
        session.commit()
    assert (first.kind, first.state, done.kind, done.state) == ("updated", "identified", "resolved", "resolved")
    with db.sessions() as session:
        row = session.get(PageIncident, opened.page_incident_id)
        assert row is not None
        assert row.resolved_at == NOW
        again = add_update(session, row.id, "monitoring", "It came back.", None, now=NOW)
        reopened = session.get(PageIncident, opened.page_incident_id)
        assert reopened is not None
        assert (again.kind, reopened.resolved_at, reopened.state) == ("updated", None, "monitoring")
        with pytest.raises(PageIncidentError):
            add_update(session, row.id, "exploded", "?", None)
        with pytest.raises(PageIncidentError):
            add_update(session, 999_999, "resolved", "?", None)
        with pytest.raises(PageIncidentError):
            open_incident(session, "default", "main", title="x", impact="huge", components=[], body="")


def test_updates_go_with_their_incident(db: PageDb) -> None:
    with db.sessions() as session:
        opened = open_incident(session, "default", "main", title="x", impact="none", components=[], body="b", now=NOW)
        session.commit()
        session.delete(session.get(PageIncident, opened.page_incident_id))
        session.commit()
        assert session.scalars(select(PageIncidentUpdate)).all() == []
