"""Uptime by UTC day: degraded counts half, maintenance days are left out, no data is None."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from spectra.domain.uptime import Counts
from spectra.statuspage.snapshots import build_snapshot
from spectra.statuspage.uptime import component_days, history_days
from spectra.store import insert_results, rollup
from tests.factories.pages import DB_NOW as NOW
from tests.factories.pages import MONITORS, PAGE, PageDb, page_db

TODAY = NOW.date()


def day(offset: int) -> date:
    return TODAY - timedelta(days=offset)


@pytest.mark.parametrize(
    ("counts", "uptime", "down_minutes"),
    [
        (Counts(100, 0, 0), 100.0, 0),
        (Counts(100, 0, 10), 90.0, 144),
        (Counts(100, 10, 0), 95.0, 72),  # degraded counts half
        (Counts(100, 20, 10), 80.0, 288),
        (Counts(4, 0, 4), 0.0, 1440),
    ],
)
def test_day_weighting(counts: Counts, uptime: float, down_minutes: int) -> None:
    bars, overall = component_days([1], [day(1)], {(1, day(1)): counts}, {}, NOW)
    assert (bars[0].uptime, bars[0].down_minutes, bars[0].maintenance) == (uptime, down_minutes, False)
    assert overall == uptime


def test_today_counts_only_elapsed_minutes() -> None:
    bars, _ = component_days([1], [TODAY], {(1, TODAY): Counts(10, 0, 10)}, {}, NOW)
    assert bars[0].down_minutes == 720  # noon: half a day has passed


def test_maintenance_day_is_excluded_and_no_data_is_none() -> None:
    counts = {(1, day(2)): Counts(10, 0, 10), (1, day(1)): Counts(10, 0, 0), (2, day(1)): Counts(10, 0, 5)}
    bars, overall = component_days([1, 2], [day(3), day(2), day(1)], counts, {1: {day(2)}, 2: {day(1)}}, NOW)
    assert [(b.day, b.uptime, b.maintenance) for b in bars] == [
        (day(3), None, False),  # no checks
        (day(2), None, True),  # the only data was under maintenance
        (day(1), 100.0, True),  # monitor 2's day is left out, monitor 1's counts
    ]
    assert overall == 100.0
    assert component_days([1], [day(1)], {}, {}, NOW) == ((bars[0].__class__(day(1), None, 0, False),), None)


def test_history_days_oldest_first() -> None:
    assert history_days(NOW, 3) == [day(2), day(1), TODAY]


MAINTENANCE_WEEKLY = """
apiVersion: spectra.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: weekly}
spec:
  recurrence:
    rrule: "FREQ=WEEKLY;BYDAY=SU"
    start: "2026-01-04T02:00:00+01:00"
    duration: 1h
    timeZone: Europe/Berlin
  monitors: [api]
"""


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> PageDb:
    return page_db(sessions, MONITORS, PAGE, MAINTENANCE_WEEKLY)


def test_uptime_from_the_store(db: PageDb) -> None:
    # 2026-03-10 is a Tuesday; Sunday 2026-03-08 02:00 Berlin = 01:00 UTC: the API's maintenance day.
    sunday = date(2026, 3, 8)
    db.daily("api", day(5), up=90, down=10)
    db.daily("api", day(4), up=80, degraded=20)
    db.daily("api", day(4), up=100, location="us-east")
    db.daily("api", sunday, up=0, down=100)  # under maintenance: does not count
    db.daily("web-1", day(1), up=50, down=50)
    db.daily("web-2", day(1), up=100)
    db.daily("api", day(30), up=0, down=100)  # outside the 7 days shown
    with db.sessions() as session:
        snapshot = build_snapshot(session, "default", "main", NOW)
    api, web = snapshot.groups[0].components
    database = snapshot.groups[1].components[0]
    assert [b.day for b in api.days] == [day(offset) for offset in range(6, -1, -1)]
    assert [(b.uptime, b.maintenance) for b in api.days] == [
        (None, False),
        (90.0, False),
        (95.0, False),  # (80 up + 20 degraded) + 100 up from a second location: 10 outage / 200
        (None, False),
        (None, True),
        (None, False),
        (None, False),
    ]
    assert api.days[2].down_minutes == 72
    assert api.uptime_percent == round(100 * (1 - (10 + 10) / 300), 3)
    assert web.days[-2].uptime == 75.0
    assert web.uptime_percent == 75.0
    assert database.uptime_percent is None
    assert all(b.uptime is None and not b.maintenance for b in database.days)


def test_uptime_from_results_through_rollup(db: PageDb) -> None:
    """The real path: raw results -> rollup() -> daily rows -> the page."""
    ids = db.ids()
    start = datetime.combine(day(1), datetime.min.time(), tzinfo=UTC)
    statuses = ["up"] * 6 + ["degraded"] * 2 + ["down"] * 2
    rows = [
        {"monitor_id": ids["db"], "location": "default", "checked_at": start + timedelta(hours=i), "status": s}
        for i, s in enumerate(statuses)
    ]
    with db.sessions() as session:
        insert_results(session, rows)
        rollup(session, start, start + timedelta(days=1))
        session.commit()
        snapshot = build_snapshot(session, "default", "main", NOW)
    database = snapshot.groups[1].components[0]
    assert database.days[-2].uptime == 70.0
    assert database.days[-2].down_minutes == 432
