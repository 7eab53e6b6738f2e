"""Escalation: timers in the database, restarts, two alerters, acks racing steps, snapshots, repeats.

Who a step pages is tested in test_recipients.py, what it sends in test_page_messages.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from spectra.alerting import acknowledge
from spectra.alerting.escalation import DEFAULT_REPEAT_SPACING, due_escalations, fire_step, repeat_spacing
from spectra.alerting.page_messages import Links
from spectra.api.escalation import EscalationPolicySpec
from spectra.store import EscalationState, IncidentEvent, lease_holder
from tests.factories.alerting import BOB_EMAIL, START, World
from tests.support.databases import sqlite_only


def step_keys(world: World, step: int, repeat: int = 0) -> list[str]:
    return [k for k in world.idem_keys() if f":step:{step}:repeat:{repeat}:" in k]


async def test_restart_mid_escalation_resumes_on_time_and_pages_nobody_twice(any_world: World) -> None:
    world = any_world
    first = world.alerter("first")
    world.set_state("web", "down")
    await world.tick(first)
    assert len(step_keys(world, 0)) == 2
    await first.stop()  # the process goes away after step 0

    world.clock.advance(minutes=9, seconds=59)
    second = world.alerter("second")
    await world.tick(second)
    assert step_keys(world, 1) == []  # not yet due
    world.clock.advance(seconds=1)
    await world.tick(second)
    [incident] = world.incidents()
    assert step_keys(world, 1) == [f"incident:{incident.id}:step:1:repeat:0:{BOB_EMAIL}"]
    # The first alerter comes back as a standby and a later pass of the leader changes nothing.
    await world.tick(first)
    world.clock.advance(seconds=1)
    await world.tick(second)
    assert world.max_per_key() == 1
    assert len(world.outbox()) == 3
    with world.sessions() as session:
        escalated = session.scalar(
            select(IncidentEvent.at).where(IncidentEvent.incident_id == incident.id, IncidentEvent.type == "escalated")
        )
        escalation = session.get(EscalationState, incident.id)
    assert escalated == START + timedelta(minutes=10)  # on time, by the due time kept in the database
    assert escalation is not None
    assert escalation.status == "exhausted"
    assert escalation.next_step_at is None


async def test_two_alerters_on_one_database_page_once(any_world: World) -> None:
    world = any_world
    a, b = world.alerter("a"), world.alerter("b")
    world.set_state("web", "down")
    for _ in range(3):
        world.write_states()
        await asyncio.gather(a.tick(), b.tick())
        world.clock.advance(minutes=5, seconds=1)
        await asyncio.gather(a.tick(), b.tick())
    assert len(world.incidents()) == 1
    assert world.max_per_key() == 1
    assert len(world.outbox()) == 3
    assert [a.leading, b.leading].count(True) == 1
    with world.sessions() as session:
        assert lease_holder(session, "alerter", world.clock()) in {"a", "b"}


@sqlite_only
async def test_standby_takes_over_when_the_leader_stops_renewing(world: World) -> None:
    a, b = world.alerter("a"), world.alerter("b")
    await world.tick(a)
    await world.tick(b)
    assert a.leading
    assert not b.leading
    world.clock.advance(seconds=7)  # a is gone without releasing; its 6 s lease ran out
    world.set_state("web", "down")
    await world.tick(b)
    assert b.leading
    assert len(world.incidents()) == 1


async def test_an_ack_racing_the_next_step_wins(any_world: World) -> None:
    world = any_world
    alerter = world.alerter()
    world.set_state("web", "down")
    await world.tick(alerter)
    world.clock.advance(minutes=10)
    with world.sessions() as session:
        [due] = due_escalations(session, world.clock())  # the alerter has found step 1 due ...
        session.rollback()
    with world.sessions() as session:  # ... when the ack commits
        assert acknowledge(session, due.incident_id, by="alice", channel="sms")
        session.commit()
    with world.sessions() as session:
        assert fire_step(session, due, world.secrets, Links(world.tokens, "http://x")) is None
        session.commit()
    await world.tick(alerter)
    assert step_keys(world, 1) == []
    with world.sessions() as session:
        escalation = session.get(EscalationState, due.incident_id)
        assert escalation is not None
        assert escalation.status == "stopped"


@sqlite_only
async def test_an_edited_policy_does_not_change_a_running_incident(world: World) -> None:
    alerter = world.alerter()
    world.set_state("web", "down")
    await world.tick(alerter)
    world.apply(
        """
apiVersion: spectra.dev/v1alpha1
kind: EscalationPolicy
metadata: {name: primary}
spec:
  steps:
    - delay: 0s
      targets: [{contact: bob}]
    - delay: 1m
      targets: [{contact: alice}]
      channels: [email]
"""
    )
    world.clock.advance(minutes=5)
    await world.tick(alerter)
    assert not any("alice@example.com" in k for k in world.idem_keys())  # the new step 1 (1 m) did not apply
    world.clock.advance(minutes=5)
    await world.tick(alerter)
    [incident] = world.incidents()
    assert step_keys(world, 1) == [f"incident:{incident.id}:step:1:repeat:0:{BOB_EMAIL}"]
    assert incident.policy_snapshot is not None
    assert incident.policy_snapshot["policy"]["spec"]["steps"][0]["channels"] == ["sms", "voice"]
    # A new incident takes the policy as it is now.
    world.set_state("web", "up")
    await world.tick(alerter)
    world.clock.advance(minutes=20)
    world.set_state("web", "down")
    await world.tick(alerter)
    second = world.incidents()[-1]
    assert step_keys(world, 0)[-1] == f"incident:{second.id}:step:0:repeat:0:{BOB_EMAIL}"


REPEATING = """
apiVersion: spectra.dev/v1alpha1
kind: EscalationPolicy
metadata: {name: primary}
spec:
  steps:
    - delay: 2m
      targets: [{contact: bob}]
    - delay: 5m
      targets: [{contact: alice}]
      channels: [email]
  repeat: 2
"""


@sqlite_only
async def test_repeat_runs_the_policy_again_spaced_by_the_first_delay(world: World) -> None:
    world.apply(REPEATING)
    alerter = world.alerter()
    world.set_state("web", "down")
    await world.tick(alerter)
    fired: list[tuple[int, str]] = []
    for minute in range(1, 30):
        world.clock.advance(minutes=1)
        before = set(world.idem_keys())
        await world.tick(alerter)
        fired += [(minute, key.split(":", 2)[2]) for key in world.idem_keys() if key not in before]
    assert fired == [
        (2, f"step:0:repeat:0:{BOB_EMAIL}"),
        (7, "step:1:repeat:0:email:alice@example.com"),
        (9, f"step:0:repeat:1:{BOB_EMAIL}"),
        (14, "step:1:repeat:1:email:alice@example.com"),
        (16, f"step:0:repeat:2:{BOB_EMAIL}"),
        (21, "step:1:repeat:2:email:alice@example.com"),
    ]
    [incident] = world.incidents()
    with world.sessions() as session:
        escalation = session.get(EscalationState, incident.id)
        assert escalation is not None
        assert escalation.status == "exhausted"
    assert [m for t, m in world.events(incident.id) if t == "escalated"][-1] == "escalated to step 1 (repeat 2)"


@pytest.mark.parametrize(
    ("delays", "spacing"),
    [
        (["3m", "10m"], timedelta(minutes=3)),
        (["0s", "10m"], timedelta(minutes=10)),
        (["0s"], DEFAULT_REPEAT_SPACING),
    ],
)
def test_repeat_spacing(delays: list[str], spacing: timedelta) -> None:
    policy = EscalationPolicySpec.model_validate(
        {"steps": [{"delay": d, "targets": [{"contact": "bob"}]} for d in delays], "repeat": 1}
    )
    assert repeat_spacing(policy) == spacing


@sqlite_only
async def test_a_monitor_without_a_policy_opens_an_incident_that_pages_nobody(world: World) -> None:
    world.apply(
        """
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: lonely}
spec: {type: http, interval: 30s, http: {url: "https://lonely.example.test/"}}
"""
    )
    alerter = world.alerter()
    world.set_state("lonely", "down")
    await world.tick(alerter)
    [incident] = world.incidents()
    assert world.outbox() == []
    assert world.events(incident.id)[-1] == ("note", "the monitor has no escalationPolicyRef: nobody is paged")
