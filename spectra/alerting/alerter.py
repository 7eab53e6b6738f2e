"""The alerter loop: confirmation -> incidents -> maintenance -> escalation -> outbox.

Every ``poll_interval_s`` (0.5 s) the leader (see :mod:`spectra.alerting.leader`) makes one pass:

1. monitors whose combined state is ``down`` (paused ones never) get an incident, unless one is open;
   one resolved less than 10 minutes ago is reopened instead (a flap: no new incident, nobody paged
   twice for a step); monitors that are ``up`` again have their incident resolved, and everyone
   paged is told through the same channels;
2. escalations whose next step is due fire it, unless the monitor is in a maintenance window: then
   the step waits for the window's end (timeline ``suppressed``, naming the window);
3. the sender is woken when anything was queued.

Database work runs in a worker thread so the event loop (the web server in ``spectra run``) stays free.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, Protocol

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from spectra.alerting.confirm import MonitorView, monitor_views
from spectra.alerting.escalation import (
    Due,
    defer,
    due_escalations,
    fire_step,
    policy_snapshot,
    rearm,
    snapshot_policy,
)
from spectra.alerting.incidents import (
    REOPENED,
    add_event,
    new_code,
    open_incident_for,
    recently_resolved,
    resolve,
)
from spectra.alerting.page_messages import Links
from spectra.api.secrets import SecretResolver
from spectra.domain.leadership import Leadership
from spectra.domain.maintenance import ActiveWindow, WindowDef, active_windows, load_windows
from spectra.runtime.loop import run_until_stopped
from spectra.store import (
    OPEN_STATES,
    EscalationState,
    EscalationStatus,
    Incident,
    IncidentEvent,
    IncidentEventType,
    IncidentState,
)
from spectra.store.types import utcnow
from spectra.tokens import Tokens

log = logging.getLogger(__name__)


class Waker(Protocol):
    """What the alerter needs of a Sender: a nudge after queueing."""

    def wake(self) -> None: ...


LEASE_NAME: Final = "alerter"  # the leader_leases row of the active alerter


def default_instance_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Alerter:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        secrets: SecretResolver,
        tokens: Tokens,
        public_url: str,
        sender: Waker | None = None,
        instance_id: str | None = None,
        poll_interval_s: float = 0.5,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = session_factory
        self._secrets = secrets
        self._links = Links(tokens, public_url.rstrip("/"))
        self._sender = sender
        self.instance_id = (instance_id or default_instance_id())[:64]
        self._poll = poll_interval_s
        self._clock = clock
        self._leadership = Leadership(session_factory, self.instance_id, name=LEASE_NAME)
        self._stopping = asyncio.Event()

    @property
    def leading(self) -> bool:
        return self._leadership.holding

    async def run(self) -> None:
        """Poll until :meth:`stop`; errors are logged and the next pass tries again."""
        self._stopping.clear()
        await run_until_stopped(self._stopping, self.tick, every_s=self._poll, what="alerter pass", log=log)
        await asyncio.to_thread(self._leadership.release)

    async def stop(self) -> None:
        """Stop the loop (if running) and give up the lease so a standby takes over at once."""
        self._stopping.set()
        await asyncio.to_thread(self._leadership.release)

    async def tick(self) -> None:
        """One pass (when leading)."""
        queued = await asyncio.to_thread(self._pass)
        if queued and self._sender is not None:
            self._sender.wake()

    # --- one pass ------------------------------------------------------------------------------

    def _pass(self) -> int:
        now = self._clock()
        if not self._leadership.is_leader(now):
            return 0
        with self._sessions() as session:
            views = monitor_views(session, now)
            windows = load_windows(session)
            with_incident = set(
                session.scalars(
                    select(Incident.monitor_id).where(Incident.state.in_(OPEN_STATES), Incident.monitor_id.is_not(None))
                )
            )
            session.rollback()
        queued = 0
        for view in views:
            # Only changes need a transaction: down without an incident, or up with one.
            if (view.confirmed_down and view.monitor_id not in with_incident) or (
                view.confirmed_up and view.monitor_id in with_incident
            ):
                queued += self._confirm(view, windows, now)
        with self._sessions() as session:
            due = due_escalations(session, now)
            labels = {v.monitor_id: v for v in views}
            session.rollback()
        for item in due:
            queued += self._escalate(item, labels.get(item.monitor_id or -1), windows, now)
        return queued

    def _confirm(self, view: MonitorView, windows: Sequence[WindowDef], now: datetime) -> int:
        if not (view.confirmed_down or view.confirmed_up):
            return 0
        with self._sessions() as session:
            try:
                incident = open_incident_for(session, view.monitor_id)
                if view.confirmed_up:
                    if incident is None:
                        return 0
                    notices = resolve(session, incident.id, at=now, ack_url=self._links.ack_url(incident.id)) or []
                    session.commit()
                    return len(notices)
                if incident is not None:
                    return 0
                active = active_windows(windows, view.namespace, view.name, view.labels, now)
                flapped = recently_resolved(session, view.monitor_id, now)
                if flapped is not None:
                    self._reopen(session, flapped, view, now, active)
                else:
                    self._open(session, view, now, active)
                session.commit()
            except OperationalError:
                session.rollback()
                log.warning("alerter: database busy while judging %s; next pass retries", view.ref)
            return 0

    def _open(self, session: Session, view: MonitorView, now: datetime, active: Sequence[ActiveWindow]) -> None:
        snapshot = policy_snapshot(session, view.namespace, view.escalation_policy)
        incident = Incident(
            code=new_code(session),
            namespace=view.namespace,
            monitor_id=view.monitor_id,
            monitor_name=view.name,
            title=f"{view.ref} is down"[:500],
            severity=view.severity,
            state=IncidentState.OPEN.value,
            opened_at=now,
            escalation_policy=view.escalation_policy,
            policy_snapshot=snapshot,
        )
        session.add(incident)
        session.flush()
        add_event(
            session,
            incident.id,
            IncidentEventType.OPENED,
            now,
            view.reason or "monitor is down",
            data={"reason": view.reason},
        )
        policy = snapshot_policy(snapshot)
        if policy is None:
            why = (
                "the monitor has no escalationPolicyRef"
                if view.escalation_policy is None
                else f"escalation policy {view.escalation_policy!r} does not exist"
            )
            add_event(session, incident.id, IncidentEventType.NOTE, now, f"{why}: nobody is paged")
        else:
            session.add(
                EscalationState(
                    incident_id=incident.id,
                    step_index=0,
                    repeat_index=0,
                    next_step_at=now + policy.steps[0].delay,
                    status=EscalationStatus.ACTIVE.value,
                )
            )
        for window in active[:1]:
            _suppressed(session, incident.id, window, now)
        session.flush()
        log.info("incident %s opened: %s", incident.code, incident.title)

    def _reopen(
        self, session: Session, incident: Incident, view: MonitorView, now: datetime, active: Sequence[ActiveWindow]
    ) -> None:
        incident.state = IncidentState.OPEN.value
        incident.resolved_at = None
        incident.acknowledged_at = None
        incident.acknowledged_by = None
        add_event(
            session,
            incident.id,
            REOPENED,
            now,
            f"down again within 10 minutes of resolving: {view.reason or 'monitor is down'}",
            data={"reason": view.reason},
        )
        policy = snapshot_policy(incident.policy_snapshot)
        escalation = session.execute(
            select(EscalationState.step_index).where(EscalationState.incident_id == incident.id)
        ).scalar()
        if policy is not None and escalation is not None:
            rearm(session, incident.id, now + policy.steps[min(escalation, len(policy.steps) - 1)].delay)
        for window in active[:1]:
            _suppressed(session, incident.id, window, now)
        session.flush()
        log.info("incident %s reopened", incident.code)

    def _escalate(self, due: Due, view: MonitorView | None, windows: Sequence[WindowDef], now: datetime) -> int:
        with self._sessions() as session:
            try:
                if view is not None and due.incident_state == IncidentState.OPEN.value:
                    active = active_windows(windows, view.namespace, view.name, view.labels, now)
                    if active:
                        window = active[0]
                        if defer(session, due, window.end):
                            _suppressed(session, due.incident_id, window, now)
                        session.commit()
                        return 0
                queued = fire_step(session, due, self._secrets, self._links)
                session.commit()
                return len(queued or [])
            except OperationalError:
                session.rollback()
                log.warning("alerter: database busy on incident %s; next pass retries", due.incident_id)
                return 0


def _suppressed(session: Session, incident_id: int, window: ActiveWindow, now: datetime) -> None:
    """Record that paging waits for ``window`` (once per window occurrence)."""
    data = {"window": window.ref, "until": window.end.isoformat()}
    existing = session.scalars(
        select(IncidentEvent.data).where(
            IncidentEvent.incident_id == incident_id, IncidentEvent.type == IncidentEventType.SUPPRESSED.value
        )
    ).all()
    if data in existing:
        return
    add_event(
        session,
        incident_id,
        IncidentEventType.SUPPRESSED,
        now,
        f"maintenance window {window.ref} until {window.end.isoformat()}: nobody is paged",
        data=data,
    )
