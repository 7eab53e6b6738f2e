"""Maintenance windows: which are in effect for a monitor at an instant (one-off and recurring, DST-correct),
which monitors a window covers, its occurrences over a span, and the uptime buckets they take out."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from spectra.api.maintenance import MaintenanceWindowSpec
from spectra.domain.maintenance import (
    WindowDef,
    _rule,
    active_windows,
    in_maintenance,
    maintenance_buckets,
    window_occurrences,
)
from spectra.domain.monitors import MonitorRef

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


def window(spec: Mapping[str, object], created: datetime = START) -> WindowDef:
    parsed = MaintenanceWindowSpec.model_validate(spec)
    return WindowDef("default", "w", parsed, created, _rule(parsed, created))


SUNDAY_2AM_BERLIN_RECURRENCE = {
    "rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0;BYSECOND=0",
    "duration": "2h",
    "timeZone": "Europe/Berlin",
    "start": "2026-03-01T00:00:00+01:00",
    "until": "2026-04-06T00:00:00+02:00",
}
SUNDAY_2AM_BERLIN = {"recurrence": SUNDAY_2AM_BERLIN_RECURRENCE, "monitors": ["web"]}


@pytest.mark.parametrize(
    ("at", "active_until"),
    [
        (datetime(2026, 3, 22, 1, 0, tzinfo=UTC), datetime(2026, 3, 22, 3, 0, tzinfo=UTC)),  # CET: 02:00 = 01:00Z
        (datetime(2026, 3, 22, 0, 59, tzinfo=UTC), None),
        (datetime(2026, 3, 22, 3, 0, tzinfo=UTC), None),  # end is exclusive
        # After the DST change (29 March) 02:00 Berlin is 00:00Z: the wall time stays, the offset moves.
        (datetime(2026, 4, 5, 0, 0, tzinfo=UTC), datetime(2026, 4, 5, 2, 0, tzinfo=UTC)),
        (datetime(2026, 4, 5, 2, 30, tzinfo=UTC), None),
        (datetime(2026, 4, 12, 0, 30, tzinfo=UTC), None),  # after `until`
        (datetime(2026, 3, 24, 1, 30, tzinfo=UTC), None),  # a Tuesday
    ],
)
def test_recurring_window_occurrences(at: datetime, active_until: datetime | None) -> None:
    found = active_windows([window(SUNDAY_2AM_BERLIN)], "default", "web", {}, at)
    assert (found[0].end if found else None) == active_until


@pytest.mark.parametrize(
    ("namespace", "name", "labels", "covered"),
    [
        ("default", "web", {}, True),
        ("other", "web", {}, False),
        ("default", "api", {"tier": "web", "team": "x"}, True),
        ("default", "api", {"tier": "db"}, False),
    ],
)
def test_which_monitors_a_window_covers(namespace: str, name: str, labels: dict[str, str], covered: bool) -> None:
    spec = {
        "start": "2026-03-02T00:00:00Z",
        "end": "2026-03-03T00:00:00Z",
        "monitors": ["web"],
        "monitorSelector": {"matchLabels": {"tier": "web"}},
    }
    assert bool(active_windows([window(spec)], namespace, name, labels, START)) is covered


def test_recurrence_defaults_to_the_time_the_window_was_applied() -> None:
    daily = {"recurrence": {"rrule": "FREQ=DAILY", "duration": "30m"}, "monitors": ["web"]}
    applied = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    w = window(daily, created=applied)
    assert not active_windows([w], "default", "web", {}, applied - timedelta(minutes=1))
    assert active_windows([w], "default", "web", {}, applied + timedelta(days=3, minutes=29))
    assert not active_windows([w], "default", "web", {}, applied + timedelta(days=3, minutes=30))


def test_a_recurrence_without_start_begins_on_the_whole_minute() -> None:
    weekly = {
        "recurrence": {"rrule": "FREQ=WEEKLY;BYDAY=SA;BYHOUR=2;BYMINUTE=0", "duration": "1h"},
        "monitors": ["web"],
    }
    w = window(weekly, created=datetime(2026, 3, 2, 23, 17, 41, 123456, tzinfo=UTC))
    occurrence = window_occurrences(w, START, START + timedelta(days=8))[0]
    assert (occurrence[0].second, occurrence[0].microsecond) == (0, 0)
    assert occurrence[0] == datetime(2026, 3, 7, 2, 0, tzinfo=UTC)


def test_occurrences_over_a_span_keep_the_wall_time_across_dst() -> None:
    span = window_occurrences(
        window(SUNDAY_2AM_BERLIN), datetime(2026, 3, 21, tzinfo=UTC), datetime(2026, 4, 30, tzinfo=UTC)
    )
    # 02:00 Berlin each Sunday: 01:00Z in winter, 00:00Z in summer; none after `until` (6 April).
    assert [start for start, _ in span] == [
        datetime(2026, 3, 22, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # the night of the change (02:00 does not exist)
        datetime(2026, 4, 5, 0, 0, tzinfo=UTC),
    ]
    assert span[0][1] == datetime(2026, 3, 22, 3, 0, tzinfo=UTC)
    assert span[2][1] == datetime(2026, 4, 5, 2, 0, tzinfo=UTC)
    # An occurrence that started before the span but overlaps it counts.
    assert window_occurrences(
        window(SUNDAY_2AM_BERLIN), datetime(2026, 3, 22, 2, 0, tzinfo=UTC), datetime(2026, 3, 23, tzinfo=UTC)
    ) == [(datetime(2026, 3, 22, 1, 0, tzinfo=UTC), datetime(2026, 3, 22, 3, 0, tzinfo=UTC))]


@pytest.mark.parametrize(
    ("night", "start", "end"),
    [
        # Clocks go forward at 02:00 CET: 02:00 does not exist; the window opens at 01:00Z (03:00 CEST).
        (
            datetime(2026, 3, 29, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
            datetime(2026, 3, 29, 3, 0, tzinfo=UTC),
        ),
        # Clocks go back at 03:00 CEST: 02:00 comes twice; the window opens at the first (00:00Z).
        (
            datetime(2026, 10, 25, tzinfo=UTC),
            datetime(2026, 10, 25, 0, 0, tzinfo=UTC),
            datetime(2026, 10, 25, 2, 0, tzinfo=UTC),
        ),
    ],
    ids=["clocks-go-forward", "clocks-go-back"],
)
def test_a_window_lasts_its_duration_of_elapsed_time_on_the_nights_the_clocks_change(
    night: datetime, start: datetime, end: datetime
) -> None:
    """ "2h" is two hours, not until the wall clock shows two hours later (one hour on one night, three on
    the other)."""
    recurrence = {key: value for key, value in SUNDAY_2AM_BERLIN_RECURRENCE.items() if key != "until"}
    yearly = window({"recurrence": recurrence, "monitors": ["web"]})
    assert window_occurrences(yearly, night, night + timedelta(days=1)) == [(start, end)]
    [active] = active_windows([yearly], "default", "web", {}, end - timedelta(minutes=1))
    assert (active.start, active.end) == (start, end)
    assert active_windows([yearly], "default", "web", {}, end) == []


def test_one_off_occurrence_overlaps_or_not() -> None:
    one_off = window({"start": "2026-03-02T09:50:00Z", "end": "2026-03-02T10:30:00Z", "monitors": ["web"]})
    occurrence = (datetime(2026, 3, 2, 9, 50, tzinfo=UTC), datetime(2026, 3, 2, 10, 30, tzinfo=UTC))
    assert window_occurrences(one_off, START, START + timedelta(hours=1)) == [occurrence]
    assert window_occurrences(one_off, START + timedelta(minutes=30), START + timedelta(hours=1)) == []  # end exclusive


def test_in_maintenance_and_the_buckets_a_window_takes_out() -> None:
    one_off = window(
        {
            "start": "2026-03-02T09:50:00Z",
            "end": "2026-03-02T11:10:00Z",
            "monitorSelector": {"matchLabels": {"tier": "web"}},
        }
    )
    web = MonitorRef(1, "default", "web", {"tier": "web"})
    db = MonitorRef(2, "default", "db", {"tier": "db"})
    assert in_maintenance([one_off], web, START)
    assert not in_maintenance([one_off], db, START)
    assert not in_maintenance([one_off], web, START + timedelta(hours=2))
    day = datetime(2026, 3, 2, tzinfo=UTC)
    hours = maintenance_buckets([one_off], [web, db], day, day + timedelta(days=1), timedelta(hours=1))
    assert hours == {1: {day + timedelta(hours=h) for h in (9, 10, 11)}}
    assert maintenance_buckets([], [web], day, day + timedelta(days=1), timedelta(hours=1)) == {}
