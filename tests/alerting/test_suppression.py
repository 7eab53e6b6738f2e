"""The alerter in a maintenance window or global maintenance: the incident opens, the suppression is on its
timeline, nobody is paged until it ends (which windows are in effect: tests/domain/test_maintenance.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from spectra.alerting import Alerter
from spectra.alerting.escalation import HELD
from spectra.domain.global_maintenance import GlobalMaintenanceCache, switch_off, switch_on
from spectra.store import EscalationState
from tests.factories.alerting import BOB_EMAIL, World
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


# --- global maintenance (its state: tests/domain/test_global_maintenance.py) ----------------------------------

GLOBAL_MESSAGE = "Upgrading the database"


def global_on(world: World, *, until: datetime | None = None) -> None:
    with world.sessions.begin() as session:
        switch_on(
            session,
            message=GLOBAL_MESSAGE,
            until=until,
            show_on_status_pages=False,
            started_by="cli",
            now=world.clock(),
        )


def global_off(world: World) -> None:
    with world.sessions.begin() as session:
        switch_off(session, now=world.clock())


def fresh_alerter(world: World) -> Alerter:
    """An alerter that reads the switch on every pass (the default cache keeps it for 2 s of real time)."""
    return world.alerter(global_maintenance=GlobalMaintenanceCache(ttl_s=0))


def next_step_at(world: World) -> datetime | None:
    with world.sessions() as session:
        return session.scalars(select(EscalationState.next_step_at)).one()


def channels(world: World) -> list[str]:
    return sorted(row.channel for row in world.outbox())


async def test_global_maintenance_holds_every_page_until_turned_off(any_world: World) -> None:
    world = any_world
    global_on(world)
    alerter = fresh_alerter(world)
    world.set_state("web", "down")
    await world.tick(alerter)
    [incident] = world.incidents()
    assert incident.state == "open"
    assert world.outbox() == []
    suppressed = ("suppressed", f"global maintenance until it is turned off: nobody is paged ({GLOBAL_MESSAGE})")
    assert suppressed in world.events(incident.id)
    assert next_step_at(world) == HELD
    assert alerter.metrics.registry.get_sample_value("spectra_global_maintenance") == 1

    world.clock.advance(minutes=30)  # long past both steps' delays
    await world.tick(alerter)
    assert world.outbox() == []
    assert [t for t, _ in world.events(incident.id)].count("suppressed") == 1

    global_off(world)
    ended = world.clock()
    await world.tick(alerter)
    assert channels(world) == ["sms", "voice"]  # step 0, as at a maintenance window's end
    assert [t for t, _ in world.events(incident.id)][-2:] == ["notified", "notified"]
    assert alerter.metrics.registry.get_sample_value("spectra_global_maintenance") == 0
    assert next_step_at(world) == ended + timedelta(minutes=10)  # the next step counts from the end: no burst

    world.clock.advance(minutes=9, seconds=59)
    await world.tick(alerter)
    assert channels(world) == ["sms", "voice"]
    world.clock.advance(seconds=1)
    await world.tick(alerter)
    assert world.idem_keys()[-1].endswith(BOB_EMAIL)


@sqlite_only
async def test_global_maintenance_until_ends_it_and_paging_starts(world: World) -> None:
    until = world.clock() + timedelta(minutes=20)
    global_on(world, until=until)
    alerter = fresh_alerter(world)
    world.set_state("web", "down")
    await world.tick(alerter)
    [incident] = world.incidents()
    assert (
        "suppressed",
        f"global maintenance until 2026-03-02T10:20:00+00:00: nobody is paged ({GLOBAL_MESSAGE})",
    ) in world.events(incident.id)
    world.clock.advance(minutes=19, seconds=59)
    await world.tick(alerter)
    assert world.outbox() == []
    world.clock.advance(seconds=1)  # nobody turned it off: its time is up
    await world.tick(alerter)
    assert channels(world) == ["sms", "voice"]


@sqlite_only
async def test_global_maintenance_stops_an_escalation_already_running(world: World) -> None:
    alerter = fresh_alerter(world)
    world.set_state("web", "down")
    await world.tick(alerter)
    assert channels(world) == ["sms", "voice"]  # step 0 went out before
    global_on(world)
    world.clock.advance(minutes=10)  # step 1 (bob) falls due inside it
    await world.tick(alerter)
    assert channels(world) == ["sms", "voice"]
    [incident] = world.incidents()
    assert world.events(incident.id)[-1][0] == "suppressed"
    world.clock.advance(minutes=5)
    global_off(world)
    await world.tick(alerter)
    assert world.idem_keys()[-1].endswith(BOB_EMAIL)


@sqlite_only
async def test_an_incident_resolved_during_global_maintenance_pages_nobody_after(world: World) -> None:
    global_on(world)
    alerter = fresh_alerter(world)
    world.set_state("web", "down")
    await world.tick(alerter)
    world.clock.advance(minutes=5)
    world.set_state("web", "up")
    await world.tick(alerter)
    global_off(world)
    world.clock.advance(minutes=60)
    await world.tick(alerter)
    [incident] = world.incidents()
    assert incident.state == "resolved"
    assert world.outbox() == []


@sqlite_only
async def test_a_window_still_active_when_global_maintenance_ends_keeps_the_step_waiting(world: World) -> None:
    world.apply(ONE_OFF)  # 09:50 to 10:30
    global_on(world)
    alerter = fresh_alerter(world)
    world.set_state("web", "down")
    await world.tick(alerter)
    [incident] = world.incidents()
    assert [t for t, _ in world.events(incident.id)].count("suppressed") == 1  # global maintenance names itself
    world.clock.advance(minutes=5)
    global_off(world)
    await world.tick(alerter)  # released at 10:05, due, and the window defers it to its end
    assert world.outbox() == []
    assert world.events(incident.id)[-1] == (
        "suppressed",
        "maintenance window default/db-upgrade until 2026-03-02T10:30:00+00:00: nobody is paged",
    )
    world.clock.advance(minutes=25)
    await world.tick(alerter)
    assert channels(world) == ["sms", "voice"]
