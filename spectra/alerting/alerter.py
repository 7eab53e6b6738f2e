"""The alerter loop: confirmation -> incidents -> maintenance -> escalation -> outbox.

Every ``poll_interval_s`` (0.5 s) the leader (see :mod:`spectra.domain.leadership`) makes one pass:

1. monitors whose combined state is ``down`` (paused ones never) get an incident, unless one is open;
   one resolved less than 10 minutes ago is reopened instead (a flap: no new incident) and its
   escalation re-armed; monitors that are ``up`` again have their incident resolved, and everyone
   paged is told through the same channels;
2. escalations whose next step is due fire it, unless the monitor is in a maintenance window: then
   the step waits for the window's end (timeline ``suppressed``, naming the window); during global
   maintenance (spectra/domain/global_maintenance.py) every due step waits (timeline ``suppressed``,
   naming global maintenance) and, once it has ended, falls due at its end, as at a window's end;
3. contacts people reassigned an incident to (console, API) are paged, unless global maintenance is on
   (they wait for its end);
4. the sender is woken after each chunk that queued anything.

A mass outage. Judgements and steps are made CHUNK at a time, one transaction per chunk (a savepoint per
item, so one bad item does not undo the others), and the lease is renewed between chunks: 500 monitors
failing at once are ten transactions, and a long pass never outlives the leadership it started with. A
lock conflict (deadlock) runs the chunk again; the database's unique index keeps one unresolved
incident per monitor whoever writes.

Time. ``now`` of a pass is the database's clock (store/clock.py), as are the probes' report times, so
an alerter whose clock is off judges staleness and due steps like every other process. Tests inject a
clock instead.

Database work runs in a worker thread so the event loop (the web server in ``spectra run``) stays free.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Final, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from spectra.alerting.confirm import MonitorView, candidate_monitors, monitor_views
from spectra.alerting.escalation import (
    Due,
    defer,
    due_escalations,
    fire_reassignment,
    fire_step,
    hold,
    pending_reassignments,
    policy_snapshot,
    rearm,
    release_held,
    snapshot_policy,
)
from spectra.alerting.incidents import (
    REOPENED,
    add_event,
    lock_incident,
    new_codes,
    recently_resolved_by_monitor,
    resolve,
)
from spectra.alerting.metrics import AlertingMetrics
from spectra.alerting.page_messages import Links
from spectra.alerting.recipients import PassSpecs
from spectra.api.secrets import SecretResolver
from spectra.domain.global_maintenance import GlobalMaintenanceCache
from spectra.domain.global_maintenance import Status as GlobalMaintenance
from spectra.domain.leadership import Leadership
from spectra.domain.maintenance import ActiveWindow, WindowDef, active_windows, load_windows
from spectra.notify.outbox import OutboxHealth
from spectra.runtime.loop import FailureLog, run_until_stopped
from spectra.store import (
    OPEN_STATES,
    EscalationState,
    EscalationStatus,
    Incident,
    IncidentEvent,
    IncidentEventType,
    IncidentState,
)
from spectra.store.clock import database_now
from spectra.store.engine import retry_conflicts, take_write_lock
from spectra.tokens import Tokens

log = logging.getLogger(__name__)

T = TypeVar("T")


class Waker(Protocol):
    """What the alerter needs of a Sender: a nudge after queueing."""

    def wake(self) -> None: ...


LEASE_NAME: Final = "alerter"  # the leader_leases row of the active alerter
CHUNK: Final = 50  # judgements or steps per transaction
UNHEALTHY_AFTER_S: Final = 10.0  # failing passes for this long make the process not ready
OUTBOX_EVERY_S: Final = 5.0  # how often the leader reads the outbox's health for the metrics
# After global maintenance ended, held steps are released once, and again this often in case a step was
# held by a leader that lost its lease in the middle of a pass (a cheap indexed UPDATE that finds none).
RELEASE_AGAIN_S: Final = 60.0


def default_instance_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
        clock: Callable[[], datetime] | None = None,
        metrics: AlertingMetrics | None = None,
        outbox_health: Callable[[Session], OutboxHealth] | None = None,
        global_maintenance: GlobalMaintenanceCache | None = None,
    ) -> None:
        self._sessions = session_factory
        self._secrets = secrets
        self._links = Links(tokens, public_url.rstrip("/"))
        self._sender = sender
        self.instance_id = (instance_id or default_instance_id())[:64]
        self._poll = poll_interval_s
        self._clock = clock
        self.metrics = metrics or AlertingMetrics()
        self._outbox_health = outbox_health
        self._outbox_read_at = 0.0
        self._leadership = Leadership(session_factory, self.instance_id, name=LEASE_NAME)
        self._changes_seen = 0
        self._stopping = asyncio.Event()
        self.failures = FailureLog("alerter pass", log)
        self._pass_started: float | None = None
        self._global = global_maintenance or GlobalMaintenanceCache()
        self._released: tuple[datetime | None, datetime] | None = None  # the global maintenance released last
        self._released_at = 0.0

    @property
    def leading(self) -> bool:
        return self._leadership.holding

    def problem(self) -> str | None:
        """Why this alerter is not healthy (for `/readyz`), or None: its passes keep failing."""
        failing_for = self.failures.failing_for_s
        if failing_for >= UNHEALTHY_AFTER_S:
            return f"alerter passes failing for {failing_for:.0f} s (is the database reachable?)"
        started = self._pass_started
        if started is not None and time.monotonic() - started >= UNHEALTHY_AFTER_S:
            return f"alerter pass running for {time.monotonic() - started:.0f} s (is the database frozen?)"
        return None

    async def run(self) -> None:
        """Poll until :meth:`stop`; errors are logged (rate-limited) and the next pass tries again."""
        self._stopping.clear()
        await run_until_stopped(
            self._stopping, self.tick, every_s=self._poll, what="alerter pass", log=log, failures=self.failures
        )
        await asyncio.to_thread(self._leadership.release)
        self._observe_leadership()

    async def stop(self) -> None:
        """Stop the loop (if running) and give up the lease so a standby takes over at once."""
        self._stopping.set()
        await asyncio.to_thread(self._leadership.release)
        self._observe_leadership()

    async def tick(self) -> None:
        """One pass (when leading)."""
        started = time.perf_counter()
        self._pass_started = time.monotonic()
        try:
            await asyncio.to_thread(self._pass)
        except Exception:
            self.metrics.pass_failures.inc()
            raise
        finally:
            self._pass_started = None
            self._observe_leadership()
        self.metrics.pass_seconds.observe(time.perf_counter() - started)

    def _observe_leadership(self) -> None:
        self.metrics.leader.set(1 if self._leadership.holding else 0)
        if self._leadership.changes != self._changes_seen:
            self.metrics.leadership_changes.inc(self._leadership.changes - self._changes_seen)
            self._changes_seen = self._leadership.changes

    # --- one pass ------------------------------------------------------------------------------

    def _explicit_now(self) -> datetime | None:
        return self._clock() if self._clock is not None else None

    def _still_leading(self) -> bool:
        """Checked between chunks: renews the lease when due, so a long pass keeps it (or stops early)."""
        return self._leadership.is_leader(self._explicit_now())

    def _pass(self) -> int:
        explicit = self._explicit_now()
        if not self._leadership.is_leader(explicit):
            return 0
        with self._sessions() as session:
            now = explicit or database_now(session)
            windows = load_windows(session)
            maintenance = self._global.status(session, now)
            open_incidents: dict[int, int] = {
                monitor_id: incident_id
                for incident_id, monitor_id in session.execute(
                    select(Incident.id, Incident.monitor_id).where(
                        Incident.state.in_(OPEN_STATES), Incident.monitor_id.is_not(None)
                    )
                )
                if monitor_id is not None
            }
            views = monitor_views(session, now, candidate_monitors(session, open_incidents))
            self._read_outbox(session)
            session.rollback()
        self.metrics.global_maintenance.set(1 if maintenance.on else 0)
        if not maintenance.on:
            self._release_held(maintenance)
        # Only changes need a transaction: down without an incident, or up with one.
        changes = [
            view
            for view in views
            if (view.confirmed_down and view.monitor_id not in open_incidents)
            or (view.confirmed_up and view.monitor_id in open_incidents)
        ]
        specs = PassSpecs()
        queued = 0
        for judged in chunks(changes):
            if not self._still_leading():
                return queued
            queued += self._woken(
                self._in_chunks(
                    functools.partial(
                        self._confirm_chunk, judged, open_incidents, windows, now, specs, maintenance=maintenance
                    )
                )
            )
        with self._sessions() as session:
            due = due_escalations(session, now)
            session.rollback()
        labels = {view.monitor_id: view for view in views}
        for steps in chunks(due):
            if not self._still_leading():
                return queued
            queued += self._woken(
                self._in_chunks(
                    functools.partial(self._escalate_chunk, steps, labels, windows, now, specs, maintenance=maintenance)
                )
            )
        if maintenance.on:
            return queued
        with self._sessions() as session:
            reassignments = pending_reassignments(session)
            session.rollback()
        for events in chunks(reassignments):
            if not self._still_leading():
                return queued
            queued += self._woken(self._in_chunks(functools.partial(self._reassign_chunk, events, now, specs)))
        return queued

    def _reassign_chunk(self, chunk: Sequence[int], now: datetime, specs: PassSpecs, *, isolated: bool) -> int:
        with self._writing() as session:
            items = [
                (
                    f"reassignment {event_id}",
                    functools.partial(self._reassign, session, event_id, now, specs),
                )
                for event_id in chunk
            ]
            return _each(session, items, isolated=isolated)

    def _reassign(self, session: Session, event_id: int, now: datetime, specs: PassSpecs) -> int:
        return len(fire_reassignment(session, event_id, self._secrets, self._links, now, specs=specs) or [])

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A session for work that reads, then writes. On SQLite it holds the write lock from BEGIN: a busy
        probe's writer commits every few hundred milliseconds, and each commit between a chunk's reads and
        its writes failed it ("database is locked") until `retry_conflicts` ran out of attempts."""
        with self._sessions() as session:
            take_write_lock(session)
            yield session

    def _woken(self, queued: int) -> int:
        """Wake the sender after a chunk that queued messages: it delivers them while the next chunk is
        prepared (wake is thread-safe)."""
        if queued and self._sender is not None:
            self._sender.wake()
        return queued

    @staticmethod
    def _in_chunks(body: Callable[..., int]) -> int:
        """One chunk in one transaction, again after a lock conflict. When a row another writer added first
        breaks a unique key (an incident, a page), the chunk runs again with a savepoint per item, so that
        item alone is skipped."""
        try:
            return retry_conflicts(functools.partial(body, isolated=False))
        except IntegrityError:
            return retry_conflicts(functools.partial(body, isolated=True))

    def _release_held(self, maintenance: GlobalMaintenance) -> None:
        """Once global maintenance has ended, the steps it held fall due at its end (see RELEASE_AGAIN_S)."""
        ended = maintenance.ended_at
        if ended is None:
            return
        key = (maintenance.started_at, ended)
        if key == self._released and time.monotonic() - self._released_at < RELEASE_AGAIN_S:
            return

        def release() -> int:
            with self._writing() as session:
                released = release_held(session, ended)
                session.commit()
                return released

        released = retry_conflicts(release)
        self._released, self._released_at = key, time.monotonic()
        if released:
            log.info("global maintenance ended at %s: %d held escalation step(s) fall due", ended.isoformat(), released)

    def _read_outbox(self, session: Session) -> None:
        if self._outbox_health is None or time.monotonic() - self._outbox_read_at < OUTBOX_EVERY_S:
            return
        health = self._outbox_health(session)
        self.metrics.outbox_pending.set(health.pending)
        self.metrics.outbox_oldest.set(health.oldest_pending_age_s or 0.0)
        self.metrics.pages_given_up.set(health.given_up_total)
        self._outbox_read_at = time.monotonic()

    def _confirm_chunk(
        self,
        chunk: Sequence[MonitorView],
        open_incidents: dict[int, int],
        windows: Sequence[WindowDef],
        now: datetime,
        specs: PassSpecs,
        *,
        maintenance: GlobalMaintenance,
        isolated: bool,
    ) -> int:
        with self._writing() as session:
            down = [view for view in chunk if view.confirmed_down]
            flapped = recently_resolved_by_monitor(session, [view.monitor_id for view in down], now)
            codes = iter(new_codes(session, len(down) - len(flapped)))
            judgements: list[tuple[str, Callable[[], int]]] = []
            for view in chunk:
                incident_id = open_incidents.get(view.monitor_id)
                if view.confirmed_up:
                    if incident_id is not None:
                        judgements.append((view.ref, functools.partial(self._resolve, session, incident_id, now)))
                elif view.monitor_id in flapped:
                    reopen = functools.partial(
                        self._reopen, session, flapped[view.monitor_id], view, windows, now, maintenance=maintenance
                    )
                    judgements.append((view.ref, reopen))
                else:
                    open_ = functools.partial(
                        self._open, session, next(codes), view, windows, now, maintenance=maintenance, specs=specs
                    )
                    judgements.append((view.ref, open_))
            return _each(session, judgements, isolated=isolated)

    def _resolve(self, session: Session, incident_id: int, now: datetime) -> int:
        return len(resolve(session, incident_id, at=now, ack_url=self._links.ack_url(incident_id)) or [])

    def _open(
        self,
        session: Session,
        code: str,
        view: MonitorView,
        windows: Sequence[WindowDef],
        now: datetime,
        *,
        maintenance: GlobalMaintenance,
        specs: PassSpecs,
    ) -> int:
        active = active_windows(windows, view.namespace, view.name, view.labels, now)
        snapshot = copy.deepcopy(policy_snapshot(session, view.namespace, view.escalation_policy, specs=specs))
        incident = Incident(
            code=code,
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
        _suppressed_for(session, incident.id, maintenance, active, now)
        session.flush()
        self.metrics.incidents_opened.labels("opened").inc()
        log.info("incident %s opened: %s", incident.code, incident.title)
        return 0

    def _reopen(
        self,
        session: Session,
        incident: Incident,
        view: MonitorView,
        windows: Sequence[WindowDef],
        now: datetime,
        *,
        maintenance: GlobalMaintenance,
    ) -> int:
        active = active_windows(windows, view.namespace, view.name, view.labels, now)
        lock_incident(session, incident.id)
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
        if policy is not None:
            rearm(session, incident.id, policy, now)
        _suppressed_for(session, incident.id, maintenance, active, now)
        session.flush()
        self.metrics.incidents_opened.labels("reopened").inc()
        log.info("incident %s reopened", incident.code)
        return 0

    def _escalate_chunk(
        self,
        chunk: Sequence[Due],
        labels: dict[int, MonitorView],
        windows: Sequence[WindowDef],
        now: datetime,
        specs: PassSpecs,
        *,
        maintenance: GlobalMaintenance,
        isolated: bool,
    ) -> int:
        with self._writing() as session:
            steps = [
                (
                    f"incident {due.incident_id}",
                    functools.partial(
                        self._escalate,
                        session,
                        due,
                        labels.get(due.monitor_id or -1),
                        windows,
                        now,
                        maintenance=maintenance,
                        specs=specs,
                    ),
                )
                for due in chunk
            ]
            return _each(session, steps, isolated=isolated)

    def _escalate(
        self,
        session: Session,
        due: Due,
        view: MonitorView | None,
        windows: Sequence[WindowDef],
        now: datetime,
        *,
        maintenance: GlobalMaintenance,
        specs: PassSpecs,
    ) -> int:
        if maintenance.on and due.incident_state == IncidentState.OPEN.value:
            # Every monitor, whether or not it still exists: no page goes out anywhere.
            lock_incident(session, due.incident_id)
            if hold(session, due):
                _suppressed_globally(session, due.incident_id, maintenance, now)
            return 0
        if view is not None and due.incident_state == IncidentState.OPEN.value:
            active = active_windows(windows, view.namespace, view.name, view.labels, now)
            if active:
                window = active[0]
                lock_incident(session, due.incident_id)
                if defer(session, due, window.end):
                    _suppressed(session, due.incident_id, window, now)
                return 0
        queued = fire_step(session, due, self._secrets, self._links, specs=specs)
        if queued is not None:
            self.metrics.steps_fired.inc()
        return len(queued or [])


def _each(session: Session, items: Sequence[tuple[str, Callable[[], int]]], *, isolated: bool) -> int:
    """Run each item of a chunk in the session's transaction and commit; the messages they queued.

    ``isolated``: each in a savepoint of its own, so a row another writer added first (a unique key: one
    open incident per monitor, one page per key) skips that item alone; the next pass sees the result.
    """
    queued = 0
    for what, item in items:
        if not isolated:
            queued += item()
            continue
        try:
            with session.begin_nested():
                queued += item()
        except IntegrityError:
            log.info("%s: already written by another writer; skipped", what)
    session.commit()
    return queued


def _suppressed_for(
    session: Session, incident_id: int, maintenance: GlobalMaintenance, windows: Sequence[ActiveWindow], now: datetime
) -> None:
    """On opening or reopening: say why nobody will be paged, if so (global maintenance names itself first)."""
    if maintenance.on:
        _suppressed_globally(session, incident_id, maintenance, now)
        return
    for window in windows[:1]:
        _suppressed(session, incident_id, window, now)


def _suppressed_events(session: Session, incident_id: int) -> list[dict[str, object] | None]:
    return list(
        session.scalars(
            select(IncidentEvent.data).where(
                IncidentEvent.incident_id == incident_id, IncidentEvent.type == IncidentEventType.SUPPRESSED.value
            )
        )
    )


def _suppressed_globally(session: Session, incident_id: int, maintenance: GlobalMaintenance, now: datetime) -> None:
    """Record that paging waits for global maintenance (once per incident and global maintenance)."""
    started = maintenance.started_at.isoformat() if maintenance.started_at is not None else ""
    if any((data or {}).get("global_maintenance") == started for data in _suppressed_events(session, incident_id)):
        return
    until = maintenance.until.isoformat() if maintenance.until is not None else None
    why = maintenance.message if len(maintenance.message) <= 200 else maintenance.message[:199] + "…"
    add_event(
        session,
        incident_id,
        IncidentEventType.SUPPRESSED,
        now,
        f"global maintenance until {until or 'it is turned off'}: nobody is paged ({why})",
        data={"global_maintenance": started, "until": until},
    )


def _suppressed(session: Session, incident_id: int, window: ActiveWindow, now: datetime) -> None:
    """Record that paging waits for ``window`` (once per window occurrence)."""
    data = {"window": window.ref, "until": window.end.isoformat()}
    if data in _suppressed_events(session, incident_id):
        return
    add_event(
        session,
        incident_id,
        IncidentEventType.SUPPRESSED,
        now,
        f"maintenance window {window.ref} until {window.end.isoformat()}: nobody is paged",
        data=data,
    )
