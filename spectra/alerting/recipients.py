"""Who is paged by one escalation step, through which channel, at which address.

Schedules resolve through ``spectra.oncall.on_call`` at the step's due time, with the overrides taken in
the console or the API (kept in the store) beside the spec's own (nobody on call: the target is skipped
and the plan's notes say so); contacts page through the step's channels or their own
``channels``; email/phone may come from Secrets (missing: a note, skipped); webhook and Slack recipients
are ``secretref:{namespace}/{secret}/{key}`` (the URL stays in the Secret, resolved by the sender). A
recipient reached twice through one channel is paged once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from spectra.api.base import ValueSource
from spectra.api.contact import ContactSpec
from spectra.api.escalation import Step, Target
from spectra.api.schedule import ScheduleSpec
from spectra.api.secrets import SecretResolver
from spectra.notify.channel import ChannelName
from spectra.oncall import on_call, resolved
from spectra.store import load_spec


@dataclass(frozen=True)
class Page:
    channel: ChannelName
    recipient: str
    who: str  # contact name, or "webhook"/"slack"


@dataclass
class StepPlan:
    pages: list[Page] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    on_call: list[dict[str, Any]] = field(default_factory=list)


def _secret_ref(namespace: str, source: ValueSource) -> str:
    ref = source.secret_key_ref
    return f"secretref:{namespace}/{ref.name}/{ref.key}"


def _address(
    secrets: SecretResolver, namespace: str, inline: str | None, source: ValueSource | None
) -> tuple[str | None, str | None]:
    """(value, problem): an inline value, or a Secret's."""
    if inline is not None:
        return inline, None
    if source is None:
        return None, "none is set"
    ref = source.secret_key_ref
    value = secrets.get(namespace, ref.name, ref.key)
    if not value:
        return None, f"Secret {ref.name!r} key {ref.key!r} is missing"
    return value.strip(), None


SpecLoader = Callable[[Session, str, str, str], tuple[dict[str, Any], int] | None]
"""`store.load_spec`, or a :class:`PassSpecs` that remembers what it read."""


class PassSpecs:
    """`load_spec` with a memory, for one alerter pass: 500 incidents of one policy read its Contacts once.

    Specs change by reconciliation, seconds apart at most; a pass that uses what it read at its start
    behaves like a pass that ran a moment earlier.
    """

    def __init__(self) -> None:
        self._read: dict[tuple[str, str, str], tuple[dict[str, Any], int] | None] = {}

    def __call__(self, session: Session, kind: str, namespace: str, name: str) -> tuple[dict[str, Any], int] | None:
        key = (kind, namespace, name)
        if key not in self._read:
            self._read[key] = load_spec(session, kind, namespace, name)
        return self._read[key]


def plan_step(
    session: Session,
    secrets: SecretResolver,
    namespace: str,
    step: Step,
    *,
    step_label: str,
    at: datetime,
    specs: SpecLoader = load_spec,
) -> StepPlan:
    """Who is paged, through which channel, for one step due at ``at``; notes for what was skipped."""
    plan = StepPlan()
    contacts: list[str] = []
    for target in step.targets:
        contacts.extend(
            _target(session, secrets, namespace, target, step_label=step_label, at=at, plan=plan, specs=specs)
        )
    seen: set[tuple[str, str]] = set()
    for name in contacts:
        found = specs(session, "Contact", namespace, name)
        if found is None:
            plan.notes.append(f"{step_label}: contact {name!r} does not exist; skipped")
            continue
        try:
            contact = ContactSpec.model_validate(found[0])
        except ValidationError:
            plan.notes.append(f"{step_label}: contact {name!r} is not valid; skipped")
            continue
        plan.contacts[name] = found[0]
        for channel in step.channels or contact.channels:
            channel_name = ChannelName(str(channel))
            if channel_name == ChannelName.EMAIL:
                value, problem = _address(secrets, namespace, contact.email, contact.email_from)
                what = "email"
            else:
                value, problem = _address(secrets, namespace, contact.phone, contact.phone_from)
                what = "phone"
            if value is None:
                plan.notes.append(f"{step_label}: contact {name!r} has no {what} ({problem}); {channel_name} skipped")
                continue
            if (channel_name, value) in seen:
                continue
            seen.add((channel_name, value))
            plan.pages.append(Page(channel_name, value, name))
    return plan


def _target(
    session: Session,
    secrets: SecretResolver,
    namespace: str,
    target: Target,
    *,
    step_label: str,
    at: datetime,
    plan: StepPlan,
    specs: SpecLoader,
) -> list[str]:
    if target.contact is not None:
        return [target.contact]
    if target.schedule is not None:
        found = specs(session, "Schedule", namespace, target.schedule)
        if found is None:
            plan.notes.append(f"{step_label}: schedule {target.schedule!r} does not exist; target skipped")
            return []
        schedule = resolved(session, namespace, target.schedule, ScheduleSpec.model_validate(found[0]), after=at)
        plan.schedules[target.schedule] = found[0]
        names = on_call(schedule, at)
        plan.on_call.append({"schedule": target.schedule, "at": at.isoformat(), "contacts": list(names)})
        if not names:
            plan.notes.append(
                f"{step_label}: nobody is on call in schedule {target.schedule!r} at {at.isoformat()}; target skipped"
            )
        return list(names)
    for channel, source in (
        (ChannelName.WEBHOOK, target.webhook.url_from if target.webhook else None),
        (ChannelName.SLACK, target.slack.webhook_from if target.slack else None),
    ):
        if source is None:
            continue
        ref = source.secret_key_ref
        if not secrets.get(namespace, ref.name, ref.key):
            plan.notes.append(f"{step_label}: {channel} Secret {ref.name!r} key {ref.key!r} is missing; target skipped")
            return []
        plan.pages.append(Page(channel, _secret_ref(namespace, source), str(channel)))
    return []
