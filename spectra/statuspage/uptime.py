"""Per-component uptime by UTC day, from the daily rollups of the component's monitors.

Weighting: every check counts; a ``down`` check counts as a full outage and a ``degraded`` check as
half of one ("partial outage"): ``uptime = 100 * (1 - (down + degraded / 2) / total)``. Checks of
all the component's monitors and all their locations are summed, so the figure is the mean over
monitors and locations weighted by how often each checks.

Maintenance: for each monitor, a day that any maintenance window covering the monitor overlaps is
left out of that monitor's counts (the day's bar says ``maintenance``). A day whose counts are all
left out, or that has no checks, has ``uptime`` None; so does the whole window without any counts.

``down_minutes`` estimates the outage time of a day from the same weighted share:
``share * minutes of the day`` (the elapsed minutes for today), rounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from spectra.alerting.maintenance import WindowDef
from spectra.statuspage.model import DayBar
from spectra.statuspage.state import MonitorRef
from spectra.store import DailyRollup

DAY = timedelta(days=1)
_IN_CLAUSE_CHUNK = 500


@dataclass(frozen=True)
class Counts:
    total: int = 0
    degraded: int = 0
    down: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.total + other.total, self.degraded + other.degraded, self.down + other.down)

    @property
    def outage_share(self) -> float:
        """Weighted share of outage (0..1): down counts fully, degraded half."""
        return (self.down + self.degraded / 2) / self.total if self.total else 0.0


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def history_days(now: datetime, count: int) -> list[date]:
    """The last ``count`` UTC days up to and including today, oldest first."""
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=offset) for offset in range(count - 1, -1, -1)]


def load_daily_counts(
    session: Session, monitor_ids: Iterable[int], first_day: date, last_day: date
) -> dict[tuple[int, date], Counts]:
    """Checks per (monitor, UTC day), summed over locations: one grouped query per 500 monitors."""
    ids = sorted(set(monitor_ids))
    sums: dict[tuple[int, date], list[int]] = {}
    days: dict[datetime, date] = {}
    d = DailyRollup
    for offset in range(0, len(ids), _IN_CLAUSE_CHUNK):
        chunk = ids[offset : offset + _IN_CLAUSE_CHUNK]
        stmt = (
            select(
                d.monitor_id,
                d.bucket_start,
                func.sum(d.checks_total),
                func.sum(d.checks_degraded),
                func.sum(d.checks_down),
            )
            .where(
                d.monitor_id.in_(chunk),
                d.bucket_start >= day_start(first_day),
                d.bucket_start < day_start(last_day) + DAY,
            )
            .group_by(d.monitor_id, d.bucket_start)
        )
        for monitor_id, bucket, total, degraded, down in session.execute(stmt):
            day = days.get(bucket)
            if day is None:
                day = days[bucket] = bucket.astimezone(UTC).date()
            acc = sums.setdefault((monitor_id, day), [0, 0, 0])
            acc[0] += int(total or 0)
            acc[1] += int(degraded or 0)
            acc[2] += int(down or 0)
    return {key: Counts(*values) for key, values in sums.items()}


def window_occurrences(window: WindowDef, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The occurrences of a maintenance window that overlap ``[start, end)``, in UTC, by start."""
    spec = window.spec
    if spec.start is not None and spec.end is not None:
        if spec.start < end and spec.end > start:
            return [(spec.start.astimezone(UTC), spec.end.astimezone(UTC))]
        return []
    recurrence = spec.recurrence
    if recurrence is None or window.rule is None:
        return []
    zone = ZoneInfo(recurrence.time_zone)
    found: list[tuple[datetime, datetime]] = []
    begin = (start - recurrence.duration).astimezone(zone)
    for occurrence in window.rule.between(begin, end.astimezone(zone), inc=True):
        if recurrence.until is not None and occurrence > recurrence.until:
            break
        occ_start = occurrence.astimezone(UTC)
        occ_end = (occurrence + recurrence.duration).astimezone(UTC)
        if occ_start < end and occ_end > start:
            found.append((occ_start, occ_end))
    return found


def maintenance_days(
    windows: Sequence[WindowDef], monitors: Iterable[MonitorRef], first_day: date, last_day: date
) -> dict[int, set[date]]:
    """For each monitor, the UTC days that a maintenance window covering it overlaps."""
    start, end = day_start(first_day), day_start(last_day) + DAY
    spans = {id(window): window_occurrences(window, start, end) for window in windows}
    out: dict[int, set[date]] = {}
    for monitor in monitors:
        days: set[date] = set()
        for window in windows:
            if not spans[id(window)] or not window.covers(monitor.namespace, monitor.name, monitor.labels):
                continue
            for occ_start, occ_end in spans[id(window)]:
                day = max(occ_start, start).date()
                while day_start(day) < min(occ_end, end):
                    days.add(day)
                    day += DAY
        if days:
            out[monitor.id] = days
    return out


def component_days(
    monitor_ids: Sequence[int],
    days: Sequence[date],
    counts: Mapping[tuple[int, date], Counts],
    maintenance: Mapping[int, set[date]],
    now: datetime,
) -> tuple[tuple[DayBar, ...], float | None]:
    """The day bars of one component (oldest first) and its uptime over all of them."""
    bars: list[DayBar] = []
    window_total = Counts()
    today = now.astimezone(UTC).date()
    empty = Counts()
    for day in days:
        total = degraded = down = 0
        in_maintenance = False
        for monitor_id in monitor_ids:
            if day in maintenance.get(monitor_id, ()):
                in_maintenance = True
                continue
            found = counts.get((monitor_id, day), empty)
            total += found.total
            degraded += found.degraded
            down += found.down
        day_counts = Counts(total, degraded, down)
        window_total += day_counts
        if total:
            share = day_counts.outage_share
            minutes = 1440 if day != today else int((now - day_start(day)).total_seconds() // 60)
            bars.append(DayBar(day, round(100 * (1 - share), 3), round(share * minutes), in_maintenance))
        else:
            bars.append(DayBar(day, None, 0, in_maintenance))
    uptime = round(100 * (1 - window_total.outage_share), 3) if window_total.total else None
    return tuple(bars), uptime
