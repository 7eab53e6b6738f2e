"""Incidents for people: queries and actions, blocking (the handlers run them in worker threads).

Who may see or act is the policy's (`spectra.auth.policy`): an incident of a namespace the caller's
organization does not own is `policy.NotFound`, whether or not it exists. Every action goes through the
state machine of `spectra.alerting.incidents`, is audited (`incident.acknowledged`, `incident.resolved`,
`incident.note_added`, `incident.escalated`, `incident.reassigned`) and lands on the incident's timeline
with the actor, both names while a platform admin impersonates (`timeline_actor`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from spectra.alerting import incidents as machine
from spectra.auth import audit, policy
from spectra.auth.identity import Actor, Principal
from spectra.auth.policy import Action
from spectra.store import (
    EscalationState,
    Incident,
    IncidentEvent,
    IncidentState,
    Monitor,
    MonitorState,
    Notification,
    Resource,
    load_spec,
)
from spectra.store.engine import retry_conflicts
from spectra.store.notifications import NotificationAttempt

STATES: Final = tuple(state.value for state in IncidentState)
PAGE_DEFAULT: Final = 50
PAGE_MAX: Final = 500
ACTIONS: Final = ("acknowledge", "resolve", "note", "escalate", "reassign")

BAD_CURSOR: Final = "cursor is not valid: start again from the first page."
NO_CONTACT: Final = "contact must be namespace/name of a Contact of your organization."


class Refused(Exception):
    """What was asked cannot be done: `status` (400 bad input, 409 the incident's state) and the sentence."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status = status
        self.sentence = sentence


# --- what is shown ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentItem:
    id: int
    code: str
    title: str
    namespace: str
    monitor: str
    severity: str
    state: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None

    @classmethod
    def of(cls, row: Incident) -> IncidentItem:
        return cls(
            id=row.id,
            code=row.code,
            title=row.title,
            namespace=row.namespace,
            monitor=row.monitor_name,
            severity=row.severity,
            state=row.state,
            opened_at=row.opened_at,
            acknowledged_at=row.acknowledged_at,
            acknowledged_by=row.acknowledged_by,
            resolved_at=row.resolved_at,
        )


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    type: str
    message: str
    actor: str | None
    channel: str | None


@dataclass(frozen=True)
class Attempt:
    at: datetime
    outcome: str
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class Page:
    """One notification of the incident (the outbox row) with its delivery."""

    id: int
    created_at: datetime
    channel: str
    recipient: str
    kind: str  # page, reassignment, acknowledged, resolved
    status: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None
    tries: tuple[Attempt, ...]


@dataclass(frozen=True)
class Escalation:
    status: str  # active, stopped, exhausted
    step: int  # the next step to page (while active), 0-based
    repeat: int
    next_step_at: datetime | None
    steps: int  # how many steps the policy has (0: unknown)
    policy: str | None


@dataclass(frozen=True)
class LocationState:
    location: str
    state: str
    last_check_at: datetime | None
    reason: str


@dataclass(frozen=True)
class MonitorInfo:
    namespace: str
    name: str
    exists: bool
    paused: bool
    locations: tuple[LocationState, ...]


@dataclass(frozen=True)
class IncidentDetail:
    incident: IncidentItem
    timeline: tuple[TimelineEntry, ...]
    pages: tuple[Page, ...]
    escalation: Escalation | None
    monitor: MonitorInfo
    contacts: tuple[str, ...]  # namespace/name of the Contacts it may be reassigned to


@dataclass(frozen=True)
class Filters:
    state: str | None = None
    namespace: str | None = None
    monitor: str | None = None
    code: str | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class ListPage:
    items: tuple[IncidentItem, ...]
    next_cursor: str | None
    counts: dict[str, int]  # per state, within the filters other than state


# --- who acts --------------------------------------------------------------------------------------


def timeline_actor(principal: Principal) -> str:
    """How the timeline names who acted: the email, with the impersonator's while impersonating."""
    if principal.impersonator_email:
        return f"{principal.email} (impersonated by {principal.impersonator_email})"[:255]
    return principal.email[:255]


# --- cursors ---------------------------------------------------------------------------------------

_RANK: Final[ColumnElement[int]] = case(
    (Incident.state == IncidentState.OPEN.value, 0), (Incident.state == IncidentState.ACKNOWLEDGED.value, 1), else_=2
)


def _rank(state: str) -> int:
    return {IncidentState.OPEN.value: 0, IncidentState.ACKNOWLEDGED.value: 1}.get(state, 2)


def encode_cursor(item: IncidentItem) -> str:
    raw = json.dumps([_rank(item.state), item.opened_at.isoformat(), item.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        rank, opened, ident = json.loads(raw)
        moment = datetime.fromisoformat(opened)
        if not isinstance(rank, int) or not isinstance(ident, int) or moment.tzinfo is None:
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise Refused(400, BAD_CURSOR) from None
    return rank, moment, ident


def _after(cursor: tuple[int, datetime, int]) -> ColumnElement[bool]:
    rank, opened, ident = cursor
    return or_(
        rank < _RANK,
        and_(_RANK.in_([rank]), Incident.opened_at < opened),
        and_(_RANK.in_([rank]), Incident.opened_at == opened, Incident.id < ident),
    )


# --- the service -----------------------------------------------------------------------------------


class IncidentService:
    """Reads and acts on incidents for a principal; each call is one transaction."""

    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self.factory = factory
        self.clock = clock

    # --- reading ---------------------------------------------------------------------------------

    def list(
        self, principal: Principal, filters: Filters, *, limit: int = PAGE_DEFAULT, cursor: str | None = None
    ) -> ListPage:
        policy.require(principal, Action.INCIDENTS_READ, organization=principal.organization)
        after = decode_cursor(cursor) if cursor else None
        with self.factory() as session:
            visible = policy.visible_namespaces(session, principal)
            where: list[ColumnElement[bool]] = []
            if isinstance(visible, frozenset):
                where.append(Incident.namespace.in_(sorted(visible)))
            if filters.namespace:
                where.append(Incident.namespace == filters.namespace)
            if filters.monitor:
                where.append(Incident.monitor_name == filters.monitor)
            if filters.code:
                where.append(Incident.code == filters.code.strip().upper())
            if filters.since is not None:
                where.append(Incident.opened_at >= filters.since)
            counted = session.execute(select(Incident.state, func.count()).where(*where).group_by(Incident.state))
            counts = dict.fromkeys(STATES, 0) | {str(state): int(n) for state, n in counted}
            if filters.state:
                where.append(Incident.state == filters.state)
            if after is not None:
                where.append(_after(after))
            rows = session.scalars(
                select(Incident)
                .where(*where)
                .order_by(_RANK, Incident.opened_at.desc(), Incident.id.desc())
                .limit(limit + 1)
            ).all()
            items = tuple(IncidentItem.of(row) for row in rows[:limit])
        more = len(rows) > limit
        return ListPage(items, encode_cursor(items[-1]) if more and items else None, counts)

    def _visible(self, session: Session, principal: Principal, incident_id: int, action: Action) -> Incident:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise policy.NotFound()
        policy.require_in(session, principal, action, namespace=incident.namespace)
        return incident

    def detail(self, principal: Principal, incident_id: int) -> IncidentDetail:
        with self.factory() as session:
            incident = self._visible(session, principal, incident_id, Action.INCIDENTS_READ)
            return _detail(session, principal, incident)

    # --- acting ----------------------------------------------------------------------------------

    def act(
        self,
        principal: Principal,
        incident_id: int,
        action: str,
        *,
        ip: str | None,
        channel: str,
        text: str = "",
        contact: str = "",
    ) -> IncidentItem:
        """One of ACTIONS by `principal` through `channel` (console, api); the incident afterwards."""
        if action == "note":
            problem = machine.note_problem(text)
            if problem is not None:
                raise Refused(400, problem)
        actor = Actor.of(principal, ip=ip)
        by = timeline_actor(principal)

        def attempt() -> IncidentItem:
            now = self.clock()
            with self.factory.begin() as session:
                incident = self._visible(session, principal, incident_id, Action.INCIDENTS_WRITE)
                details: dict[str, Any] = {"channel": channel}
                if action == "acknowledge":
                    if not machine.acknowledge(session, incident_id, by=by, channel=channel, at=now):
                        raise Refused(409, machine.already(_fresh(session, incident_id)))
                elif action == "resolve":
                    if machine.resolve(session, incident_id, at=now, by=by, channel=channel) is None:
                        raise Refused(409, machine.already(_fresh(session, incident_id)))
                elif action == "note":
                    machine.add_note(session, incident_id, text, by=by, channel=channel, at=now)
                    details["length"] = len(text)
                elif action == "escalate":
                    try:
                        details["step"] = machine.escalate_now(session, incident_id, by=by, channel=channel, at=now)
                    except machine.IncidentRefused as refused:
                        raise Refused(409, str(refused)) from None
                elif action == "reassign":
                    target = _contact(session, principal, contact)
                    try:
                        machine.reassign(session, incident_id, target, by=by, channel=channel, at=now)
                    except machine.IncidentRefused as refused:
                        raise Refused(409, str(refused)) from None
                    details["contact"] = "/".join(target)
                else:  # pragma: no cover - the routes name only ACTIONS
                    raise ValueError(action)
                names = {"note": "note_added", "escalate": "escalated", "reassign": "reassigned"}
                verb = names.get(action, "acknowledged" if action == "acknowledge" else "resolved")
                audit.record(
                    session,
                    actor,
                    f"incident.{verb}",
                    now=now,
                    target=("Incident", incident.namespace, incident.code),
                    details=details,
                )
                return IncidentItem.of(_fresh(session, incident_id))

        return retry_conflicts(attempt)


def _fresh(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id, populate_existing=True)
    assert incident is not None
    return incident


def _contact(session: Session, principal: Principal, text: str) -> tuple[str, str]:
    """(namespace, name) of a Contact `principal`'s organization owns, or Refused(400)."""
    namespace, slash, name = text.strip().partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise Refused(400, NO_CONTACT)
    if not policy.owns(session, principal, namespace) or load_spec(session, "Contact", namespace, name) is None:
        raise Refused(400, NO_CONTACT)
    return namespace, name


def contacts_of(session: Session, principal: Principal) -> tuple[str, ...]:
    visible = policy.visible_namespaces(session, principal)
    rows = session.execute(
        select(Resource.namespace, Resource.name)
        .where(Resource.kind == "Contact")
        .order_by(Resource.namespace, Resource.name)
    )
    return tuple(f"{ns}/{name}" for ns, name in rows if ns in visible)


def _kind(key: str) -> str:
    parts = key.split(":")
    if len(parts) > 3 and parts[2] == "step":
        return "reassignment" if parts[3].startswith("r") else "page"
    return parts[2] if len(parts) > 2 else "message"


def _detail(session: Session, principal: Principal, incident: Incident) -> IncidentDetail:
    events = session.scalars(
        select(IncidentEvent)
        .where(IncidentEvent.incident_id == incident.id)
        .order_by(IncidentEvent.at, IncidentEvent.id)
    )
    timeline = tuple(TimelineEntry(e.at, e.type, e.message, e.actor, e.channel) for e in events)
    rows = list(
        session.scalars(select(Notification).where(Notification.incident_id == incident.id).order_by(Notification.id))
    )
    tries: dict[int, list[Attempt]] = {}
    if rows:
        for attempt in session.scalars(
            select(NotificationAttempt)
            .where(NotificationAttempt.notification_id.in_([row.id for row in rows]))
            .order_by(NotificationAttempt.id)
        ):
            tries.setdefault(attempt.notification_id, []).append(
                Attempt(attempt.at, attempt.outcome, attempt.status_code, attempt.error)
            )
    pages = tuple(
        Page(
            row.id,
            row.created_at,
            row.channel,
            row.recipient,
            _kind(row.idempotency_key),
            row.status,
            row.attempts,
            row.sent_at,
            row.last_error,
            tuple(tries.get(row.id, ())),
        )
        for row in rows
    )
    state = session.get(EscalationState, incident.id)
    escalation = None
    if state is not None:
        spec = ((incident.policy_snapshot or {}).get("policy") or {}).get("spec") or {}
        steps = spec.get("steps") if isinstance(spec, dict) else None
        escalation = Escalation(
            state.status, state.step_index, state.repeat_index, state.next_step_at,
            len(steps) if isinstance(steps, list) else 0, incident.escalation_policy,
        )  # fmt: skip
    monitor = _monitor(session, incident)
    contacts = contacts_of(session, principal)
    return IncidentDetail(IncidentItem.of(incident), timeline, pages, escalation, monitor, contacts)


def _monitor(session: Session, incident: Incident) -> MonitorInfo:
    row = session.get(Monitor, incident.monitor_id) if incident.monitor_id is not None else None
    if row is None:
        return MonitorInfo(incident.namespace, incident.monitor_name, False, False, ())
    states = session.scalars(
        select(MonitorState).where(MonitorState.monitor_id == row.resource_id).order_by(MonitorState.location)
    )
    locations = tuple(LocationState(s.location, s.state, s.last_check_at, s.last_reason) for s in states)
    return MonitorInfo(row.namespace, row.name, True, row.paused, locations)


def sorted_states(counts: dict[str, int]) -> Sequence[tuple[str, int]]:
    return [(state, counts.get(state, 0)) for state in STATES]
