"""Component and page states from the monitors' combined states."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spectra.domain.components import component_state, overall_state
from spectra.statuspage.snapshots import build_snapshot

from .pagedb import MONITORS, NOW, PAGE, PageDb, page_db


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["up"], "operational"),
        (["up", "up"], "operational"),
        (["up", "degraded"], "degraded"),
        (["degraded"], "degraded"),
        (["up", "down"], "partial_outage"),
        (["degraded", "down"], "partial_outage"),
        (["down"], "major_outage"),
        (["down", "down"], "major_outage"),
        (["down", "pending"], "major_outage"),  # pending carries no data
        (["maintenance"], "maintenance"),
        (["maintenance", "up"], "maintenance"),
        (["maintenance", "down"], "major_outage"),  # the monitor outside the window is down
        (["pending"], "unknown"),
        (["paused"], "unknown"),
        ([None], "unknown"),
        ([], "unknown"),
    ],
)
def test_component_state(states: list[str | None], expected: str) -> None:
    assert component_state(states) == expected


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["operational", "operational"], "operational"),
        (["operational", "maintenance"], "maintenance"),
        (["operational", "degraded", "maintenance"], "degraded"),
        (["degraded", "partial_outage"], "partial_outage"),
        (["major_outage", "partial_outage", "operational"], "major_outage"),
        (["operational", "unknown"], "unknown"),  # no data is never reported as operational
        ([], "unknown"),
    ],
)
def test_overall_is_the_worst(states: list[str], expected: str) -> None:
    assert overall_state(states) == expected


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
