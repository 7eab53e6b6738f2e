"""Uptime weighting and its text, and counting from the rollups, shared by status pages and the operator's
`.status`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from spectra.domain.maintenance import WindowDef, load_windows
from spectra.domain.monitors import MonitorRef, load_monitors
from spectra.domain.uptime import DAY, Counts, bucket_counts, counts_outside_maintenance, uptime_text
from spectra.store import DailyRollup, HourlyRollup, insert_results, rollup
from tests.factories.pages import MONITORS, PageDb, page_db


@pytest.mark.parametrize(
    ("counts", "share"),
    [(Counts(0, 0, 0), 0.0), (Counts(100, 0, 10), 0.1), (Counts(100, 10, 0), 0.05), (Counts(4, 0, 4), 1.0)],
)
def test_outage_share_weighs_degraded_half(counts: Counts, share: float) -> None:
    assert counts.outage_share == pytest.approx(share)


def test_counts_add_and_subtract() -> None:
    assert Counts(10, 1, 2) + Counts(5, 0, 1) == Counts(15, 1, 3)
    assert Counts(15, 1, 3) - Counts(5, 0, 1) == Counts(10, 1, 2)


@pytest.mark.parametrize(
    ("counts", "text"),
    [
        (Counts(0, 0, 0), None),
        (None, None),
        (Counts(20, 0, 0), "100.00%"),
        (Counts(20, 1, 1), "92.50%"),
        (Counts(2000, 0, 1), "99.95%"),
        (Counts(10_000_000, 0, 1), "99.99%"),  # anything failed: never 100.00%
        (Counts(4, 0, 4), "0.00%"),
    ],
)
def test_uptime_text(counts: Counts | None, text: str | None) -> None:
    assert uptime_text(counts) == text


# --- counting from the rollup tables (both backends) ---------------------------------------------

START = datetime(2026, 3, 9, tzinfo=UTC)  # a Monday, 00:00 UTC
HOUR = timedelta(hours=1)

WINDOWS = """
apiVersion: spectra.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: api-hours}
spec:
  start: "2026-03-09T02:30:00Z"
  end: "2026-03-09T04:00:00Z"
  monitors: [api]
---
apiVersion: spectra.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: db-day}
spec:
  start: "2026-03-10T11:00:00Z"
  end: "2026-03-10T13:00:00Z"
  monitors: [db]
"""


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> PageDb:
    """The monitors api, web-1, web-2 and db; api is in maintenance 02:30-04:00 on START, db at noon a day later."""
    return page_db(sessions, MONITORS, WINDOWS)


def refs_and_windows(session: Session) -> tuple[list[MonitorRef], list[WindowDef]]:
    return [ref for refs in load_monitors(session).values() for ref in refs], load_windows(session)


def test_bucket_counts_sum_locations_per_monitor_and_bucket(db: PageDb, sessions: sessionmaker[Session]) -> None:
    ids = db.ids()
    db.hourly("api", START, up=10)
    db.hourly("api", START, up=5, down=5, location="us-east")  # the same hour elsewhere: summed
    db.hourly("api", START + HOUR, up=8, degraded=2)
    db.hourly("api", START - HOUR, up=0, down=3)  # before the range
    db.hourly("api", START + 24 * HOUR, up=0, down=3)  # the range's end is excluded
    db.hourly("web-1", START, up=1, down=1)
    db.daily("api", START.date(), up=99)  # the other table
    with sessions() as session:
        api_only = bucket_counts(session, HourlyRollup, START, START + 24 * HOUR, [ids["api"]])
        both = bucket_counts(session, HourlyRollup, START, START + 24 * HOUR, [ids["api"], ids["web-1"]])
        nothing = bucket_counts(session, HourlyRollup, START, START + 24 * HOUR, [])
        days = bucket_counts(session, DailyRollup, START, START + DAY, [ids["api"]])
    # Keys are aware UTC datetimes on both backends (a naive one would not compare equal).
    assert api_only == {(ids["api"], START): Counts(20, 0, 5), (ids["api"], START + HOUR): Counts(10, 2, 0)}
    assert both == {**api_only, (ids["web-1"], START): Counts(2, 0, 1)}
    assert nothing == {}
    assert days == {(ids["api"], START): Counts(99, 0, 0)}


def test_bucket_counts_for_many_monitors_in_chunks(db: PageDb, sessions: sessionmaker[Session]) -> None:
    """More ids than one IN (...) takes: every chunk is read (unknown ids find nothing)."""
    ids = db.ids()
    for name in ids:
        db.hourly(name, START, up=4)
    many = set(range(1, 1300)) | set(ids.values())
    with sessions() as session:
        counts = bucket_counts(session, HourlyRollup, START, START + HOUR, many)
    assert counts == {(monitor_id, START): Counts(4, 0, 0) for monitor_id in ids.values()}


def test_bucket_counts_from_raw_results_through_rollup(db: PageDb, sessions: sessionmaker[Session]) -> None:
    """The real path: raw results -> rollup() -> hourly and daily rows -> counts."""
    monitor_id = db.ids()["db"]
    statuses = ["up"] * 6 + ["degraded"] * 2 + ["down"] * 2  # one result every 10 minutes from 00:00
    rows = [
        {"monitor_id": monitor_id, "location": "default", "checked_at": START + i * timedelta(minutes=10), "status": s}
        for i, s in enumerate(statuses)
    ]
    with sessions() as session:
        insert_results(session, rows)
        rollup(session, START, START + DAY)
        session.commit()
        hours = bucket_counts(session, HourlyRollup, START, START + DAY, [monitor_id])
        days = bucket_counts(session, DailyRollup, START, START + DAY, [monitor_id])
    assert hours == {(monitor_id, START): Counts(6, 0, 0), (monitor_id, START + HOUR): Counts(4, 2, 2)}
    assert days == {(monitor_id, START): Counts(10, 2, 2)}


def test_counts_outside_maintenance_leave_out_the_covered_hours(db: PageDb, sessions: sessionmaker[Session]) -> None:
    ids = db.ids()
    for hour in range(6):
        db.hourly("api", START + hour * HOUR, up=10, down=10 if hour == 3 else 0)
        db.hourly("web-1", START + hour * HOUR, up=10, down=10 if hour == 2 else 0)
    db.hourly("api", START + 2 * HOUR, up=10, location="us-east")  # in maintenance too, wherever it was checked
    db.hourly("api", START + 6 * HOUR, up=0, down=50)  # after the six hours counted
    with sessions() as session:
        monitors, windows = refs_and_windows(session)
        counts = counts_outside_maintenance(
            session, model=HourlyRollup, start=START, step=HOUR, count=6, monitors=monitors, windows=windows
        )
    # api: 02:30-04:00 covers the hours starting 02:00 and 03:00; 00, 01, 04 and 05 are left.
    assert counts[ids["api"]] == Counts(40, 0, 0)
    assert counts[ids["web-1"]] == Counts(70, 0, 10)  # no window covers web-1: every hour counts
    assert ids["web-2"] not in counts  # no checks, no counts
    assert uptime_text(counts[ids["api"]]) == "100.00%"


def test_counts_outside_maintenance_by_day(db: PageDb, sessions: sessionmaker[Session]) -> None:
    ids = db.ids()
    for offset in range(3):
        day = START.date() + timedelta(days=offset)
        db.daily("db", day, up=90, down=10)
        db.daily("api", day, up=100)
    with sessions() as session:
        monitors, windows = refs_and_windows(session)
        counts = counts_outside_maintenance(
            session, model=DailyRollup, start=START, step=DAY, count=3, monitors=monitors, windows=windows
        )
        without_windows = counts_outside_maintenance(
            session, model=DailyRollup, start=START, step=DAY, count=3, monitors=monitors, windows=[]
        )
    # db's window at noon on the second day takes that whole day out; api's window takes out a day too.
    assert counts == {ids["db"]: Counts(200, 0, 20), ids["api"]: Counts(200, 0, 0)}
    assert without_windows == {ids["db"]: Counts(300, 0, 30), ids["api"]: Counts(300, 0, 0)}


def test_counts_outside_maintenance_when_a_window_misses_the_range(db: PageDb, sessions: sessionmaker[Session]) -> None:
    ids = db.ids()
    later = START + 2 * DAY  # both windows are over by then
    db.hourly("api", later, up=9, down=1)
    with sessions() as session:
        monitors, windows = refs_and_windows(session)
        counts = counts_outside_maintenance(
            session, model=HourlyRollup, start=later, step=HOUR, count=24, monitors=monitors, windows=windows
        )
    assert counts == {ids["api"]: Counts(10, 0, 1)}
