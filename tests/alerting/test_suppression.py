"""The alerter in a maintenance window: the incident opens, the suppression is on its timeline, nobody is
paged until the window ends (which windows are in effect: tests/domain/test_maintenance.py)."""

from __future__ import annotations

from tests.factories.alerting import World
from tests.support.databases import sqlite_only

ONE_OFF = """
apiVersion: spectra.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: db-upgrade}
spec:
  start: "2026-03-02T09:50:00Z"
  end: "2026-03-02T10:30:00Z"
  monitorSelector: {matchLabels: {tier: web}}
"""


@sqlite_only
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


@sqlite_only
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
