"""Maintenance windows: which are in effect for a monitor at an instant, and their occurrences over a span.

A one-off window is active on ``[start, end)``. A recurring window's occurrences start at the times of
its RRULE, with DTSTART = ``recurrence.start`` (default: when the window was applied) taken as a wall
time in ``recurrence.timeZone`` (so "02:00 every Sunday" stays 02:00 across DST changes); each lasts
``duration`` of elapsed time (on the nights the clocks change too: a 2h window is two hours, not
whatever the wall clock shows two hours later); none starts after ``until``. A window covers the
monitors named in ``monitors`` (same namespace) and those whose labels contain every pair of
``monitorSelector.matchLabels``.

Ad-hoc maintenance started in the console or the API (``page_maintenance`` rows) is read by
:func:`load_windows` as one-off windows over the monitors of the components it names, so the alerter,
component states, uptime and the public pages hold it exactly like a MaintenanceWindow: one mechanism.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.api.maintenance import MaintenanceWindowSpec
from spectra.domain.monitors import MonitorRef, matches
from spectra.store import PageMaintenance, Resource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveWindow:
    """One occurrence of a window that is in effect."""

    namespace: str
    name: str
    start: datetime
    end: datetime

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class WindowDef:
    namespace: str
    name: str
    spec: MaintenanceWindowSpec
    created_at: datetime
    rule: rrule | None
    adhoc_id: int | None = None  # the ``page_maintenance`` row of ad-hoc maintenance; None for a resource

    def covers(self, namespace: str, monitor: str, labels: Mapping[str, str]) -> bool:
        if namespace != self.namespace:
            return False
        if monitor in self.spec.monitors:
            return True
        selector = self.spec.monitor_selector
        return selector is not None and matches(labels, selector.match_labels)

    def occurrence_at(self, now: datetime) -> ActiveWindow | None:
        """The occurrence in effect at ``now``, if any."""
        spec = self.spec
        if spec.start is not None and spec.end is not None:
            if spec.start <= now < spec.end:
                return ActiveWindow(self.namespace, self.name, spec.start.astimezone(UTC), spec.end.astimezone(UTC))
            return None
        recurrence = spec.recurrence
        if recurrence is None or self.rule is None:
            return None
        zone = ZoneInfo(recurrence.time_zone)
        start = self.rule.before(now.astimezone(zone), inc=True)
        if start is None:
            return None
        if recurrence.until is not None and start > recurrence.until:
            return None
        end = _elapsed_end(start, recurrence.duration)
        if start <= now < end:
            return ActiveWindow(self.namespace, self.name, start.astimezone(UTC), end)
        return None


def _elapsed_end(start: datetime, duration: timedelta) -> datetime:
    """When an occurrence starting at ``start`` (a wall time in its zone) ends, in UTC: ``duration`` of
    elapsed time. Adding to the zoned time would add wall-clock time instead, three hours for a 2h
    window on the night the clocks go back, one on the night they go forward."""
    return start.astimezone(UTC) + duration


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _rule(spec: MaintenanceWindowSpec, created_at: datetime) -> rrule | None:
    recurrence = spec.recurrence
    if recurrence is None:
        return None
    zone = ZoneInfo(recurrence.time_zone)
    # Without a start, the time it was applied, to the minute: RRULE fields left out (BYSECOND, which no
    # one writes) come from DTSTART, and occurrences at 03:00:17 read as a bug.
    first = (recurrence.start or created_at.replace(second=0, microsecond=0)).astimezone(zone)
    # A wall-clock DTSTART in the window's zone: each occurrence keeps the wall time, offsets follow DST.
    dtstart = first.replace(tzinfo=zone)
    rule = rrulestr(recurrence.rrule, dtstart=dtstart, cache=True)
    return rule if isinstance(rule, rrule) else None


def load_windows(session: Session) -> list[WindowDef]:
    """Every MaintenanceWindow in the store (an unreadable spec is logged and left out)."""
    rows = session.execute(
        select(Resource.namespace, Resource.name, Resource.spec, Resource.created_at).where(
            Resource.kind == "MaintenanceWindow"
        )
    )
    out: list[WindowDef] = []
    for row in rows:
        try:
            spec = MaintenanceWindowSpec.model_validate(row.spec)
            created = _aware(row.created_at)
            out.append(WindowDef(row.namespace, row.name, spec, created, _rule(spec, created)))
        except (ValidationError, ValueError) as exc:
            log.warning("maintenance window %s/%s is not usable: %s", row.namespace, row.name, exc)
    return out + load_adhoc_windows(session)


def load_adhoc_windows(session: Session) -> list[WindowDef]:
    """Ad-hoc maintenance (``page_maintenance``) as one-off windows: from its start until its end, or until
    it was ended early (ended before it began: no window at all); announced on its own page."""
    out: list[WindowDef] = []
    for row in session.scalars(select(PageMaintenance).order_by(PageMaintenance.id)):
        start, end = _aware(row.starts_at), _aware(row.until)
        if end <= start:
            continue
        try:
            spec = MaintenanceWindowSpec.model_validate(
                {
                    "message": row.message or None,
                    "start": start,
                    "end": end,
                    "monitors": list(row.monitors or ()),
                    "statusPages": [row.page_name],
                }
            )
        except (ValidationError, ValueError) as exc:
            log.warning("ad-hoc maintenance %d is not usable: %s", row.id, exc)
            continue
        out.append(WindowDef(row.page_namespace, row.title, spec, start, None, adhoc_id=row.id))
    return out


def active_windows(
    windows: Sequence[WindowDef], namespace: str, monitor: str, labels: Mapping[str, str], now: datetime
) -> list[ActiveWindow]:
    """The windows in effect for one monitor at ``now``, latest end first."""
    found = [
        occurrence
        for window in windows
        if window.covers(namespace, monitor, labels)
        for occurrence in [window.occurrence_at(now)]
        if occurrence is not None
    ]
    return sorted(found, key=lambda w: (w.end, w.ref), reverse=True)


def in_maintenance(windows: Sequence[WindowDef], monitor: MonitorRef, now: datetime) -> bool:
    return any(
        window.covers(monitor.namespace, monitor.name, monitor.labels) and window.occurrence_at(now) is not None
        for window in windows
    )


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
        occ_end = _elapsed_end(occurrence, recurrence.duration)
        if occ_start < end and occ_end > start:
            found.append((occ_start, occ_end))
    return found


def maintenance_buckets(
    windows: Sequence[WindowDef], monitors: Iterable[MonitorRef], start: datetime, end: datetime, step: timedelta
) -> dict[int, set[datetime]]:
    """For each monitor, the buckets (``start + k * step``) of ``[start, end)`` that a window covering it overlaps.

    Uptime leaves these buckets out: hours for the operator's ``uptime24h``, days for status-page bars.
    """
    spans = [(w, occurrences) for w in windows if (occurrences := window_occurrences(w, start, end))]
    out: dict[int, set[datetime]] = {}
    if not spans:
        return out
    for monitor in monitors:
        for window, occurrences in spans:
            if not window.covers(monitor.namespace, monitor.name, monitor.labels):
                continue
            for occ_start, occ_end in occurrences:
                bucket = start + ((max(occ_start, start) - start) // step) * step
                while bucket < min(occ_end, end):
                    out.setdefault(monitor.id, set()).add(bucket)
                    bucket += step
    return out
