"""Restriction windows: the times a layer is on call at all, in the schedule's zone.

A window starts on each of its `days` at `from` and ends at `to` the same day, or the next day when
`to` is earlier than `from` (overnight). `24:00` means midnight at the end of the day. Windows are
half-open, [start, end). Wall times in DST gaps and folds follow `localtime.to_instant`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from spectra.api.schedule import Restriction, Weekday
from spectra.oncall.localtime import clock_minutes, local_date, require_aware, to_instant, wall_time

WEEKDAYS: tuple[str, ...] = tuple(day.value for day in Weekday)  # index = date.weekday()

# A window starts on its day at the earliest and ends at most two days later (from 24:00, or to
# earlier than from): looking back this many days from a date finds every window covering it.
_LOOKBACK_DAYS = 2


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end


def windows_on(restriction: Restriction, day: date, zone: ZoneInfo) -> Window | None:
    """The window `restriction` opens on `day`, or None when `day` is not one of its days."""
    if WEEKDAYS[day.weekday()] not in restriction.days:
        return None
    start_minutes = clock_minutes(restriction.from_)
    end_minutes = clock_minutes(restriction.to)
    if end_minutes <= start_minutes:
        end_minutes += 24 * 60
    start = to_instant(wall_time(day, start_minutes), zone)
    end = to_instant(wall_time(day, end_minutes), zone)
    if end <= start:  # both ends inside one DST gap: nothing is left of the window
        return None
    return Window(start, end)


def windows(restrictions: Sequence[Restriction], first: date, last: date, zone: ZoneInfo) -> Iterator[Window]:
    """Every window opening on a date in first..last (inclusive)."""
    day = first
    while day <= last:
        for restriction in restrictions:
            window = windows_on(restriction, day, zone)
            if window is not None:
                yield window
        day += timedelta(days=1)


def allowed(restrictions: Sequence[Restriction], at: datetime, zone: ZoneInfo) -> bool:
    """Whether a layer with these restrictions is on call at `at` (no restrictions: always)."""
    if not restrictions:
        return True
    at = require_aware(at, "at")
    today = local_date(at, zone)
    return any(at in window for window in windows(restrictions, today - timedelta(days=_LOOKBACK_DAYS), today, zone))


def edges(restrictions: Sequence[Restriction], after: datetime, until: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    """Window starts and ends in (after, until], unordered."""
    after = require_aware(after, "after")
    until = require_aware(until, "until")
    first = local_date(after, zone) - timedelta(days=_LOOKBACK_DAYS)
    for window in windows(restrictions, first, local_date(until, zone), zone):
        for instant in (window.start, window.end):
            if after < instant <= until:
                yield instant
