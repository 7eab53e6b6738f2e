"""Maintenance windows: suppression is recorded, paging starts at the window's end; occurrences are DST-correct."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from spectra.api.maintenance import MaintenanceWindowSpec
from spectra.domain.maintenance import WindowDef, _rule, active_windows

from .conftest import START, World

ONE_OFF = """
apiVersion: spectra.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: db-upgrade}
spec:
  start: "2026-03-02T09:50:00Z"
  end: "2026-03-02T10:30:00Z"
  monitorSelector: {matchLabels: {tier: web}}
"""


async def test_maintenance_suppresses_and_paging_starts_when_it_ends(world: World) -> None:
    world.apply(ONE_OFF)
    alerter = world.alerter()
    world.set_state("web", "down")
    await world.tick(alerter)
    [incident] = world.incidents()
    assert world.outbox() == []
    assert ("suppressed", "maintenance window default/db-upgrade until 2026-03-02T10:30:00+00:00: nobody is paged") in (
        world.events(incident.id)
    )
    world.clock.advance(minutes=29, seconds=59)
    await world.tick(alerter)
    assert world.outbox() == []
    world.clock.advance(seconds=1)  # the window ends, the monitor is still down
    await world.tick(alerter)
    assert sorted(row.channel for row in world.outbox()) == ["sms", "voice"]
    types = [t for t, _ in world.events(incident.id)]
    assert types.count("suppressed") == 1
    assert types[-2:] == ["notified", "notified"]


async def test_a_monitor_recovering_inside_the_window_pages_nobody(world: World) -> None:
    world.apply(ONE_OFF.replace("monitorSelector: {matchLabels: {tier: web}}", "monitors: [web]"))
    alerter = world.alerter()
    world.set_state("web", "down")
    await world.tick(alerter)
    world.clock.advance(minutes=10)
    world.set_state("web", "up")
    await world.tick(alerter)
    world.clock.advance(minutes=60)
    await world.tick(alerter)
    [incident] = world.incidents()
    assert incident.state == "resolved"
    assert world.outbox() == []


def window(spec: Mapping[str, object], created: datetime = START) -> WindowDef:
    parsed = MaintenanceWindowSpec.model_validate(spec)
    return WindowDef("default", "w", parsed, created, _rule(parsed, created))


SUNDAY_2AM_BERLIN = {
    "recurrence": {
        "rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0;BYSECOND=0",
        "duration": "2h",
        "timeZone": "Europe/Berlin",
        "start": "2026-03-01T00:00:00+01:00",
        "until": "2026-04-06T00:00:00+02:00",
    },
    "monitors": ["web"],
}


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
