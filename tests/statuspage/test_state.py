"""Component states on a page built from the store (the state rules: tests/domain/test_components.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spectra.statuspage.snapshots import build_snapshot

from .pagedb import MONITORS, NOW, PAGE, PageDb, page_db

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
def db(database_url: str) -> Iterator[PageDb]:
    yield from page_db(database_url, MONITORS, PAGE, MAINTENANCE_DB)


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
