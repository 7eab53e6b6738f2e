"""Raw results, hourly/daily rollups and retention, on SQLite and MariaDB."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import (
    CheckResult,
    CheckStatus,
    DailyRollup,
    HourlyRollup,
    PruneCounts,
    RetentionPolicy,
    RollupCounts,
    insert_results,
    prune_daily,
    prune_results,
    rollup,
)
from tests.factories.store import MonitorFactory

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
DAY1, DAY2 = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)

# (monitor, location, seconds after T0, status, latency_ms)
RAW: list[tuple[str, str, float, str, float | None]] = [
    ("a", "eu", 0, "up", 100.0),
    ("a", "eu", 20 * 60, "up", 300.0),
    ("a", "eu", 40 * 60, "down", None),  # connect failed: no latency
    ("a", "eu", 3600 - 1e-6, "degraded", 500.0),  # last microsecond of the hour
    ("a", "eu", 3600, "up", 50.0),  # first instant of the next hour
    ("a", "us", 30 * 60, "down", None),
    ("a", "eu", 14 * 3600 + 600, "up", 10.0),  # 2024-05-02 00:10: the next day
    ("b", "eu", 5 * 60, "up", 7.5),
]
END = T0 + timedelta(hours=15)


def hour(h: int) -> datetime:
    return DAY1 + timedelta(hours=h)


# (monitor, location, bucket) -> (total, up, degraded, down, latency_count, latency_sum, latency_max)
HOURLY_EXPECTED = [
    ("a", "eu", hour(10), (4, 2, 1, 1, 3, 900.0, 500.0)),
    ("a", "eu", hour(11), (1, 1, 0, 0, 1, 50.0, 50.0)),
    ("a", "us", hour(10), (1, 0, 0, 1, 0, 0.0, None)),
    ("a", "eu", DAY2, (1, 1, 0, 0, 1, 10.0, 10.0)),
    ("b", "eu", hour(10), (1, 1, 0, 0, 1, 7.5, 7.5)),
]
DAILY_EXPECTED = [
    ("a", "eu", DAY1, (5, 3, 1, 1, 4, 950.0, 500.0)),
    ("a", "us", DAY1, (1, 0, 0, 1, 0, 0.0, None)),
    ("a", "eu", DAY2, (1, 1, 0, 0, 1, 10.0, 10.0)),
    ("b", "eu", DAY1, (1, 1, 0, 0, 1, 7.5, 7.5)),
]


@pytest.fixture
def monitors(make_monitor: MonitorFactory) -> dict[str, int]:
    return {key: make_monitor(f"web-{key}").resource_id for key in ("a", "b")}


def result_rows(
    monitors: dict[str, int], raw: Sequence[tuple[str, str, float, str, float | None]] = RAW
) -> list[dict[str, Any]]:
    return [
        {
            "monitor_id": monitors[key],
            "location": location,
            "checked_at": T0 + timedelta(seconds=offset),
            "status": status,
            "latency_ms": latency,
        }
        for key, location, offset, status, latency in raw
    ]


def bucket(
    session: Session, model: type[HourlyRollup | DailyRollup], monitor_id: int, location: str, start: datetime
) -> tuple[Any, ...] | None:
    row = session.get(model, (monitor_id, location, start))
    if row is None:
        return None
    assert isinstance(row, HourlyRollup | DailyRollup)
    session.refresh(row)
    return (
        row.checks_total,
        row.checks_up,
        row.checks_degraded,
        row.checks_down,
        row.latency_count,
        row.latency_sum_ms,
        row.latency_max_ms,
    )


def snapshot(session: Session) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for model in (HourlyRollup, DailyRollup):
        table = model.__table__
        rows += [(model.__name__, *row) for row in session.execute(sa.select(table).order_by(*table.primary_key))]
    return rows


@pytest.fixture
def rolled_up(session: Session, monitors: dict[str, int]) -> dict[str, int]:
    insert_results(session, result_rows(monitors))
    rollup(session, T0, END)
    session.commit()
    return monitors


@pytest.mark.parametrize(("monitor", "location", "start", "expected"), HOURLY_EXPECTED)
def test_hourly_buckets(
    session: Session, rolled_up: dict[str, int], monitor: str, location: str, start: datetime, expected: tuple[Any, ...]
) -> None:
    assert bucket(session, HourlyRollup, rolled_up[monitor], location, start) == expected


@pytest.mark.parametrize(("monitor", "location", "start", "expected"), DAILY_EXPECTED)
def test_daily_buckets(
    session: Session, rolled_up: dict[str, int], monitor: str, location: str, start: datetime, expected: tuple[Any, ...]
) -> None:
    assert bucket(session, DailyRollup, rolled_up[monitor], location, start) == expected


def test_bucket_starts_come_back_as_aware_utc(session: Session, rolled_up: dict[str, int]) -> None:
    starts = session.scalars(sa.select(HourlyRollup.bucket_start).distinct()).all()
    assert sorted(starts) == [hour(10), hour(11), DAY2]
    assert all(start.tzinfo is UTC for start in starts)


def test_rollup_reports_what_it_wrote(session: Session, monitors: dict[str, int]) -> None:
    insert_results(session, result_rows(monitors))
    assert rollup(session, T0, END) == RollupCounts(hourly=len(HOURLY_EXPECTED), daily=len(DAILY_EXPECTED))
    assert rollup(session, T0 - timedelta(days=3), T0 - timedelta(days=2)) == RollupCounts(hourly=0, daily=0)


def test_rollup_twice_is_idempotent(session: Session, rolled_up: dict[str, int]) -> None:
    first = snapshot(session)
    rollup(session, T0, END)
    session.commit()
    assert snapshot(session) == first
    assert len(first) == len(HOURLY_EXPECTED) + len(DAILY_EXPECTED)


def test_overlapping_partial_ranges_give_the_same_buckets(
    session: Session, rolled_up: dict[str, int], database_url: str
) -> None:
    expected = snapshot(session)
    session.execute(sa.delete(HourlyRollup))
    session.execute(sa.delete(DailyRollup))
    # Mid-hour edges: each call widens to whole hours, so no bucket ends up counted partially.
    rollup(session, T0 + timedelta(minutes=45), T0 + timedelta(minutes=50))
    rollup(session, T0 + timedelta(minutes=10), T0 + timedelta(hours=1, minutes=1))
    rollup(session, T0 + timedelta(hours=13), END)
    session.commit()
    assert snapshot(session) == expected


def test_daily_sums_every_hour_of_the_day_not_just_the_recomputed_one(
    session: Session, monitors: dict[str, int]
) -> None:
    insert_results(session, result_rows(monitors))
    rollup(session, hour(10), hour(11))
    rollup(session, hour(11), hour(12))  # the day is recomputed from hours 10 and 11
    assert bucket(session, DailyRollup, monitors["a"], "eu", DAY1) == DAILY_EXPECTED[0][3]


def test_late_results_are_picked_up_by_running_again(session: Session, rolled_up: dict[str, int]) -> None:
    late = T0 + timedelta(minutes=10)
    insert_results(
        session,
        [{"monitor_id": rolled_up["a"], "location": "eu", "checked_at": late, "status": "down", "latency_ms": 1000.0}],
    )
    rollup(session, late, late + timedelta(seconds=1))
    assert bucket(session, HourlyRollup, rolled_up["a"], "eu", hour(10)) == (5, 2, 1, 2, 4, 1900.0, 1000.0)
    assert bucket(session, DailyRollup, rolled_up["a"], "eu", DAY1) == (6, 3, 1, 2, 5, 1950.0, 1000.0)


def test_insert_results_is_one_executemany(engine: sa.Engine, session: Session, monitors: dict[str, int]) -> None:
    rows = [
        {"monitor_id": monitors["a"], "location": "eu", "checked_at": T0 + timedelta(seconds=i), "status": "up"}
        for i in range(500)
    ]
    statements: list[tuple[str, bool]] = []

    def record(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, executemany: bool) -> None:
        statements.append((statement, executemany))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert insert_results(session, rows) == 500
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)

    inserts = [(sql, many) for sql, many in statements if sql.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1
    assert inserts[0][1] is True
    assert session.scalar(sa.select(sa.func.count()).select_from(CheckResult)) == 500


def test_insert_results_fills_optional_columns(session: Session, monitors: dict[str, int]) -> None:
    insert_results(
        session,
        [
            {"monitor_id": monitors["a"], "location": "eu", "checked_at": T0, "status": "up"},
            {
                "monitor_id": monitors["a"],
                "location": "eu",
                "checked_at": T0 + timedelta(seconds=30),
                "status": "down",
                "latency_ms": 12.5,
                "reason": "x" * 600,  # truncated rather than failing the whole batch
                "details": {"status_code": 503},
            },
        ],
    )
    first, second = session.scalars(sa.select(CheckResult).order_by(CheckResult.checked_at)).all()
    assert (first.latency_ms, first.reason, first.details) == (None, "", None)
    assert (second.latency_ms, len(second.reason), second.details) == (12.5, 500, {"status_code": 503})
    assert insert_results(session, []) == 0


def test_status_enum_members_are_accepted(session: Session, monitors: dict[str, int]) -> None:
    insert_results(
        session,
        [{"monitor_id": monitors["a"], "location": "eu", "checked_at": T0, "status": status} for status in CheckStatus],
    )
    stored = session.scalars(sa.select(CheckResult.status).order_by(CheckResult.id)).all()
    assert stored == ["up", "degraded", "down"]


def test_unknown_status_is_refused(session: Session, monitors: dict[str, int]) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        insert_results(
            session, [{"monitor_id": monitors["a"], "location": "eu", "checked_at": T0, "status": "sideways"}]
        )


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        (datetime(2024, 5, 1, 10), END, "naive"),
        (T0, T0, "empty range"),
        (END, T0, "empty range"),
    ],
)
def test_rollup_refuses_bad_ranges(session: Session, since: datetime, until: datetime, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rollup(session, since, until)


def test_prune_removes_only_old_rows(session: Session, rolled_up: dict[str, int]) -> None:
    # Cutoffs round down: raw to 11:00 (keeps the whole 11:00 hour), hourly to the start of day 2.
    counts = prune_results(
        session, raw_before=hour(11) + timedelta(minutes=30), hourly_before=DAY2 + timedelta(hours=5)
    )

    assert counts == PruneCounts(raw=6, hourly=4)  # the six 10:xx results; the four day-1 buckets
    remaining = session.scalars(sa.select(CheckResult.checked_at).order_by(CheckResult.checked_at)).all()
    assert remaining == [hour(11), DAY2 + timedelta(minutes=10)]
    assert session.scalars(sa.select(HourlyRollup.bucket_start)).all() == [DAY2]
    assert session.scalar(sa.select(sa.func.count()).select_from(DailyRollup)) == len(DAILY_EXPECTED)


def test_rollup_over_a_pruned_range_keeps_history(session: Session, rolled_up: dict[str, int]) -> None:
    before = snapshot(session)
    prune_results(session, raw_before=hour(11), hourly_before=DAY1)
    rollup(session, T0, END)
    assert snapshot(session) == before


def test_prune_daily(session: Session, rolled_up: dict[str, int]) -> None:
    assert prune_daily(session, before=DAY2 + timedelta(hours=12)) == 3
    assert session.scalars(sa.select(DailyRollup.bucket_start)).all() == [DAY2]


def test_retention_policy_defaults_and_apply(session: Session, rolled_up: dict[str, int]) -> None:
    policy = RetentionPolicy()
    assert (policy.raw, policy.hourly, policy.daily) == (timedelta(days=7), timedelta(days=90), timedelta(days=400))

    assert policy.apply(session, now=DAY2 + timedelta(days=1)) == PruneCounts(raw=0, hourly=0, daily=0)
    # 8 days later the raw rows are past 7 days but the rollups are well within their retention.
    assert policy.apply(session, now=DAY2 + timedelta(days=8, hours=1)) == PruneCounts(raw=8, hourly=0, daily=0)
    assert policy.apply(session, now=DAY2 + timedelta(days=500)) == PruneCounts(raw=0, hourly=5, daily=4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"raw": timedelta(0)},
        {"raw": timedelta(days=10), "hourly": timedelta(days=5)},
        {"hourly": timedelta(days=500)},
    ],
)
def test_retention_policy_must_be_ordered(kwargs: dict[str, timedelta]) -> None:
    with pytest.raises(ValueError, match="retention"):
        RetentionPolicy(**kwargs)
