"""A component's day bars: uptime by UTC day over the page's history, from the daily rollups.

Counting and weighting are :mod:`spectra.domain.uptime`'s: a ``down`` check is a full outage, a
``degraded`` one half of one, and for each monitor a day that a maintenance window covering it overlaps
is left out of its counts (the day's bar says ``maintenance``). A day whose counts are all left out, or
that has no checks, has ``uptime`` None; so does the whole window without any counts.

``down_minutes`` estimates the outage time of a day from the same weighted share:
``share * minutes of the day`` (the elapsed minutes for today), rounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from spectra.domain.maintenance import WindowDef, maintenance_buckets
from spectra.domain.monitors import MonitorRef
from spectra.domain.uptime import DAY, Counts, bucket_counts, day_start
from spectra.statuspage.model import DayBar
from spectra.store import DailyRollup


def history_days(now: datetime, count: int) -> list[date]:
    """The last ``count`` UTC days up to and including today, oldest first."""
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=offset) for offset in range(count - 1, -1, -1)]


def load_daily_counts(
    session: Session, monitor_ids: Iterable[int], first_day: date, last_day: date
) -> dict[tuple[int, date], Counts]:
    """Checks per (monitor, UTC day), summed over locations."""
    counts = bucket_counts(session, DailyRollup, day_start(first_day), day_start(last_day) + DAY, set(monitor_ids))
    return {(monitor_id, bucket.astimezone(UTC).date()): found for (monitor_id, bucket), found in counts.items()}


def maintenance_days(
    windows: Sequence[WindowDef], monitors: Iterable[MonitorRef], first_day: date, last_day: date
) -> dict[int, set[date]]:
    """For each monitor, the UTC days that a maintenance window covering it overlaps."""
    buckets = maintenance_buckets(windows, monitors, day_start(first_day), day_start(last_day) + DAY, DAY)
    return {monitor_id: {bucket.date() for bucket in days} for monitor_id, days in buckets.items()}


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
        day_counts = Counts()
        in_maintenance = False
        for monitor_id in monitor_ids:
            if day in maintenance.get(monitor_id, ()):
                in_maintenance = True
                continue
            day_counts += counts.get((monitor_id, day), empty)
        window_total += day_counts
        if day_counts.total:
            share = day_counts.outage_share
            minutes = 1440 if day != today else int((now - day_start(day)).total_seconds() // 60)
            bars.append(DayBar(day, round(100 * (1 - share), 3), round(share * minutes), in_maintenance))
        else:
            bars.append(DayBar(day, None, 0, in_maintenance))
    uptime = round(100 * (1 - window_total.outage_share), 3) if window_total.total else None
    return tuple(bars), uptime
