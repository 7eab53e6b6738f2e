"""Check results: raw rows, hourly and daily rollups, retention."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    Connection,
    Double,
    ForeignKey,
    Index,
    Integer,
    RowMapping,
    Select,
    String,
    Table,
    case,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.config import LOCATION_LEN
from spectra.store.types import BigIntPK, JSONType, UTCDateTime
from spectra.store.upsert import Executor, connection_of, upsert


class CheckStatus(enum.StrEnum):
    """Outcome of one check, stored as its lowercase name (readable in SQL, CHECK-constrained)."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


_STATUS_CHECK: Final = "status IN ('up', 'degraded', 'down')"
REASON_LEN: Final = 500

# The latency histogram of each rollup bucket, Prometheus-style: cumulative counters of the latencies
# at or below each upper bound (ms; the Prometheus client's default buckets, 5 ms to 10 s), and +Inf,
# the number of latencies the histogram counted. Rows rolled up before migration 0011 hold zeros: their
# +Inf is 0 while latency_count is not, and their percentiles are unknown (spectra.domain.latency).
LATENCY_BOUNDS_MS: Final[tuple[int, ...]] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
LATENCY_LE_COLUMNS: Final[tuple[str, ...]] = tuple(f"latency_le_{bound}_ms" for bound in LATENCY_BOUNDS_MS)
LATENCY_INF_COLUMN: Final = "latency_le_inf"
HISTOGRAM_COLUMNS: Final[tuple[str, ...]] = (*LATENCY_LE_COLUMNS, LATENCY_INF_COLUMN)


class CheckResult(Base):
    """One check of one monitor from one location (raw; pruned by RetentionPolicy.raw)."""

    __tablename__ = "check_results"
    __table_args__ = (
        Index(None, "monitor_id", "checked_at"),
        Index(None, "checked_at"),  # retention and rollup scan by time across monitors
        CheckConstraint(_STATUS_CHECK, name="status"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("monitors.resource_id", ondelete="CASCADE"))
    location: Mapped[str] = mapped_column(String(LOCATION_LEN))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    latency_ms: Mapped[float | None] = mapped_column(Double)
    reason: Mapped[str] = mapped_column(String(REASON_LEN), default="")
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # The slot's due time (probe scheduler): at most one result per (monitor, location, slot).
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


_ZERO: Final = text("0")


class _RollupColumns:
    """Columns shared by both rollup tables; one row per (monitor, location, bucket)."""

    monitor_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("monitors.resource_id", ondelete="CASCADE"), primary_key=True
    )
    location: Mapped[str] = mapped_column(String(LOCATION_LEN), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    checks_total: Mapped[int] = mapped_column(Integer)
    checks_up: Mapped[int] = mapped_column(Integer)
    checks_degraded: Mapped[int] = mapped_column(Integer)
    checks_down: Mapped[int] = mapped_column(Integer)
    # Checks that reported a latency (failed connects may not): the divisor for a mean latency.
    latency_count: Mapped[int] = mapped_column(Integer)
    latency_sum_ms: Mapped[float] = mapped_column(Double)
    latency_max_ms: Mapped[float | None] = mapped_column(Double)
    # The histogram (LATENCY_BOUNDS_MS): latencies <= each bound, cumulative; latency_le_inf counts them all.
    latency_le_5_ms: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)
    latency_le_10_ms: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)
    latency_le_25_ms: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)
    latency_le_50_ms: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)
    latency_le_100_ms: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)
    latency_le_250_ms: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)
    latency_le_500_ms: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)
    latency_le_1000_ms: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)
    latency_le_2500_ms: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)
    latency_le_5000_ms: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)
    latency_le_10000_ms: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)
    latency_le_inf: Mapped[int] = mapped_column(Integer, server_default=_ZERO, default=0)


class HourlyRollup(_RollupColumns, Base):
    """Per-hour counts (UTC hours); pruned by RetentionPolicy.hourly."""

    __tablename__ = "check_rollups_hourly"
    __table_args__ = (Index(None, "bucket_start"), MYSQL_TABLE_OPTIONS)


class DailyRollup(_RollupColumns, Base):
    """Per-day counts (UTC days), summed from the hourly rollups; what status pages read."""

    __tablename__ = "check_rollups_daily"
    __table_args__ = (Index(None, "bucket_start"), MYSQL_TABLE_OPTIONS)


CHECK_RESULTS: Final = CheckResult.__table__
HOURLY: Final = HourlyRollup.__table__
DAILY: Final = DailyRollup.__table__
_ROLLUP_KEY: Final = ("monitor_id", "location", "bucket_start")
ROLLUP_CHUNK: Final = 500  # rollup buckets read and upserted at a time
_RESULT_DEFAULTS: Final[dict[str, Any]] = {"latency_ms": None, "reason": "", "details": None, "scheduled_at": None}


def insert_results(session: Executor, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert a batch of results with one executemany; returns the number of rows.

    Each row needs ``monitor_id``, ``location``, ``checked_at`` (aware) and ``status``; ``latency_ms``,
    ``reason``, ``details`` and ``scheduled_at`` are optional.
    """
    if not rows:
        return 0
    # executemany takes its column list from the first row, so every row gets the same keys.
    params = [{**_RESULT_DEFAULTS, **row} for row in rows]
    for row in params:
        row["reason"] = (row["reason"] or "")[:REASON_LEN]  # a long error text must not fail the batch
    connection_of(session).execute(insert(CHECK_RESULTS), params)
    return len(params)


@dataclass(frozen=True)
class RollupCounts:
    hourly: int
    daily: int


def rollup(session: Executor, since: datetime, until: datetime) -> RollupCounts:
    """(Re)compute the hourly and daily buckets overlapping [since, until) from stored rows.

    Buckets are always recomputed whole (the range is widened to full hours, then full days), so
    running it again, or over overlapping ranges, gives the same numbers; late results are picked
    up by running it again. Buckets without raw rows are left alone, so re-running over a pruned
    range keeps the history. Returns how many buckets were written.
    """
    _require_aware(since, until)
    if until <= since:
        raise ValueError(f"empty range: since={since.isoformat()} until={until.isoformat()}")
    conn = connection_of(session)
    hour_start, hour_end = _floor(since, "hour"), _ceil(until, "hour")
    hourly = _upsert_in_chunks(conn, HOURLY, _hourly_from_raw(conn, hour_start, hour_end))
    # Days are summed from all their hourly buckets, not only the ones recomputed just now.
    return RollupCounts(hourly=hourly, daily=rollup_days(conn, hour_start, hour_end))


def rollup_days(session: Executor, since: datetime, until: datetime) -> int:
    """(Re)compute the daily buckets of the UTC days overlapping [since, until) from their hourly buckets
    (each day whole); what `rollup` does after the hours, and what loading hourly rollups from elsewhere
    needs. Returns how many daily buckets were written."""
    _require_aware(since, until)
    conn = connection_of(session)
    return _upsert_in_chunks(conn, DAILY, _daily_from_hourly(conn, _floor(since, "day"), _ceil(until, "day")))


def _upsert_in_chunks(conn: Connection, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    """Upsert the buckets ROLLUP_CHUNK at a time as they are read; returns how many. At 10,000 monitors
    a pass has 10,000-20,000 buckets of 22 columns: built all at once, they cost `spectra run` tens of
    megabytes of heap that the allocator keeps after the pass."""
    count = 0
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == ROLLUP_CHUNK:
            upsert(conn, table, chunk, key=_ROLLUP_KEY)
            count += len(chunk)
            chunk = []
    if chunk:
        upsert(conn, table, chunk, key=_ROLLUP_KEY)
        count += len(chunk)
    return count


def _hourly_from_raw(conn: Connection, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    c = CHECK_RESULTS.c
    bucket = _truncate(conn.dialect.name, c.checked_at, "hour").label("bucket_start")

    def count_of(status: CheckStatus) -> ColumnElement[Any]:
        return func.sum(case((c.status == status.value, 1), else_=0))

    stmt = (
        select(
            c.monitor_id,
            c.location,
            bucket,
            func.count().label("checks_total"),
            count_of(CheckStatus.UP).label("checks_up"),
            count_of(CheckStatus.DEGRADED).label("checks_degraded"),
            count_of(CheckStatus.DOWN).label("checks_down"),
            func.count(c.latency_ms).label("latency_count"),
            func.sum(c.latency_ms).label("latency_sum_ms"),
            func.max(c.latency_ms).label("latency_max_ms"),
            *(
                func.sum(case((c.latency_ms <= bound, 1), else_=0)).label(name)
                for bound, name in zip(LATENCY_BOUNDS_MS, LATENCY_LE_COLUMNS, strict=True)
            ),
            func.sum(case((c.latency_ms.is_not(None), 1), else_=0)).label(LATENCY_INF_COLUMN),
        )
        .where(c.checked_at >= start, c.checked_at < end)
        .group_by(c.monitor_id, c.location, bucket)
    )
    return _bucket_rows(conn, stmt)


def _daily_from_hourly(conn: Connection, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    h = HOURLY.c
    bucket = _truncate(conn.dialect.name, h.bucket_start, "day").label("bucket_start")
    summed = (
        "checks_total",
        "checks_up",
        "checks_degraded",
        "checks_down",
        "latency_count",
        "latency_sum_ms",
        *HISTOGRAM_COLUMNS,
    )
    stmt = (
        select(
            h.monitor_id,
            h.location,
            bucket,
            *(func.sum(h[name]).label(name) for name in summed),
            func.max(h.latency_max_ms).label("latency_max_ms"),
        )
        .where(h.bucket_start >= start, h.bucket_start < end)
        .group_by(h.monitor_id, h.location, bucket)
    )
    return _bucket_rows(conn, stmt)


def _bucket_rows(conn: Connection, stmt: Select[Any]) -> Iterator[dict[str, Any]]:
    """The buckets of `stmt`, fetched ROLLUP_CHUNK rows at a time (the upserts of the ones before run
    on the same connection meanwhile: they write another table than the one read)."""
    for part in conn.execute(stmt).mappings().partitions(ROLLUP_CHUNK):
        yield from map(_bucket_row, part)


def _bucket_row(row: RowMapping) -> dict[str, Any]:
    # MySQL's SUM() yields DECIMAL; normalise so both databases hand back the same Python types.
    out = {key: row[key] for key in _ROLLUP_KEY}
    for key in ("checks_total", "checks_up", "checks_degraded", "checks_down", "latency_count", *HISTOGRAM_COLUMNS):
        out[key] = int(row[key] or 0)
    out["latency_sum_ms"] = float(row["latency_sum_ms"] or 0.0)
    out["latency_max_ms"] = None if row["latency_max_ms"] is None else float(row["latency_max_ms"])
    return out


def _truncate(
    dialect_name: str, column: ColumnElement[datetime], unit: Literal["hour", "day"]
) -> ColumnElement[datetime]:
    """The start of the UTC hour or day ``column`` falls in, computed in SQL."""
    if dialect_name == "sqlite":
        # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text; keep that format.
        fmt = "%Y-%m-%d %H:00:00.000000" if unit == "hour" else "%Y-%m-%d 00:00:00.000000"
        return type_coerce(func.strftime(fmt, column), UTCDateTime)
    fmt = "%Y-%m-%d %H:00:00" if unit == "hour" else "%Y-%m-%d 00:00:00"
    return type_coerce(cast(func.date_format(column, fmt), mysql.DATETIME(fsp=6)), UTCDateTime)


_UNITS: Final = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def _floor(value: datetime, unit: Literal["hour", "day"]) -> datetime:
    value = value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return value.replace(hour=0) if unit == "day" else value


def _ceil(value: datetime, unit: Literal["hour", "day"]) -> datetime:
    floor = _floor(value, unit)
    return floor if floor == value else floor + _UNITS[unit]


def _require_aware(*values: datetime) -> None:
    for value in values:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware datetime")


@dataclass(frozen=True)
class PruneCounts:
    raw: int
    hourly: int
    daily: int = 0


def prune_results(session: Executor, *, raw_before: datetime, hourly_before: datetime) -> PruneCounts:
    """Delete raw results and hourly rollups older than the cutoffs; daily rollups are kept.

    Cutoffs are rounded down to whole hours (raw) and days (hourly) so no bucket is ever left
    half-pruned: re-running :func:`rollup` over an old range then finds all of a bucket's rows or
    none (and keeps the bucket). Run :func:`rollup` over the range first. Meant to run often (e.g.
    hourly) so each call deletes a small slice instead of locking a big table for long.
    """
    _require_aware(raw_before, hourly_before)
    raw_before, hourly_before = _floor(raw_before, "hour"), _floor(hourly_before, "day")
    conn = connection_of(session)
    raw = conn.execute(delete(CHECK_RESULTS).where(CHECK_RESULTS.c.checked_at < raw_before)).rowcount
    hourly = conn.execute(delete(HOURLY).where(HOURLY.c.bucket_start < hourly_before)).rowcount
    return PruneCounts(raw=raw, hourly=hourly)


def prune_daily(session: Executor, *, before: datetime) -> int:
    """Delete daily rollups of days that start before ``before`` (rounded down to a whole day)."""
    _require_aware(before)
    cutoff = _floor(before, "day")
    return connection_of(session).execute(delete(DAILY).where(DAILY.c.bucket_start < cutoff)).rowcount


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each resolution is kept.

    Raw rows serve incident investigation and the last-check view (a week); hourly rollups serve
    24 h / 30 d uptime and latency charts with room to spare (90 days); daily rollups serve status
    pages, whose default history is 90 days and which may show up to a year (400 days).
    """

    raw: timedelta = timedelta(days=7)
    hourly: timedelta = timedelta(days=90)
    daily: timedelta = timedelta(days=400)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.raw <= self.hourly <= self.daily:
            raise ValueError("retention must be positive and raw <= hourly <= daily")

    def apply(self, session: Executor, now: datetime) -> PruneCounts:
        """Prune every resolution to this policy as of ``now``."""
        counts = prune_results(session, raw_before=now - self.raw, hourly_before=now - self.hourly)
        daily = prune_daily(session, before=now - self.daily)
        return PruneCounts(raw=counts.raw, hourly=counts.hourly, daily=daily)
