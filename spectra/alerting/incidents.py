"""Incident lifecycle: open, reopen (flapping), acknowledge, resolve; timeline; codes; who was paged.

Every state change is a conditional UPDATE (``WHERE state = ...``), so two actors racing (an ack
from SMS and one from the web, or an ack and the alerter) cannot both win; the loser gets False.

Lock order. Every transaction that changes an incident takes the incident's row first (an UPDATE of
``incidents``, or :func:`lock_incident`), then its escalation, timeline and notifications. Two such
transactions then wait for each other instead of deadlocking (MySQL 1213), which is what made an ack
racing an escalation step fail; callers still retry conflicts (``store.engine.retry_conflicts``).
Timeline event types: opened, notified, acknowledged, escalated, resolved, reopened, suppressed, note,
reassigning (a person asked to page a contact; the alerter pages it and makes it reassigned), reassigned.

People's actions (ack links, SMS, voice, the console, the JSON API, `spectra incidents`) all go through
the functions here: :func:`acknowledge`, :func:`resolve_incident`, :func:`add_note`, :func:`escalate_now`,
:func:`reassign`. Paging stays with the alerter, the one process that holds the tenants' Secrets and
makes ack links: escalating now moves the escalation's next step to now, and a reassignment is a
``reassigning`` event the alerter's next pass pages (``escalation.fire_reassignment``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from spectra.notify.channel import ChannelName, Message
from spectra.notify.outbox import enqueue
from spectra.store import (
    OPEN_STATES,
    EscalationState,
    EscalationStatus,
    Incident,
    IncidentEvent,
    IncidentEventType,
    IncidentState,
    Notification,
)
from spectra.store.types import utcnow

REASSIGNING: Final = IncidentEventType.REASSIGNING  # a reassignment the alerter has not paged yet
REASSIGNED: Final = IncidentEventType.REASSIGNED  # ... and once it has
NOTE_MAX: Final = 5000  # characters of a note

# Unambiguous upper-case letters and digits (no 0/O, 1/I/L, 5/S, 2/Z, 8/B).
CODE_ALPHABET: Final = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_LENGTH: Final = 4
REOPENED: Final = IncidentEventType.REOPENED.value  # timeline type for a flap
FLAP_WINDOW: Final = timedelta(minutes=10)
KEY_LEN: Final = 255


def new_code(session: Session) -> str:
    """A short code not used by any incident (4 characters; longer when 4 keep colliding)."""
    length = CODE_LENGTH
    for attempt in range(64):
        if attempt and attempt % 16 == 0:
            length += 1
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))
        if session.scalar(select(func.count()).select_from(Incident).where(Incident.code == code)) == 0:
            return code
    raise RuntimeError("could not find a free incident code")


def new_codes(session: Session, count: int) -> list[str]:
    """``count`` distinct free codes with one query (a mass outage opens hundreds at once)."""
    if count <= 0:
        return []
    for _ in range(8):
        codes = {"".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)) for _ in range(count * 2)}
        taken = set(session.scalars(select(Incident.code).where(Incident.code.in_(codes))))
        free = sorted(codes - taken)
        if len(free) >= count:
            return free[:count]
    return [new_code(session) for _ in range(count)]  # crowded: one at a time, growing the length


def idempotency_key(*parts: object) -> str:
    """``incident:...`` keys; a key longer than the column keeps its prefix and hashes the rest."""
    key = ":".join(str(part) for part in parts)
    if len(key) <= KEY_LEN:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: KEY_LEN - 66]}:#{digest}"


def add_event(
    session: Session,
    incident_id: int,
    type_: str,
    at: datetime,
    message: str = "",
    *,
    actor: str | None = None,
    channel: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    session.add(
        IncidentEvent(
            incident_id=incident_id,
            type=str(type_),
            at=at,
            message=message,
            actor=actor,
            channel=channel,
            data=dict(data) if data is not None else None,
        )
    )


def lock_incident(session: Session, incident_id: int) -> Incident | None:
    """Take the incident's row lock before touching its children (see "Lock order" above); the incident.

    ``SELECT ... FOR UPDATE`` on MySQL/MariaDB; SQLite has one writer at a time and ignores it.
    """
    return session.scalars(
        select(Incident).where(Incident.id == incident_id).with_for_update().execution_options(populate_existing=True)
    ).first()


def open_incident_for(session: Session, monitor_id: int) -> Incident | None:
    """The open or acknowledged incident of a monitor."""
    return session.scalars(
        select(Incident)
        .where(Incident.monitor_id == monitor_id, Incident.state.in_(OPEN_STATES))
        .order_by(Incident.id.desc())
        .limit(1)
    ).first()


def recently_resolved(session: Session, monitor_id: int, now: datetime) -> Incident | None:
    """The monitor's incident resolved within FLAP_WINDOW of ``now`` (a flap reopens it)."""
    return session.scalars(
        select(Incident)
        .where(
            Incident.monitor_id == monitor_id,
            Incident.state == IncidentState.RESOLVED.value,
            Incident.resolved_at >= now - FLAP_WINDOW,
        )
        .order_by(Incident.resolved_at.desc())
        .limit(1)
    ).first()


def recently_resolved_by_monitor(session: Session, monitor_ids: Collection[int], now: datetime) -> dict[int, Incident]:
    """:func:`recently_resolved` for many monitors in one query, by monitor id."""
    if not monitor_ids:
        return {}
    rows = session.scalars(
        select(Incident)
        .where(
            Incident.monitor_id.in_(list(monitor_ids)),
            Incident.state == IncidentState.RESOLVED.value,
            Incident.resolved_at >= now - FLAP_WINDOW,
        )
        .order_by(Incident.resolved_at)
    )
    return {incident.monitor_id: incident for incident in rows if incident.monitor_id is not None}  # newest wins


def find_incident_by_code(session: Session, code: str) -> Incident | None:
    """The incident with this code (what people type is upper-cased and trimmed)."""
    wanted = code.strip().upper()
    if not wanted:
        return None
    return session.scalars(select(Incident).where(Incident.code == wanted)).first()


def was_paged(session: Session, incident_id: int, phone: str) -> bool:
    """Whether an SMS or voice notification of this incident went to ``phone``."""
    stmt = (
        select(func.count())
        .select_from(Notification)
        .where(
            Notification.incident_id == incident_id,
            Notification.channel.in_((ChannelName.SMS.value, ChannelName.VOICE.value)),
            Notification.recipient == phone.strip(),
        )
    )
    return bool(session.scalar(stmt))


def stop_escalation(session: Session, incident_id: int) -> bool:
    """Stop an active escalation (an ack or a resolution); the version moves so a racing step loses."""
    stmt = (
        update(EscalationState)
        .where(EscalationState.incident_id == incident_id, EscalationState.status == EscalationStatus.ACTIVE.value)
        .values(status=EscalationStatus.STOPPED.value, version=EscalationState.version + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def acknowledge(session: Session, incident_id: int, *, by: str, channel: str, at: datetime | None = None) -> bool:
    """Acknowledge an open incident and stop its escalation; False when it was not open.

    Everyone paged so far is told who acknowledged, through the channels they were paged on except
    voice (nobody is called to hear that someone else took it); keys ``incident:{id}:acknowledged:{n}:...``.

    The caller commits. Once this has committed, no further step fires (the step's guarded UPDATE
    checks status and version).
    """
    at = at or utcnow()
    stmt = (
        update(Incident)
        .where(Incident.id == incident_id, Incident.state == IncidentState.OPEN.value)
        .values(state=IncidentState.ACKNOWLEDGED.value, acknowledged_at=at, acknowledged_by=by[:255])
        .execution_options(synchronize_session=False)
    )
    if not session.execute(stmt).rowcount:  # type: ignore[attr-defined]
        return False
    stop_escalation(session, incident_id)
    add_event(
        session,
        incident_id,
        IncidentEventType.ACKNOWLEDGED,
        at,
        f"acknowledged by {by}",
        actor=by[:255],
        channel=channel,
    )
    session.flush()
    _tell_paged(
        session,
        incident_id,
        state="acknowledged",
        by=by,
        ack_url="",
        serial=_count_events(session, incident_id, IncidentEventType.ACKNOWLEDGED),
        skip=(ChannelName.VOICE.value,),
    )
    return True


def _count_events(session: Session, incident_id: int, type_: str) -> int:
    stmt = (
        select(func.count())
        .select_from(IncidentEvent)
        .where(IncidentEvent.incident_id == incident_id, IncidentEvent.type == str(type_))
    )
    return int(session.scalar(stmt) or 0)


def paged_recipients(session: Session, incident_id: int) -> list[tuple[str, str]]:
    """(channel, recipient) of every page of this incident (not resolve notices), in first-paged order."""
    rows = session.execute(
        select(Notification.channel, Notification.recipient, func.min(Notification.id).label("first"))
        .where(
            Notification.incident_id == incident_id, Notification.idempotency_key.like(f"incident:{incident_id}:step:%")
        )
        .group_by(Notification.channel, Notification.recipient)
        .order_by("first")
    )
    return [(row.channel, row.recipient) for row in rows]


def incident_facts(incident: Incident, *, state: str, reason: str, ack_url: str, step: int | None) -> dict[str, Any]:
    return {
        "incident_id": incident.id,
        "code": incident.code,
        "title": incident.title,
        "monitor": f"{incident.namespace}/{incident.monitor_name}",
        "state": state,
        "reason": reason,
        "severity": incident.severity,
        "opened_at": incident.opened_at.isoformat(),
        "ack_url": ack_url,
        "step": step,
        "event": f"incident.{state}",
    }


def opening_reason(session: Session, incident_id: int) -> str:
    """The reason recorded when the incident opened."""
    data = session.scalar(
        select(IncidentEvent.data)
        .where(IncidentEvent.incident_id == incident_id, IncidentEvent.type == IncidentEventType.OPENED.value)
        .order_by(IncidentEvent.id)
        .limit(1)
    )
    return str((data or {}).get("reason", ""))


def resolve(
    session: Session,
    incident_id: int,
    *,
    at: datetime,
    by: str | None = None,
    channel: str | None = None,
    ack_url: str = "",
) -> list[Message] | None:
    """Resolve an open or acknowledged incident, stop escalation, and queue a notice to everyone paged.

    Returns the notices queued, or None when the incident was not open (nothing changed). Notices go
    through the same channels with keys ``incident:{id}:resolved:{n}:{channel}:{recipient}`` (n counts
    resolutions, so a flapping incident's second resolution is told too).
    """
    stmt = (
        update(Incident)
        .where(Incident.id == incident_id, Incident.state.in_(OPEN_STATES))
        .values(state=IncidentState.RESOLVED.value, resolved_at=at)
        .execution_options(synchronize_session=False)
    )
    if not session.execute(stmt).rowcount:  # type: ignore[attr-defined]
        return None
    stop_escalation(session, incident_id)
    message = f"resolved by {by}" if by else "monitor is up again"
    add_event(session, incident_id, IncidentEventType.RESOLVED, at, message, actor=by, channel=channel)
    session.flush()
    serial = _count_events(session, incident_id, IncidentEventType.RESOLVED)
    return _tell_paged(session, incident_id, state="resolved", by=by, ack_url=ack_url, serial=serial)


def _tell_paged(
    session: Session,
    incident_id: int,
    *,
    state: str,
    by: str | None,
    ack_url: str,
    serial: int = 1,
    skip: tuple[str, ...] = (),
) -> list[Message]:
    """Queue a notice of ``state`` to every (channel, recipient) paged for the incident so far."""
    session.flush()
    incident = session.get(Incident, incident_id, populate_existing=True)
    assert incident is not None
    reason = opening_reason(session, incident_id)
    label = state.upper()
    who = f" by {by}" if by else ""
    sent: list[Message] = []
    for channel_name, recipient in paged_recipients(session, incident_id):
        if channel_name in skip:
            continue
        notice = Message(
            channel=ChannelName(channel_name),
            recipient=recipient,
            subject=f"[{incident.code}] {label}: {incident.title}",
            text=f"{state.capitalize()}{who}: {incident.title} (incident {incident.code}).",
            idempotency_key=idempotency_key("incident", incident_id, state, serial, channel_name, recipient),
            incident_id=incident_id,
            facts={**incident_facts(incident, state=state, reason=reason, ack_url=ack_url, step=None), "by": by},
        )
        if enqueue(session, notice):
            sent.append(notice)
    return sent


def resolve_incident(session: Session, incident_id: int, *, by: str, channel: str) -> bool:
    """Resolve by hand (web, console); True when it was open or acknowledged. The caller commits."""
    return resolve(session, incident_id, at=utcnow(), by=by, channel=channel) is not None


# --- people's actions beyond acknowledging and resolving ------------------------------------------


class IncidentRefused(Exception):
    """An action the incident's state does not allow; the sentence a person reads (409 on the API)."""


def already(incident: Incident) -> str:
    """Why acting again on `incident` changes nothing: "Incident K7Q2 is already acknowledged by ..."."""
    if incident.state == IncidentState.RESOLVED.value:
        return f"Incident {incident.code} is already resolved."
    by = f" by {incident.acknowledged_by}" if incident.acknowledged_by else ""
    return f"Incident {incident.code} is already acknowledged{by}."


def add_note(session: Session, incident_id: int, text: str, *, by: str, channel: str, at: datetime) -> bool:
    """Add a note to the incident's timeline (any state); False when there is no such incident. The caller
    checks the text (:func:`note_problem`) and commits."""
    if lock_incident(session, incident_id) is None:
        return False
    add_event(session, incident_id, IncidentEventType.NOTE, at, text, actor=by[:255], channel=channel)
    session.flush()
    return True


def note_problem(text: str) -> str | None:
    """What is wrong with a note's text, or None."""
    if not text.strip():
        return "The note is empty."
    if len(text) > NOTE_MAX:
        return f"A note is at most {NOTE_MAX} characters."
    return None


def escalate_now(session: Session, incident_id: int, *, by: str, channel: str, at: datetime) -> int:
    """Make the next step of the incident's escalation due at `at`, so the alerter pages it at its next
    pass (half a second); the step index. Raises IncidentRefused when the incident is not open or has
    no step left. The caller commits.

    The step's due time moves with a new version, so a step the alerter had already read loses its
    guarded claim and is read again; later steps follow from `at` plus their delays. A maintenance window
    or global maintenance still holds the page, as it holds every page.
    """
    incident = lock_incident(session, incident_id)
    if incident is None:
        raise LookupError(incident_id)
    if incident.state != IncidentState.OPEN.value:
        raise IncidentRefused(already(incident))
    state = session.scalars(
        select(EscalationState)
        .where(EscalationState.incident_id == incident_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if state is None or state.status == EscalationStatus.STOPPED.value:
        raise IncidentRefused(f"Incident {incident.code} has no escalation policy: there is nobody to escalate to.")
    if state.status == EscalationStatus.EXHAUSTED.value:
        raise IncidentRefused(f"Every step of incident {incident.code}'s escalation policy has paged already.")
    step = state.step_index
    moved = session.execute(
        update(EscalationState)
        .where(EscalationState.incident_id == incident_id, EscalationState.status == EscalationStatus.ACTIVE.value)
        .values(next_step_at=at, version=EscalationState.version + 1)
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise IncidentRefused(f"Incident {incident.code} has no escalation policy: there is nobody to escalate to.")
    add_event(
        session,
        incident_id,
        IncidentEventType.ESCALATED,
        at,
        f"escalated now by {by}: step {step} pages at once",
        actor=by[:255],
        channel=channel,
        data={"step": step, "now": True},
    )
    session.flush()
    return step


def reassign(
    session: Session, incident_id: int, contact: tuple[str, str], *, by: str, channel: str, at: datetime
) -> None:
    """Ask for the Contact `contact` (namespace, name) to be paged now for an unresolved incident: a
    ``reassigning`` event the alerter's next pass pages and turns into ``reassigned``. Raises
    IncidentRefused when the incident is resolved. The caller checks that the contact exists and may be
    used by whoever asks, and commits."""
    incident = lock_incident(session, incident_id)
    if incident is None:
        raise LookupError(incident_id)
    if incident.state == IncidentState.RESOLVED.value:
        raise IncidentRefused(already(incident))
    namespace, name = contact
    add_event(
        session,
        incident_id,
        REASSIGNING,
        at,
        f"reassigned to {namespace}/{name} by {by}",
        actor=by[:255],
        channel=channel,
        data={"contact": name, "namespace": namespace, "by": by[:255]},
    )
    session.flush()
