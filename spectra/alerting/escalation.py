"""Escalation: the policy snapshot, step timers, and firing a step (its recipients: `recipients.py`;
its messages: `page_messages.py`).

Timing. Step 0 fires at opening + ``steps[0].delay``; step k at the time step k-1 was due +
``steps[k].delay`` (due times, not the times the alerter got round to them, so nothing drifts and a
restarted alerter fires on time). After the last step, with ``repeat`` = N, the whole policy runs N
more times; each repeat's step 0 is due at the last step's due time + the *first step's delay*; when
that delay is 0 the last step's delay is used instead, and when both are 0, five minutes (so a repeat
never pages at the same instant as the step before it).

Guard. Firing a step starts with ``UPDATE escalations SET step_index=..., version=version+1 WHERE
incident_id=? AND version=? AND status='active'`` (the version read when the step was found due);
an acknowledgement moves the version and the status, so a step never fires after an ack committed,
and two alerters cannot both fire one step. Pages are queued in the same transaction, which takes the
incident's row lock before anything else (the lock order of `incidents.py`).

Reopening. A flap reopens the incident and re-arms its escalation: a stopped one continues from its
next step; an exhausted one (every step had paged before it resolved) runs the policy once more from
step 0, as a further repeat, so the reopened incident pages somebody again.

Reassignments. A person's reassignment (``incidents.reassign``) is a ``reassigning`` event; the alerter
pages that Contact through its own channels (:func:`fire_reassignment`, guarded by turning the event into
``reassigned``), with keys ``incident:{id}:step:r{event}:{channel}:{recipient}``, so the contact is told of
the acknowledgement and resolution like everyone paged by a step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from spectra.alerting.incidents import (
    REASSIGNED,
    REASSIGNING,
    add_event,
    idempotency_key,
    lock_incident,
    opening_reason,
)
from spectra.alerting.page_messages import Links, page_message
from spectra.alerting.recipients import SpecLoader, StepPlan, plan_step
from spectra.api.escalation import EscalationPolicySpec, Step
from spectra.api.secrets import SecretResolver
from spectra.notify.channel import Message
from spectra.notify.outbox import enqueue_many
from spectra.store import (
    OPEN_STATES,
    EscalationState,
    EscalationStatus,
    Incident,
    IncidentEvent,
    IncidentEventType,
    IncidentState,
    Monitor,
    load_spec,
)

DEFAULT_REPEAT_SPACING: Final = timedelta(minutes=5)
# The due time of a step held by global maintenance: never reached, and found again by equality.
HELD: Final = datetime(9000, 1, 1, tzinfo=UTC)


# --- the snapshot ------------------------------------------------------------------------------


def policy_snapshot(
    session: Session, namespace: str, policy_name: str | None, *, specs: SpecLoader = load_spec
) -> dict[str, Any] | None:
    """The policy as it is now, to be kept by an incident opening now (None: no usable policy)."""
    if policy_name is None:
        return None
    found = specs(session, "EscalationPolicy", namespace, policy_name)
    if found is None:
        return None
    spec, generation = found
    return {"policy": {"name": policy_name, "generation": generation, "spec": spec}, "contacts": {}, "schedules": {}}


def snapshot_policy(snapshot: dict[str, Any] | None) -> EscalationPolicySpec | None:
    if not snapshot or "policy" not in snapshot:
        return None
    try:
        return EscalationPolicySpec.model_validate(snapshot["policy"]["spec"])
    except ValidationError:
        return None


# --- timers ------------------------------------------------------------------------------------


def repeat_spacing(policy: EscalationPolicySpec) -> timedelta:
    first, last = policy.steps[0].delay, policy.steps[-1].delay
    if first > timedelta(0):
        return first
    if last > timedelta(0):
        return last
    return DEFAULT_REPEAT_SPACING


@dataclass(frozen=True)
class Position:
    step_index: int
    repeat_index: int
    next_step_at: datetime | None
    status: str


def after(policy: EscalationPolicySpec, step_index: int, repeat_index: int, due: datetime) -> Position:
    """Where the escalation stands once step ``step_index`` of repeat ``repeat_index`` (due at ``due``) fired."""
    if step_index + 1 < len(policy.steps):
        nxt = step_index + 1
        return Position(nxt, repeat_index, due + policy.steps[nxt].delay, EscalationStatus.ACTIVE.value)
    if repeat_index < policy.repeat:
        return Position(0, repeat_index + 1, due + repeat_spacing(policy), EscalationStatus.ACTIVE.value)
    return Position(step_index, repeat_index, None, EscalationStatus.EXHAUSTED.value)


@dataclass(frozen=True)
class Due:
    """An escalation whose next step is due, as read (``version`` guards the step)."""

    incident_id: int
    version: int
    step_index: int
    repeat_index: int
    next_step_at: datetime
    incident_state: str
    monitor_id: int | None
    namespace: str
    monitor_name: str
    snapshot: dict[str, Any] | None


def due_escalations(session: Session, now: datetime) -> list[Due]:
    e, i = EscalationState, Incident
    stmt = (
        select(
            e.incident_id,
            e.version,
            e.step_index,
            e.repeat_index,
            e.next_step_at,
            i.state,
            i.monitor_id,
            i.namespace,
            i.monitor_name,
            i.policy_snapshot,
        )
        .join(i, i.id == e.incident_id)
        .where(e.status == EscalationStatus.ACTIVE.value, e.next_step_at <= now)
        .order_by(e.next_step_at, e.incident_id)
    )
    return [Due(*row) for row in session.execute(stmt)]


def _guarded(due: Due, **values: Any) -> Any:
    return (
        update(EscalationState)
        .where(
            EscalationState.incident_id == due.incident_id,
            EscalationState.version == due.version,
            EscalationState.status == EscalationStatus.ACTIVE.value,
        )
        .values(version=EscalationState.version + 1, **values)
        .execution_options(synchronize_session=False)
    )


def claim_step(session: Session, due: Due, position: Position) -> bool:
    """Move the cursor past the due step; False when an ack, a resolution or another alerter got there first."""
    stmt = _guarded(
        due,
        step_index=position.step_index,
        repeat_index=position.repeat_index,
        next_step_at=position.next_step_at,
        status=position.status,
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def defer(session: Session, due: Due, until: datetime) -> bool:
    """Push the due step to ``until`` (a maintenance window's end)."""
    return bool(session.execute(_guarded(due, next_step_at=until)).rowcount)  # type: ignore[attr-defined]


def hold(session: Session, due: Due) -> bool:
    """Hold the due step during global maintenance, whose end is not known (it may be turned off at any
    time): its due time becomes HELD until :func:`release_held` sets it to the maintenance's end."""
    return defer(session, due, HELD)


def release_held(session: Session, ended_at: datetime) -> int:
    """Every held step falls due at ``ended_at`` (global maintenance's end), as a deferred step falls due
    at a maintenance window's end; the number released. The version moves, so a step read before loses."""
    stmt = (
        update(EscalationState)
        .where(EscalationState.status == EscalationStatus.ACTIVE.value, EscalationState.next_step_at == HELD)
        .values(next_step_at=ended_at, version=EscalationState.version + 1)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def release_deferred(
    session: Session, namespace: str, monitors: Collection[str], planned_end: datetime, now: datetime
) -> int:
    """The steps of the open incidents of `monitors` (in `namespace`) that were deferred to `planned_end`
    fall due `now`: a maintenance that ends early releases what it held, as one that ends on time does;
    the number released. The alerter still decides at its next pass (another window or global maintenance
    may hold them again); the version moves, so a step read before loses."""
    of_monitors = select(Monitor.resource_id).where(Monitor.namespace == namespace, Monitor.name.in_(list(monitors)))
    stmt = (
        update(EscalationState)
        .where(
            EscalationState.incident_id.in_(select(Incident.id).where(Incident.monitor_id.in_(of_monitors))),
            EscalationState.status == EscalationStatus.ACTIVE.value,
            EscalationState.next_step_at == planned_end,
        )
        .values(next_step_at=now, version=EscalationState.version + 1)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def stop(session: Session, due: Due) -> bool:
    return bool(session.execute(_guarded(due, status=EscalationStatus.STOPPED.value)).rowcount)  # type: ignore[attr-defined]


def rearm(session: Session, incident_id: int, policy: EscalationPolicySpec, at: datetime) -> bool:
    """Re-arm a reopened incident's escalation (see "Reopening" above); False when there is none to re-arm.

    The next step is due ``at`` + its delay.
    """
    state = session.scalars(
        select(EscalationState).where(EscalationState.incident_id == incident_id).with_for_update()
    ).first()
    if state is None or state.status == EscalationStatus.ACTIVE.value:
        return False
    if state.status == EscalationStatus.EXHAUSTED.value:
        state.step_index = 0
        state.repeat_index += 1
    state.step_index = min(state.step_index, len(policy.steps) - 1)
    state.next_step_at = at + policy.steps[state.step_index].delay
    state.status = EscalationStatus.ACTIVE.value
    session.flush()  # the version column moves by itself (the mapper's version_id_col)
    return True


# --- firing a step ----------------------------------------------------------------------------


def fire_step(
    session: Session, due: Due, secrets: SecretResolver, links: Links, *, specs: SpecLoader = load_spec
) -> list[Message] | None:
    """Fire the due step: claim it (guarded), queue its pages, write the timeline. None when it lost the race.

    The caller commits (or rolls back on error, which un-claims the step).
    """
    incident = lock_incident(session, due.incident_id)
    policy = snapshot_policy(due.snapshot)
    if policy is None or due.incident_state != IncidentState.OPEN.value:
        stop(session, due)
        return None
    step_index = min(due.step_index, len(policy.steps) - 1)
    position = after(policy, step_index, due.repeat_index, due.next_step_at)
    if not claim_step(session, due, position):
        return None
    assert incident is not None  # the escalation row exists, so does its incident (ON DELETE CASCADE)
    step = policy.steps[step_index]
    label = f"step {step_index}" + (f" (repeat {due.repeat_index})" if due.repeat_index else "")
    plan = plan_step(session, secrets, due.namespace, step, step_label=label, at=due.next_step_at, specs=specs)
    at = due.next_step_at
    if step_index > 0 or due.repeat_index > 0:
        add_event(
            session,
            incident.id,
            IncidentEventType.ESCALATED,
            at,
            f"escalated to {label}",
            data={"step": step_index, "repeat": due.repeat_index},
        )
    for note in plan.notes:
        add_event(session, incident.id, IncidentEventType.NOTE, at, note, data={"step": step_index})
    reason = opening_reason(session, incident.id)
    messages = {
        page: page_message(incident, page, step=step_index, repeat=due.repeat_index, reason=reason, links=links)
        for page in plan.pages
    }
    queued = enqueue_many(session, list(messages.values()))
    for page, message in messages.items():
        if message in queued:
            add_event(
                session,
                incident.id,
                IncidentEventType.NOTIFIED,
                at,
                f"paged {page.who} by {page.channel}",
                actor=page.who,
                channel=str(page.channel),
                data={"step": step_index, "repeat": due.repeat_index},
            )
    _remember(incident, plan, step_index, due.repeat_index)
    if position.status == EscalationStatus.EXHAUSTED.value:
        add_event(session, incident.id, IncidentEventType.NOTE, at, "every step has been paged; escalation exhausted")
    session.flush()
    return queued


def _remember(incident: Incident, plan: StepPlan, step: int, repeat: int) -> None:
    """Keep the contacts and schedules as they were at page time in the incident's snapshot."""
    snapshot = dict(incident.policy_snapshot or {})
    snapshot["contacts"] = {**snapshot.get("contacts", {}), **plan.contacts}
    snapshot["schedules"] = {**snapshot.get("schedules", {}), **plan.schedules}
    if plan.on_call:
        entries: Sequence[dict[str, Any]] = snapshot.get("onCall", [])
        snapshot["onCall"] = [*entries, *({**e, "step": step, "repeat": repeat} for e in plan.on_call)]
    incident.policy_snapshot = snapshot


# --- reassignments ------------------------------------------------------------------------------


def pending_reassignments(session: Session) -> list[int]:
    """The ids of ``reassigning`` events of unresolved incidents, oldest first."""
    stmt = (
        select(IncidentEvent.id)
        .join(Incident, Incident.id == IncidentEvent.incident_id)
        .where(Incident.state.in_(OPEN_STATES), IncidentEvent.type == REASSIGNING)
        .order_by(IncidentEvent.id)
    )
    return list(session.scalars(stmt))


def fire_reassignment(
    session: Session,
    event_id: int,
    secrets: SecretResolver,
    links: Links,
    at: datetime,
    *,
    specs: SpecLoader = load_spec,
) -> list[Message] | None:
    """Page the contact a ``reassigning`` event names; None when another pass got there first (or it is
    gone). The caller commits."""
    incident_id = session.scalar(select(IncidentEvent.incident_id).where(IncidentEvent.id == event_id))
    if incident_id is None:
        return None
    incident = lock_incident(session, incident_id)
    claimed = session.execute(
        update(IncidentEvent)
        .where(IncidentEvent.id == event_id, IncidentEvent.type == REASSIGNING)
        .values(type=REASSIGNED)
        .execution_options(synchronize_session=False)
    )
    if incident is None or not claimed.rowcount:  # type: ignore[attr-defined]
        return None
    data = session.scalar(select(IncidentEvent.data).where(IncidentEvent.id == event_id)) or {}
    namespace, name, by = str(data.get("namespace", "")), str(data.get("contact", "")), str(data.get("by", ""))
    step = Step.model_validate({"targets": [{"contact": name}]})
    plan = plan_step(session, secrets, namespace, step, step_label="reassignment", at=at, specs=specs)
    for note in plan.notes:
        add_event(session, incident.id, IncidentEventType.NOTE, at, note, data={"reassignment": event_id})
    reason = opening_reason(session, incident.id)
    messages = {}
    for page in plan.pages:
        message = page_message(incident, page, step=0, repeat=0, reason=reason, links=links)
        facts = {
            **message.facts,
            "state": "escalated",
            "event": "incident.escalated",
            "step": None,
            "reassigned_by": by,
        }
        key = idempotency_key("incident", incident.id, "step", f"r{event_id}", str(page.channel), page.recipient)
        messages[page] = dataclasses.replace(message, idempotency_key=key, facts=facts)
    queued = enqueue_many(session, list(messages.values()))
    for page, message in messages.items():
        if message in queued:
            add_event(
                session,
                incident.id,
                IncidentEventType.NOTIFIED,
                at,
                f"paged {page.who} by {page.channel} (reassigned by {by})",
                actor=page.who,
                channel=str(page.channel),
                data={"reassignment": event_id},
            )
    if not plan.pages:
        add_event(session, incident.id, IncidentEventType.NOTE, at, f"reassignment to {namespace}/{name} paged nobody")
    _remember(incident, plan, -1, 0)
    session.flush()
    return queued
