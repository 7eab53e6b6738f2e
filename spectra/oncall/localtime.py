"""Wall-clock times in a zone, turned into instants with the DST rules schedules use.

A wall time that does not exist (spring forward) happens at the first valid instant after it, the
moment the clocks jump; an ambiguous one (fall back) at its first occurrence (fold=0). All
arithmetic on instants is done in UTC: Python subtracts aware datetimes of the same tzinfo by wall
time, which is wrong across DST.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_MINUTES_PER_DAY = 24 * 60


def clock_minutes(text: str) -> int:
    """Minutes after midnight of an `HH:MM` clock time; `24:00` is 1440 (midnight at the day's end)."""
    hours, _, minutes = text.partition(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= value <= _MINUTES_PER_DAY:
        raise ValueError(f"{text!r} is not a time of day")
    return value


def wall_time(day: date, minutes: int) -> datetime:
    """The naive wall-clock datetime `minutes` after midnight of `day` (1440 = next day 00:00)."""
    return datetime.combine(day, time()) + timedelta(minutes=minutes)


def require_aware(value: datetime, name: str = "time") -> datetime:
    """`value` in UTC; naive datetimes are refused (their zone would be a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must have a time zone offset, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def to_instant(naive: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall time `naive` in `zone` (gap: the end of the gap; fold: first occurrence)."""
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In a gap: fold=0 reads the wall time with the offset before the jump, landing after the
    # transition; fold=1 reads it with the offset after, landing before. The transition lies between.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first
    if low > high:  # a zone whose transition goes the other way round; be safe
        low, high = high, low
    after_offset = high.astimezone(zone).utcoffset()
    # Smallest whole second in (low, high] with the post-transition offset.
    lo, hi = 0, int((high - low).total_seconds())
    while lo < hi:
        mid = (lo + hi) // 2
        if (low + timedelta(seconds=mid)).astimezone(zone).utcoffset() == after_offset:
            hi = mid
        else:
            lo = mid + 1
    return low + timedelta(seconds=lo)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    """The calendar date in `zone` at aware `instant`."""
    return instant.astimezone(zone).date()
