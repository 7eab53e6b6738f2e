"""Rotation arithmetic of one layer: when turns change and whose turn it is.

Turn 0 starts at the layer's start date + handoff time in the schedule's zone. Rotations that are a
whole number of days are counted in wall-clock days, so a weekly 09:00 handoff stays at 09:00 across
DST; other rotations (12h, 36h) are counted in absolute time from the first handoff. The person on
call in turn k is participants[k mod n]; before turn 0 nobody is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from spectra.api.schedule import Layer
from spectra.oncall.localtime import clock_minutes, local_date, require_aware, to_instant, wall_time

_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Rotation:
    """The handoffs of one layer in one zone."""

    layer: Layer
    zone: ZoneInfo

    @property
    def whole_days(self) -> int | None:
        """The rotation in days when it is a whole number of days, else None (counted in absolute time)."""
        if self.layer.rotation % _DAY == timedelta(0):
            return self.layer.rotation // _DAY
        return None

    def first_handoff(self) -> datetime:
        """The UTC instant turn 0 begins."""
        return to_instant(wall_time(self.layer.start, clock_minutes(self.layer.handoff_time)), self.zone)

    def handoff(self, turn: int) -> datetime:
        """The UTC instant turn `turn` (0-based) begins."""
        days = self.whole_days
        if days is None:
            return self.first_handoff() + turn * self.layer.rotation
        naive = wall_time(self.layer.start, clock_minutes(self.layer.handoff_time)) + timedelta(days=turn * days)
        return to_instant(naive, self.zone)

    def turn_at(self, at: datetime) -> int | None:
        """The number of turns elapsed at `at` (0 in the first turn), None before the layer starts."""
        at = require_aware(at, "at")
        first = self.first_handoff()
        if at < first:
            return None
        days = self.whole_days
        if days is None:
            return (at - first) // self.layer.rotation
        # Estimate from the local date, then correct by at most a step either way.
        turn = max(0, (local_date(at, self.zone) - self.layer.start).days // days)
        while turn > 0 and self.handoff(turn) > at:
            turn -= 1
        while self.handoff(turn + 1) <= at:
            turn += 1
        return turn

    def participant(self, turn: int) -> str:
        """The contact on call in turn `turn`."""
        participants = self.layer.participants
        return participants[turn % len(participants)]

    def on_call(self, at: datetime) -> str | None:
        """Whose turn it is at `at`, ignoring restrictions; None before the layer starts."""
        turn = self.turn_at(at)
        return None if turn is None else self.participant(turn)

    def handoffs(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Turn starts in (after, until], in order (the layer's first handoff included)."""
        after = require_aware(after, "after")
        until = require_aware(until, "until")
        current = self.turn_at(after)
        turn = 0 if current is None else current + 1
        while True:
            instant = self.handoff(turn)
            if instant > until:
                return
            if instant > after:
                yield instant
            turn += 1
