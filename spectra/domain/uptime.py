"""Uptime from the hourly and daily rollups: one weighting, one way to leave maintenance out.

Weighting: every check counts; a ``down`` check counts as a full outage and a ``degraded`` check as
half of one ("partial outage"): ``uptime = 100 * (1 - (down + degraded / 2) / total)``. Checks of all
locations are summed, so a figure over several monitors or locations is their mean weighted by how
often each checks. Maintenance: a bucket (hour or day) that a window covering the monitor overlaps is
left out of that monitor's counts (:func:`spectra.domain.maintenance.maintenance_buckets`).

Status pages show daily bars and the operator writes ``uptime24h`` / ``uptime30d`` into `.status`;
both count with this module.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from spectra.domain.maintenance import WindowDef, maintenance_buckets
from spectra.domain.monitors import MonitorRef
from spectra.store import DailyRollup, HourlyRollup

DAY: Final = timedelta(days=1)
_IN_CLAUSE_CHUNK: Final = 500
_IN_LIMIT: Final = 500  # above this many ids, read every row instead of naming them in IN (...)

Rollup = type[HourlyRollup] | type[DailyRollup]


@dataclass(frozen=True)
class Counts:
    total: int = 0
    degraded: int = 0
    down: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.total + other.total, self.degraded + other.degraded, self.down + other.down)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.total - other.total, self.degraded - other.degraded, self.down - other.down)

    @property
    def outage_share(self) -> float:
        """Weighted share of outage (0..1): down counts fully, degraded half."""
        return (self.down + self.degraded / 2) / self.total if self.total else 0.0


def uptime_text(counts: Counts | None) -> str | None:
    """``"99.95%"`` (two decimals; never ``100.00%`` when anything failed), None without checks."""
    if counts is None or counts.total <= 0:
        return None
    share = counts.outage_share
    text = f"{100 * (1 - share):.2f}"
    if text == "100.00" and share > 0:
        text = "99.99"
    return f"{text}%"


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _sums(model: Rollup) -> tuple[Any, Any, Any]:
    return func.sum(model.checks_total), func.sum(model.checks_degraded), func.sum(model.checks_down)


def _counts(total: int | None, degraded: int | None, down: int | None) -> Counts:
    return Counts(int(total or 0), int(degraded or 0), int(down or 0))


def bucket_counts(
    session: Session, model: Rollup, start: datetime, end: datetime, monitor_ids: Collection[int]
) -> dict[tuple[int, datetime], Counts]:
    """Checks per (monitor, bucket start) in ``[start, end)``, summed over locations (one query per 500 monitors)."""
    ids = sorted(set(monitor_ids))
    out: dict[tuple[int, datetime], Counts] = {}
    for offset in range(0, len(ids), _IN_CLAUSE_CHUNK):
        stmt = (
            select(model.monitor_id, model.bucket_start, *_sums(model))
            .where(
                model.monitor_id.in_(ids[offset : offset + _IN_CLAUSE_CHUNK]),
                model.bucket_start >= start,
                model.bucket_start < end,
            )
            .group_by(model.monitor_id, model.bucket_start)
        )
        for monitor_id, bucket, total, degraded, down in session.execute(stmt):
            out[(monitor_id, bucket)] = _counts(total, degraded, down)
    return out


def counts_outside_maintenance(
    session: Session,
    *,
    model: Rollup,
    start: datetime,
    step: timedelta,
    count: int,
    monitors: Sequence[MonitorRef],
    windows: Sequence[WindowDef],
) -> dict[int, Counts]:
    """Checks per monitor over ``count`` buckets of ``step`` from ``start``, less buckets in maintenance.

    One grouped query over every monitor; one more only when some maintenance bucket has to be taken out.
    """
    end = start + count * step
    in_range = (model.bucket_start >= start, model.bucket_start < end)
    totals = {
        monitor_id: _counts(total, degraded, down)
        for monitor_id, total, degraded, down in session.execute(
            select(model.monitor_id, *_sums(model)).where(*in_range).group_by(model.monitor_id)
        )
    }
    excluded = maintenance_buckets(windows, [m for m in monitors if m.id in totals], start, end, step)
    if not excluded:
        return totals
    stmt = select(model.monitor_id, model.bucket_start, *_sums(model)).where(
        *in_range, model.bucket_start.in_(sorted(set().union(*excluded.values())))
    )
    if len(excluded) <= _IN_LIMIT:
        stmt = stmt.where(model.monitor_id.in_(sorted(excluded)))
    for monitor_id, bucket, total, degraded, down in session.execute(
        stmt.group_by(model.monitor_id, model.bucket_start)
    ):
        if bucket in excluded.get(monitor_id, ()):
            totals[monitor_id] = totals[monitor_id] - _counts(total, degraded, down)
    return totals
