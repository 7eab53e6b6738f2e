"""Incidents open when a monitor is confirmed down, resolve when it is up, and flaps reopen them."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from sqlalchemy import select

from spectra.alerting import Alerter, acknowledge, find_incident_by_code, resolve_incident, was_paged
from spectra.alerting.incidents import CODE_ALPHABET, idempotency_key, new_code
from spectra.store import EscalationState, Incident, IncidentState, lease_holder
from spectra.store.accounts import AuditLog
from spectra.store.types import utcnow
from spectra.tokens import Purpose
from tests.factories.alerting import PUBLIC_URL, START, WakeCounter, World
from tests.support.databases import sqlite_only
from tests.support.waiting import eventually
from tests.support.write_race import WriteRace


async def test_incident_opens_when_down_and_resolves_when_up(any_world: World) -> None:
    world = any_world
    sender = WakeCounter()
    alerter = world.alerter(sender=sender)
    world.set_state("web", "up")
    world.set_state("sleepy", "down")  # paused monitors never open incidents
    await world.tick(alerter)
    assert world.incidents() == []

    world.set_state("web", "down")
    await world.tick(alerter)
    [incident] = world.incidents()
    assert incident.state == IncidentState.OPEN
    assert incident.monitor_name == "web"
    assert incident.title == "default/web is down"
    assert len(incident.code) == 4
    assert set(incident.code) <= set(CODE_ALPHABET)
    assert incident.policy_snapshot is not None
    assert incident.policy_snapshot["policy"]["name"] == "primary"
    assert incident.policy_snapshot["contacts"]["alice"]["email"] == "alice@example.com"
    outbox = world.outbox()
    assert sorted((row.channel, row.recipient, row.idempotency_key) for row in outbox) == [
        ("sms", "+4915112345678", f"incident:{incident.id}:step:0:repeat:0:sms:+4915112345678"),
        ("voice", "+4915112345678", f"incident:{incident.id}:step:0:repeat:0:voice:+4915112345678"),
    ]
    facts = next(row.payload["facts"] for row in outbox if row.channel == "voice")
    assert facts["incident_id"] == incident.id
    assert facts["code"] == incident.code
    assert facts["monitor"] == "default/web"
    assert facts["state"] == "opened"
    assert facts["step"] == 0
    assert facts["reason"] == "HTTP 503 from web"
    assert facts["severity"] == "critical"
    assert facts["opened_at"] == START.isoformat()
    assert facts["voice_action_url"] == f"{PUBLIC_URL}/hooks/twilio/voice?incident={incident.id}"
    token = facts["ack_url"].removeprefix(f"{PUBLIC_URL}/ack/")
    assert world.tokens.read(Purpose.ACK, token, max_age_s=3600) == {"i": incident.id}
    assert sender.wakes == 1
    types = [t for t, _ in world.events(incident.id)]
    assert types == ["opened", "notified", "notified"]

    # Still down: nothing new; up again: resolved, and everyone paged is told on the same channel.
    world.clock.advance(seconds=30)
    await world.tick(alerter)
    assert len(world.outbox()) == 2
    world.set_state("web", "up")
    await world.tick(alerter)
    [incident] = world.incidents()
    assert incident.state == IncidentState.RESOLVED
    assert incident.resolved_at == world.clock()
    notices = [row for row in world.outbox() if ":resolved:" in row.idempotency_key]
    assert sorted((row.channel, row.recipient, row.payload["facts"]["state"]) for row in notices) == [
        ("sms", "+4915112345678", "resolved"),
        ("voice", "+4915112345678", "resolved"),
    ]
    assert world.events(incident.id)[-1][0] == "resolved"
    with world.sessions() as session:
        escalation = session.get(EscalationState, incident.id)
        assert escalation is not None
        assert escalation.status == "stopped"
    assert sender.wakes == 2


async def test_a_reopened_incident_whose_escalation_was_exhausted_pages_again(any_world: World) -> None:
    world = any_world
    alerter = world.alerter()
    world.set_state("web", "down")
    await world.tick(alerter)  # step 0: alice
    world.clock.advance(minutes=10)
    await world.tick(alerter)  # step 1: bob; no repeat, so the escalation is exhausted
    [incident] = world.incidents()
    with world.sessions() as session:
        assert session.scalars(select(EscalationState.status)).one() == "exhausted"
    world.clock.advance(minutes=1)
    world.set_state("web", "up")
    await world.tick(alerter)
    world.clock.advance(minutes=2)
    world.set_state("web", "down")  # within the reopen window
    await world.tick(alerter)

    [incident] = world.incidents()
    assert incident.state == IncidentState.OPEN
    keys = world.idem_keys()
    # The policy runs once more, as a further repeat: alice is paged again at once, bob 10 minutes later.
    assert f"incident:{incident.id}:step:0:repeat:1:sms:+4915112345678" in keys
    world.clock.advance(minutes=10)
    await world.tick(alerter)
    assert f"incident:{incident.id}:step:1:repeat:1:email:bob@example.com" in world.idem_keys()
    assert world.max_per_key() == 1
    types = [t for t, _ in world.events(incident.id)]
    assert types.count("reopened") == 1


@sqlite_only
async def test_flapping_reopens_the_incident_and_pages_nobody_twice(world: World) -> None:
    alerter = world.alerter()
    world.set_state("web", "down")
    await world.tick(alerter)
    world.clock.advance(minutes=2)
    world.set_state("web", "up")
    await world.tick(alerter)
    for _ in range(3):  # three flaps within 10 minutes of each resolution
        world.clock.advance(minutes=1)
        world.set_state("web", "down")
        await world.tick(alerter)
        world.clock.advance(minutes=1)
        world.set_state("web", "up")
        await world.tick(alerter)
    [incident] = world.incidents()
    types = [t for t, _ in world.events(incident.id)]
    assert types.count("opened") == 1
    assert types.count("reopened") == 3
    pages = [k for k in world.idem_keys() if ":step:" in k]
    assert len(pages) == 2  # step 0 once, whatever the flaps
    assert world.max_per_key() == 1

    # Down again and staying down: the escalation continues with step 1, 10 minutes after the reopening.
    world.clock.advance(minutes=1)
    world.set_state("web", "down")
    await world.tick(alerter)
    world.clock.advance(minutes=10)
    await world.tick(alerter)
    [incident] = world.incidents()
    assert incident.state == IncidentState.OPEN
    assert f"incident:{incident.id}:step:1:repeat:0:email:bob@example.com" in world.idem_keys()
    assert world.max_per_key() == 1

    # Resolved for longer than 10 minutes: the next failure is a new incident.
    world.set_state("web", "up")
    await world.tick(alerter)
    world.clock.advance(minutes=11)
    world.set_state("web", "down")
    await world.tick(alerter)
    assert [i.state for i in world.incidents()] == ["resolved", "open"]


@sqlite_only
async def test_acknowledge_code_lookup_was_paged_and_manual_resolve(world: World) -> None:
    alerter = world.alerter()
    world.set_state("web", "down")
    await world.tick(alerter)
    [incident] = world.incidents()
    with world.sessions() as session:
        found = find_incident_by_code(session, f"  {incident.code.lower()} ")
        assert found is not None
        assert found.id == incident.id
        assert find_incident_by_code(session, "") is None
        assert was_paged(session, incident.id, "+4915112345678")
        assert not was_paged(session, incident.id, "+4915100000000")
        assert acknowledge(session, incident.id, by="alice", channel="sms")
        assert not acknowledge(session, incident.id, by="alice", channel="sms")  # once
        session.commit()
    world.clock.advance(minutes=30)
    await world.tick(alerter)
    assert not any(":step:1:" in key for key in world.idem_keys())  # the ack stopped escalation
    [incident] = world.incidents()
    assert incident.state == IncidentState.ACKNOWLEDGED
    assert incident.acknowledged_by == "alice"
    with world.sessions() as session:
        assert resolve_incident(session, incident.id, by="alice", channel="web")
        assert not resolve_incident(session, incident.id, by="alice", channel="web")
        session.commit()
        escalation = session.scalar(select(EscalationState).where(EscalationState.incident_id == incident.id))
        assert escalation is not None
        assert escalation.status == "stopped"
    events = world.events(incident.id)
    assert ("acknowledged", "acknowledged by alice") in events
    assert ("resolved", "resolved by alice") in events
    assert len([k for k in world.idem_keys() if ":resolved:" in k]) == 2
    acked = [row for row in world.outbox() if ":acknowledged:" in row.idempotency_key]
    assert [(row.idempotency_key, row.payload["facts"]["by"]) for row in acked] == [
        (f"incident:{incident.id}:acknowledged:1:sms:+4915112345678", "alice")  # voice is not called for an ack
    ]


@sqlite_only
async def test_run_loop_pages_wakes_the_sender_and_releases_the_lease_on_stop(world: World) -> None:
    sender = WakeCounter()
    alerter = Alerter(
        world.sessions,
        secrets=world.secrets,
        tokens=world.tokens,
        public_url=PUBLIC_URL,
        sender=sender,
        instance_id="looper",
        poll_interval_s=0.01,
    )
    world.clock.now = utcnow()  # the loop runs on the real clock; states must be fresh for it
    world.set_state("web", "down")
    task = asyncio.create_task(alerter.run())
    await eventually(lambda: sender.wakes)
    with world.sessions() as session:
        assert lease_holder(session, "alerter", utcnow()) == "looper"
    await alerter.stop()
    await asyncio.wait_for(task, timeout=20)
    assert sender.wakes >= 1
    assert len(world.incidents()) == 1
    assert len(world.outbox()) == 2
    with world.sessions() as session:
        assert lease_holder(session, "alerter", utcnow()) is None


@sqlite_only
def test_codes_are_unique_and_grow_when_short_ones_keep_colliding(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets, "choice", lambda alphabet: alphabet[0])  # every draw collides
    with world.sessions() as session:
        assert new_code(session) == "AAAA"
        session.add(
            Incident(code="AAAA", namespace="default", monitor_name="x", title="t", severity="critical", state="open")
        )
        session.flush()
        assert new_code(session) == "AAAAA"


def test_long_idempotency_keys_fit_the_column() -> None:
    short = idempotency_key("incident", 1, "step", 0, "repeat", 0, "email", "a@example.com")
    assert short == "incident:1:step:0:repeat:0:email:a@example.com"
    long_a = idempotency_key("incident", 1, "step", 0, "repeat", 0, "email", "a" * 300 + "@example.com")
    long_b = idempotency_key("incident", 1, "step", 0, "repeat", 0, "email", "b" * 300 + "@example.com")
    assert len(long_a) <= 255
    assert long_a.startswith("incident:1:step:0:repeat:0:email:")
    assert long_a != long_b


@sqlite_only
async def test_a_writer_committing_before_every_write_of_a_pass_cannot_fail_it(world: World) -> None:
    """`spectra run` on SQLite: the probe's writer commits every few hundred milliseconds. A chunk of a pass
    reads, then writes; each commit in between failed it ("database is locked") and `retry_conflicts` ran
    out of attempts under a busy probe. Chunks hold the write lock from BEGIN, so the writer waits."""
    alerter = world.alerter()
    world.set_state("web", "down")
    engine = world.sessions.kw["bind"]
    probe = WriteRace(world.sessions, lambda session: session.add(AuditLog(actor="probe", action="wrote")))
    with probe.before(engine, "INSERT INTO incidents", every=True) as seen:
        await world.tick(alerter)
    probe.finish()
    assert len(seen) == 1  # the chunk's first try held the lock: nothing came between
    [incident] = world.incidents()
    assert incident.monitor_name == "web"
