"""Who one escalation step pages, through which channel, at which address: schedules resolved at the
step's due time, contacts' own channels or the step's, addresses from Secrets, webhook and Slack targets
kept as Secret references; whatever is skipped is said on the timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from spectra.alerting.recipients import Page, plan_step
from spectra.api.escalation import EscalationPolicySpec, Step
from spectra.notify.channel import ChannelName
from spectra.store import IncidentEvent
from tests.factories.alerting import BOB_EMAIL, START, WakeCounter, World
from tests.support.databases import sqlite_only

SCHEDULED = """
apiVersion: spectra.dev/v1alpha1
kind: Schedule
metadata: {name: weekends}
spec:
  timeZone: Europe/Berlin
  layers:
    - name: weekend
      participants: [alice]
      start: 2026-01-05
      restrictions: [{days: [sat, sun], from: "00:00", to: "24:00"}]
---
apiVersion: spectra.dev/v1alpha1
kind: Schedule
metadata: {name: always}
spec:
  layers: [{name: all, participants: [bob], start: 2026-01-05}]
---
apiVersion: spectra.dev/v1alpha1
kind: EscalationPolicy
metadata: {name: primary}
spec:
  steps:
    - delay: 0s
      targets: [{schedule: weekends}, {schedule: always}]
"""


@sqlite_only
async def test_an_empty_schedule_is_skipped_and_the_timeline_says_so(world: World) -> None:
    world.apply(SCHEDULED)
    alerter = world.alerter()
    world.set_state("web", "down")  # on a Monday: nobody in the weekend layer
    await world.tick(alerter)
    [incident] = world.incidents()
    assert world.idem_keys() == [f"incident:{incident.id}:step:0:repeat:0:{BOB_EMAIL}"]
    notes = [m for t, m in world.events(incident.id) if t == "note" and m.startswith("step")]
    assert notes == [f"step 0: nobody is on call in schedule 'weekends' at {START.isoformat()}; target skipped"]
    assert incident.policy_snapshot is not None
    assert [(e["schedule"], e["contacts"]) for e in incident.policy_snapshot["onCall"]] == [
        ("weekends", []),
        ("always", ["bob"]),
    ]
    assert set(incident.policy_snapshot["schedules"]) == {"weekends", "always"}


SECRETS = """
apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {name: carol}
spec:
  displayName: Carol
  emailFrom: {secretKeyRef: {name: private, key: carol-email}}
  phoneFrom: {secretKeyRef: {name: private, key: carol-phone}}
  channels: [email, sms]
---
apiVersion: spectra.dev/v1alpha1
kind: EscalationPolicy
metadata: {name: primary}
spec:
  steps:
    - targets:
        - contact: carol
        - webhook: {urlFrom: {secretKeyRef: {name: private, key: hook}}}
        - slack: {webhookFrom: {secretKeyRef: {name: private, key: slack}}}
"""


@sqlite_only
async def test_contact_secrets_webhooks_and_missing_secrets(world: World) -> None:
    world.apply(SECRETS)
    world.secrets.values = {
        ("default", "private", "carol-email"): "carol@example.com",
        ("default", "private", "hook"): "https://hooks.example.test/in?token=SECRET-TOKEN",
    }
    sender = WakeCounter()
    alerter = world.alerter(sender=sender)
    world.set_state("web", "down")
    await world.tick(alerter)
    [incident] = world.incidents()
    assert sorted((row.channel, row.recipient) for row in world.outbox()) == [
        ("email", "carol@example.com"),
        ("webhook", "secretref:default/private/hook"),
    ]
    notes = [m for t, m in world.events(incident.id) if t == "note" and m.startswith("step")]
    assert notes == [
        "step 0: slack Secret 'private' key 'slack' is missing; target skipped",
        "step 0: contact 'carol' has no phone (Secret 'private' key 'carol-phone' is missing); sms skipped",
    ]
    with world.sessions() as session:
        stored = " ".join(
            str(v) for row in session.execute(select(IncidentEvent.message, IncidentEvent.data)) for v in row
        )
    assert "SECRET-TOKEN" not in stored
    assert "SECRET-TOKEN" not in str([r.payload for r in world.outbox()])
    assert sender.wakes == 1


def step(**spec: Any) -> Step:
    return EscalationPolicySpec.model_validate({"steps": [spec]}).steps[0]


@sqlite_only
def test_the_steps_channels_or_each_contacts_own(world: World) -> None:
    with world.sessions() as session:
        own = plan_step(
            session, world.secrets, "default", step(targets=[{"contact": "alice"}]), step_label="step 0", at=START
        )
        chosen = plan_step(
            session,
            world.secrets,
            "default",
            step(targets=[{"contact": "alice"}], channels=["voice"]),
            step_label="step 0",
            at=START,
        )
    assert own.pages == [
        Page(ChannelName.SMS, "+4915112345678", "alice"),
        Page(ChannelName.EMAIL, "alice@example.com", "alice"),
    ]
    assert chosen.pages == [Page(ChannelName.VOICE, "+4915112345678", "alice")]
    assert set(own.contacts) == {"alice"}
    assert own.notes == []


@sqlite_only
def test_a_recipient_reached_twice_through_one_channel_is_paged_once(world: World) -> None:
    world.apply(
        """
apiVersion: spectra.dev/v1alpha1
kind: Schedule
metadata: {name: always}
spec:
  layers: [{name: all, participants: [bob], start: 2026-01-05}]
"""
    )
    targets = [{"contact": "bob"}, {"schedule": "always"}, {"contact": "bob"}]
    with world.sessions() as session:
        plan = plan_step(session, world.secrets, "default", step(targets=targets), step_label="step 1", at=START)
    assert plan.pages == [Page(ChannelName.EMAIL, "bob@example.com", "bob")]
    assert plan.on_call == [{"schedule": "always", "at": START.isoformat(), "contacts": ["bob"]}]


@sqlite_only
def test_missing_contacts_and_schedules_are_skipped_with_a_note(world: World) -> None:
    targets = [{"contact": "nobody"}, {"schedule": "nothing"}, {"contact": "bob"}]
    with world.sessions() as session:
        plan = plan_step(session, world.secrets, "default", step(targets=targets), step_label="step 2", at=START)
    assert plan.pages == [Page(ChannelName.EMAIL, "bob@example.com", "bob")]
    assert plan.notes == [
        "step 2: schedule 'nothing' does not exist; target skipped",
        "step 2: contact 'nobody' does not exist; skipped",
    ]
