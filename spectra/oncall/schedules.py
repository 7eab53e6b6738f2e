"""Who is on call at an instant, and when that next changes.

Layers are stacked in order: a later layer wins wherever it has someone on call (inside its turns and
restriction windows). Overrides win over every layer; when several cover the instant, the one that
started latest wins (a tie goes to the one listed later).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from spectra.api.schedule import Override, ScheduleSpec
from spectra.oncall import restrictions
from spectra.oncall.localtime import require_aware
from spectra.oncall.rotations import Rotation

HANDOFF_HORIZON = timedelta(weeks=5)
"""How far `next_handoff` looks ahead."""


def _override_at(overrides: list[Override], at: datetime) -> Override | None:
    winner: Override | None = None
    for override in overrides:
        if override.start <= at < override.end and (winner is None or override.start >= winner.start):
            winner = override
    return winner


def on_call(schedule: ScheduleSpec, at: datetime) -> list[str]:
    """The contact names on call at aware `at` (one name, or [] when nobody is)."""
    at = require_aware(at, "at")
    override = _override_at(schedule.overrides, at)
    if override is not None:
        return [override.contact]
    zone = ZoneInfo(schedule.time_zone)
    for layer in reversed(schedule.layers):
        person = Rotation(layer, zone).on_call(at)
        if person is not None and restrictions.allowed(layer.restrictions, at, zone):
            return [person]
    return []


def _boundaries(schedule: ScheduleSpec, after: datetime, until: datetime) -> Iterator[datetime]:
    """Every instant in (after, until] where the result may change, in order (duplicates possible)."""
    zone = ZoneInfo(schedule.time_zone)
    streams: list[Iterator[datetime]] = []
    for layer in schedule.layers:
        streams.append(Rotation(layer, zone).handoffs(after, until))
        if layer.restrictions:
            streams.append(iter(sorted(restrictions.edges(layer.restrictions, after, until, zone))))
    override_edges = sorted(
        instant.astimezone(UTC)
        for override in schedule.overrides
        for instant in (override.start, override.end)
        if after < instant <= until
    )
    streams.append(iter(override_edges))
    return heapq.merge(*streams)


def next_handoff(schedule: ScheduleSpec, after: datetime) -> datetime | None:
    """The first instant after `after` at which `on_call` changes, in UTC; None if it does not within 5 weeks."""
    after = require_aware(after, "after")
    current = on_call(schedule, after)
    previous: datetime | None = None
    for instant in _boundaries(schedule, after, after + HANDOFF_HORIZON):
        if instant == previous:
            continue
        previous = instant
        if on_call(schedule, instant) != current:
            return instant
    return None


@dataclass(frozen=True)
class Shift:
    """One stretch of a timeline: `contact` on call from `start` until `end` (None: nobody), through
    `override` when one decides it (a spec override or a stored one), else through the layers."""

    start: datetime
    end: datetime
    contact: str | None
    override: Override | None


def _decided_by(schedule: ScheduleSpec, at: datetime) -> tuple[str | None, Override | None]:
    override = _override_at(schedule.overrides, at)
    if override is not None:
        return override.contact, override
    names = on_call(schedule, at)
    return (names[0] if names else None), None


def timeline(schedule: ScheduleSpec, start: datetime, end: datetime) -> list[Shift]:
    """Who is on call from aware `start` until `end`, as consecutive shifts in UTC (the first starts at
    `start`, the last ends at `end`); two shifts side by side differ in their contact or override."""
    start = require_aware(start, "start")
    end = require_aware(end, "end")
    if end <= start:
        return []
    shifts: list[Shift] = []
    contact, override = _decided_by(schedule, start)
    since = start
    previous: datetime | None = None
    for instant in _boundaries(schedule, start, end):
        if instant == previous or instant >= end:
            continue
        previous = instant
        now_contact, now_override = _decided_by(schedule, instant)
        if (now_contact, now_override) != (contact, override):
            shifts.append(Shift(since, instant, contact, override))
            contact, override, since = now_contact, now_override, instant
    shifts.append(Shift(since, end, contact, override))
    return shifts
