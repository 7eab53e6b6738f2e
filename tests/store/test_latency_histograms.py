"""The rollups' latency histograms: filled by the SQL that rolls raw results up, summed from hourly into
daily, zeros (percentiles unknown) for rows rolled up before migration 0011; on SQLite and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.domain.latency import P50, P95, Histogram, quantile
from spectra.store import (
    DailyRollup,
    HourlyRollup,
    current_revision,
    downgrade,
    head_revision,
    insert_results,
    rollup,
    upgrade,
)
from spectra.store.results import HISTOGRAM_COLUMNS, LATENCY_BOUNDS_MS
from tests.factories.store import NOW, MonitorFactory

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
DAY1 = datetime(2024, 5, 1, tzinfo=UTC)

# Latencies of one hour, bounds included: 5 and 10 are "<= 5" and "<= 10"; 10000.5 is only +Inf; None is
# a check without a latency (a failed connect), counted nowhere.
HOUR_10: list[float | None] = [3.0, 5.0, 10.0, 10.5, 99.0, 100.0, 2400.0, 10000.0, 10000.5, None]
HOUR_11: list[float | None] = [7.0, 40.0]


def counters(session: Session, model: type[HourlyRollup | DailyRollup], monitor_id: int, start: datetime) -> Any:
    table = model.__table__
    return session.execute(
        sa.select(*(table.c[name] for name in HISTOGRAM_COLUMNS), table.c.latency_count, table.c.latency_max_ms).where(
            table.c.monitor_id == monitor_id, table.c.location == "eu", table.c.bucket_start == start
        )
    ).one()


def cumulative(values: list[float | None]) -> list[int]:
    measured = [v for v in values if v is not None]
    return [sum(1 for v in measured if v <= bound) for bound in LATENCY_BOUNDS_MS] + [len(measured)]


def test_rollup_fills_cumulative_buckets_and_days_sum_hours(session: Session, make_monitor: MonitorFactory) -> None:
    monitor_id = make_monitor("web").resource_id
    rows = [
        {"monitor_id": monitor_id, "location": "eu", "checked_at": T0 + timedelta(minutes=5 * k), "status": "up",
         "latency_ms": latency}
        for k, latency in enumerate(HOUR_10)
    ] + [
        {"monitor_id": monitor_id, "location": "eu", "checked_at": T0 + timedelta(hours=1, minutes=k), "status": "up",
         "latency_ms": latency}
        for k, latency in enumerate(HOUR_11)
    ]  # fmt: skip
    insert_results(session, rows)
    rollup(session, T0, T0 + timedelta(hours=2))
    session.commit()

    hour10 = counters(session, HourlyRollup, monitor_id, T0)
    assert list(hour10[: len(HISTOGRAM_COLUMNS)]) == cumulative(HOUR_10)
    assert list(hour10[: len(HISTOGRAM_COLUMNS)]) == [2, 3, 4, 4, 6, 6, 6, 6, 7, 7, 8, 9]
    assert hour10.latency_le_inf == hour10.latency_count == 9
    hour11 = counters(session, HourlyRollup, monitor_id, T0 + timedelta(hours=1))
    assert list(hour11[: len(HISTOGRAM_COLUMNS)]) == cumulative(HOUR_11)
    day = counters(session, DailyRollup, monitor_id, DAY1)
    assert list(day[: len(HISTOGRAM_COLUMNS)]) == cumulative(HOUR_10 + HOUR_11)

    # From the stored row to the percentiles the console shows.
    histogram = Histogram.of_row(hour10._mapping)
    # rank 4.5 of 9 falls in (50, 100], which holds the 5th and 6th: 50 + 50 * (4.5 - 4) / 2
    assert quantile(P50, histogram, max_ms=hour10.latency_max_ms) == 62.5
    assert quantile(P95, histogram, max_ms=hour10.latency_max_ms) == 10000.0

    # Rolling up again gives the same counters.
    rollup(session, T0, T0 + timedelta(hours=2))
    session.commit()
    assert list(counters(session, DailyRollup, monitor_id, DAY1)[: len(HISTOGRAM_COLUMNS)]) == cumulative(
        HOUR_10 + HOUR_11
    )


def test_rows_from_before_0011_get_zeros_and_unknown_percentiles(
    engine: sa.Engine, sessions: sessionmaker[Session]
) -> None:
    downgrade(engine, "0010")
    assert current_revision(engine) == "0010"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO resources (id, kind, namespace, name, generation, spec, labels, spec_hash, source,"
                " created_at, updated_at) VALUES (7, 'Monitor', 'default', 'm', 1, '{}', '{}', 'h', 'manifests',"
                " '2024-05-01 12:00:00', '2024-05-01 12:00:00')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO monitors (resource_id, namespace, name, type, target, interval_ms, timeout_ms, paused,"
                " quorum, failure_threshold, success_threshold, severity, labels)"
                " VALUES (7, 'default', 'm', 'tcp', 'h:1', 1000, 500, 0, 1, 1, 1, 'critical', '{}')"
            )
        )
        conn.execute(
            sa.insert(sa.table(
                "check_rollups_hourly", *(sa.column(n) for n in (
                    "monitor_id", "location", "bucket_start", "checks_total", "checks_up", "checks_degraded",
                    "checks_down", "latency_count", "latency_sum_ms", "latency_max_ms"))
            )),
            {"monitor_id": 7, "location": "eu", "bucket_start": NOW.replace(tzinfo=None, minute=0, second=0,
             microsecond=0), "checks_total": 60, "checks_up": 60, "checks_degraded": 0, "checks_down": 0,
             "latency_count": 60, "latency_sum_ms": 600.0, "latency_max_ms": 20.0},
        )  # fmt: skip
    upgrade(engine, "0011")
    indexes = {index["name"] for index in sa.inspect(engine).get_indexes("monitor_states")}
    assert "ix_monitor_states_changed_at" in indexes  # until 0012 indexes state_stored_at instead
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with sessions() as session:
        row = session.execute(sa.select(HourlyRollup)).scalar_one()
        assert (row.latency_count, row.latency_sum_ms) == (60, 600.0)
        assert [getattr(row, name) for name in HISTOGRAM_COLUMNS] == [0] * len(HISTOGRAM_COLUMNS)
        assert quantile(P50, Histogram.of([getattr(row, n) for n in HISTOGRAM_COLUMNS]), max_ms=20.0) is None
        source_file = session.execute(sa.text("SELECT source_file FROM resources")).scalar_one()
        assert source_file is None
