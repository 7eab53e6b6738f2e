"""The pages in the store, their components' monitors and states, and the component states on a page built
from them (the state rules: tests/domain/test_components.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from spectra.statuspage.snapshots import build_snapshot
from spectra.statuspage.stored_pages import load_pages, pages_monitors
from spectra.store import Resource
from tests.factories.pages import DB_NOW as NOW
from tests.factories.pages import MONITORS, PAGE, PageDb, page_db

MAINTENANCE_DB = """
apiVersion: spectra.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: db-upgrade}
spec:
  start: "2026-03-10T11:00:00Z"
  end: "2026-03-10T13:00:00Z"
  monitors: [db]
  statusPages: [main]
  message: "Upgrading the **database**"
"""


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> PageDb:
    return page_db(sessions, MONITORS, PAGE, MAINTENANCE_DB)


def states_of(db: PageDb) -> tuple[str, dict[str, str]]:
    with db.sessions() as session:
        snapshot = build_snapshot(session, "default", "main", NOW)
    return snapshot.overall, {c.name: c.state for g in snapshot.groups for c in g.components}


def test_states_from_the_store(db: PageDb) -> None:
    # Nothing reported yet: unknown everywhere except the component in maintenance.
    assert states_of(db) == ("unknown", {"API": "unknown", "Web": "unknown", "Database": "maintenance"})

    db.set_states({"api": "up", "web-1": "up", "web-2": "up", "db": "down"})
    # db is down but in maintenance: no outage is shown for it.
    assert states_of(db) == ("maintenance", {"API": "operational", "Web": "operational", "Database": "maintenance"})

    db.set_states({"web-1": "down"})
    assert states_of(db) == (
        "partial_outage",
        {"API": "operational", "Web": "partial_outage", "Database": "maintenance"},
    )

    db.set_states({"web-2": "down", "api": "degraded"})
    assert states_of(db) == ("major_outage", {"API": "degraded", "Web": "major_outage", "Database": "maintenance"})


def test_stale_location_reports_no_data(db: PageDb) -> None:
    """A state last checked long ago is not current: unknown, not its old value."""
    db.set_states({"api": "up"}, now=NOW.replace(hour=1))
    assert states_of(db)[1]["API"] == "unknown"


def test_load_pages_reads_every_usable_page(db: PageDb, sessions: sessionmaker[Session]) -> None:
    db.apply(PAGE.replace("name: main}", "name: aaa}").replace("slug: main", "slug: aaa"))
    with sessions() as session:
        assert [(page.name, page.spec.slug) for page in load_pages(session)] == [("aaa", "aaa"), ("main", "main")]
    with sessions.begin() as session:  # a spec the model no longer accepts: logged and left out
        session.execute(
            update(Resource)
            .where(Resource.kind == "StatusPage", Resource.name == "aaa")
            .values(spec={"slug": "aaa", "title": "Broken", "groups": "not a list"})
        )
    with sessions() as session:
        pages = load_pages(session)
    assert [(page.namespace, page.name, page.spec.slug) for page in pages] == [("default", "main", "main")]


def test_pages_monitors_resolves_components_and_states_in_one_read(db: PageDb, sessions: sessionmaker[Session]) -> None:
    db.set_states({"api": "up", "web-1": "down", "web-2": "up", "db": "down"})
    with sessions() as session:
        pages = load_pages(session)
        found = pages_monitors(session, pages, NOW)
    [page] = pages
    core, data = page.spec.groups
    api, web = core.components
    ids = db.ids()
    assert [m.name for m in found.of(page, api)] == ["api"]
    assert [m.name for m in found.of(page, web)] == ["web-1", "web-2"]  # by selector, by name
    assert [m.name for m in found.of(page, data.components[0])] == ["db"]
    assert set(found.used) == set(ids.values())
    assert [w.name for w in found.windows] == ["db-upgrade"]
    # Each monitor's combined state; the database's window is in effect at noon.
    assert found.states == {ids["api"]: "up", ids["web-1"]: "down", ids["web-2"]: "up", ids["db"]: "maintenance"}
