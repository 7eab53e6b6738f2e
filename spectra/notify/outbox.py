"""The outbox: `enqueue` writes one row per message (idempotent); a `Sender` delivers due rows.

Delivery is at-least-once with a bounded duplicate window: a row is claimed with an atomic conditional
UPDATE (status -> sending, attempts + 1, next_attempt_at -> now + lease), so two senders never send the
same row; if a sender dies between the provider's answer and its record, the row is reclaimed once its
lease runs out and sent again (at most one duplicate per crash; see docs/notifications.md).

A live sender never loses an outcome: when the database does not take it, the sender holds it in memory
and records it as soon as the database is back (and never claims that row meanwhile). Each claimed row
is sent by a task of its own on the sender's own threads, so one hanging provider holds up nothing else.
Temporary failures are retried for RETRY_WINDOW_S after the message was queued; a message refused or
given up is written to its incident's timeline, and a page's incident escalates to its next step at once.

Message bodies carry link tokens (ack, confirm, unsubscribe), so no row holds one in clear: the payload
column is sealed at rest (:mod:`spectra.store.sealing`) and emptied once delivery is final (sent or given
up); errors and timeline notes lose anything shaped like a link token or a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spectra.api.secrets import SecretResolver
from spectra.notify.channel import (
    Channel,
    ChannelName,
    Delivery,
    Message,
    PermanentFailure,
    TemporaryFailure,
    blocking_calls_on,
)
from spectra.notify.console import ConsoleChannel
from spectra.notify.metrics import SenderMetrics
from spectra.notify.registry import channels_from_env
from spectra.runtime.loop import FailureLog
from spectra.runtime.redaction import CREDENTIAL_SHAPES, REDACTED
from spectra.store.engine import retry_conflicts
from spectra.store.incidents import EscalationState, EscalationStatus, Incident, IncidentEvent, IncidentEventType
from spectra.store.notifications import Notification, NotificationAttempt, NotificationStatus
from spectra.store.sealing import UNREADABLE

log = logging.getLogger("spectra.notify.outbox")

T = TypeVar("T")

SECRET_REF_PREFIX: Final = "secretref:"  # noqa: S105 - a prefix, not a secret
ERROR_MAX: Final = 1000
TIMELINE_REASON_MAX: Final = 300
BATCH: Final = 50
# One provider call, end to end (the channels' own HTTP timeouts are shorter: 10 s + 5 s).
SEND_TIMEOUT_S: Final = 20.0
# A claim outlives the longest send by the time it takes to record the outcome, so a live sender is
# never overtaken, and a crashed sender's row is sent again LEASE_S after its claim, not minutes later.
LEASE_S: Final = SEND_TIMEOUT_S + 10.0
# Temporary failures (5xx, 429, network) are retried this long after the message was queued; a provider
# outage shorter than this delays pages, it does not lose them.
RETRY_WINDOW_S: Final = 30 * 60.0
BASE_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 60.0
CONCURRENCY: Final = 16
DATABASE_THREADS: Final = 4
# Holding outcomes the database refused: first retry after this, doubling up to RECORD_RETRY_MAX_S, so a
# recovered database gets them within seconds (well inside a lease).
RECORD_RETRY_FIRST_S: Final = 0.25
RECORD_RETRY_MAX_S: Final = 2.0
# On stop: how long to keep trying to record held outcomes before leaving them to the lease.
STOP_RECORD_PATIENCE_S: Final = 10.0

REFUSED: Final = "refused"  # a permanent failure: 4xx, bad recipient, missing secret
EXPIRED: Final = "expired"  # temporary failures for the whole retry window

_DUE_STATUSES: Final = (
    NotificationStatus.PENDING.value,
    NotificationStatus.FAILED.value,
    NotificationStatus.SENDING.value,  # a sender died holding it: due again when its lease runs out
)

_FINAL_STATUSES: Final = (NotificationStatus.SENT.value, NotificationStatus.DEAD.value)

SessionFactory = Callable[[], Session]


def _now() -> datetime:
    return datetime.now(UTC)


def secret_ref(namespace: str, name: str, key: str) -> str:
    """How webhook and Slack recipients are stored: a reference, never the URL."""
    return f"{SECRET_REF_PREFIX}{namespace}/{name}/{key}"


def parse_secret_ref(recipient: str) -> tuple[str, str, str] | None:
    if not recipient.startswith(SECRET_REF_PREFIX):
        return None
    parts = recipient[len(SECRET_REF_PREFIX) :].split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"bad secret reference {recipient!r}: expected secretref:namespace/secret/key")
    return parts[0], parts[1], parts[2]


def enqueue(session: Session, message: Message, *, not_before: datetime | None = None) -> bool:
    """Queue `message` in the caller's transaction; False (and nothing written) when its key exists."""
    exists = session.scalar(sa.select(Notification.id).where(Notification.idempotency_key == message.idempotency_key))
    if exists is not None:
        return False
    row = _row(message, not_before)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # a concurrent writer queued the same key first
        return False
    return True


def enqueue_many(session: Session, messages: Sequence[Message]) -> list[Message]:
    """Queue every message whose key is new, with one query for the keys; the messages queued.

    For the alerter's passes, which queue hundreds of pages in a mass outage: no savepoint per message.
    A message another writer queues at the same moment breaks the unique key at flush and fails the
    caller's transaction, which runs it again (and then finds the key).
    """
    if not messages:
        return []
    keys = [message.idempotency_key for message in messages]
    taken = set(session.scalars(sa.select(Notification.idempotency_key).where(Notification.idempotency_key.in_(keys))))
    queued: list[Message] = []
    for message in messages:
        if message.idempotency_key in taken:
            continue
        taken.add(message.idempotency_key)
        session.add(_row(message, None))
        queued.append(message)
    return queued


def _row(message: Message, not_before: datetime | None) -> Notification:
    if message.channel in (ChannelName.WEBHOOK, ChannelName.SLACK):
        # URLs are secrets: only references reach the database.
        parse_secret_ref(message.recipient) or _refuse_inline_url(message)
    now = _now()
    return Notification(
        idempotency_key=message.idempotency_key,
        incident_id=message.incident_id,
        channel=message.channel.value,
        recipient=message.recipient,
        subject=message.subject[:500],
        payload={
            "text": message.text,
            "html": message.html,
            "facts": message.facts,
            "headers": message.headers,
            "subject": message.subject,
        },
        status=NotificationStatus.PENDING.value,
        attempts=0,
        next_attempt_at=max(not_before, now) if not_before is not None else now,
        created_at=now,
    )


def _refuse_inline_url(message: Message) -> bool:
    raise ValueError(f"{message.channel.value} recipients must be secretref:namespace/secret/key references")


def message_of(row: Notification) -> Message:
    payload: dict[str, Any] = row.payload or {}
    if UNREADABLE in payload:
        # Sealed with another SPECTRA_SECRET_KEY: its links would be refused anyway; the subject (incident
        # code and title, or what the mail is about) still tells the recipient something.
        log.warning("notification %s: body %s; sending its subject alone", row.id, payload[UNREADABLE])
        payload = {"text": row.subject}
    return Message(
        channel=ChannelName(row.channel),
        recipient=row.recipient,
        subject=str(payload.get("subject") or row.subject or ""),
        text=str(payload.get("text") or ""),
        idempotency_key=row.idempotency_key,
        html=payload.get("html"),
        incident_id=row.incident_id,
        facts=dict(payload.get("facts") or {}),
        headers=dict(payload.get("headers") or {}),
    )


@dataclass(frozen=True)
class OutboxHealth:
    """The outbox as the database sees it, for gauges: what waits, how long the oldest has waited, what died."""

    pending: int  # queued, failed (to be retried) or being sent
    oldest_pending_age_s: float | None  # since the oldest waiting message was queued; None when none waits
    given_up_total: int  # rows that will never be delivered: refused or given up (until retention removes them)


def outbox_health(session: Session, now: datetime) -> OutboxHealth:
    """Counts for the alerter's metrics; two indexed aggregate queries."""
    pending, oldest = session.execute(
        sa.select(sa.func.count(), sa.func.min(Notification.created_at)).where(Notification.status.in_(_DUE_STATUSES))
    ).one()
    dead = session.scalar(sa.select(sa.func.count()).where(Notification.status == NotificationStatus.DEAD.value))
    age = max((now - oldest).total_seconds(), 0.0) if oldest is not None else None
    return OutboxHealth(pending=int(pending or 0), oldest_pending_age_s=age, given_up_total=int(dead or 0))


@dataclass(frozen=True)
class _Claim:
    id: int
    attempts: int  # after the claim's increment: the number of this attempt
    reclaimed: bool  # taken over from a sender whose lease ran out
    message: Message
    queued_at: datetime  # the retry window counts from here
    failing: bool  # the previous attempt failed (the timeline was told)


@dataclass(frozen=True)
class _Outcome:
    status: str
    outcome: str  # sent | retry | failed
    status_code: int | None = None
    error: str | None = None  # for the row and the attempt log
    provider_message_id: str | None = None
    next_attempt_at: datetime | None = None
    reason: str | None = None  # what went wrong, for the incident's timeline
    gave_up: str | None = None  # REFUSED | EXPIRED when the message will never be delivered
    verdict: str = "gave up"  # how the timeline says it was given up


@dataclass(frozen=True)
class _Held:
    """An outcome waiting to be recorded."""

    claim: _Claim
    outcome: _Outcome
    duration_ms: float


class Sender:
    """Delivers due notifications with retry, backoff (full jitter) and Retry-After; records every attempt.

    `run` claims due rows while earlier ones are still being sent (at most `concurrency` at a time), each
    in a task of its own; `send_due_once` does one claim-and-send pass and waits for it (for tests).
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        channels: Mapping[ChannelName, Channel] | None = None,
        *,
        secrets: SecretResolver | None = None,
        metrics: SenderMetrics | None = None,
        poll_interval_s: float = 0.25,
        retry_window_s: float = RETRY_WINDOW_S,
        base_backoff_s: float = BASE_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        send_timeout_s: float = SEND_TIMEOUT_S,
        lease_s: float = LEASE_S,
        concurrency: int = CONCURRENCY,
    ) -> None:
        if lease_s <= send_timeout_s:
            raise ValueError(f"lease_s ({lease_s}) must outlast send_timeout_s ({send_timeout_s})")
        self._session_factory = session_factory
        self._channels: Mapping[ChannelName, Channel] = channels if channels is not None else channels_from_env()
        self._console: Channel = self._channels.get(ChannelName.CONSOLE) or ConsoleChannel()
        self._secrets = secrets
        self._metrics = metrics
        self.poll_interval_s = poll_interval_s
        self.retry_window_s = retry_window_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.send_timeout_s = send_timeout_s
        self.lease_s = lease_s
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        # Rows this sender has claimed and not yet settled, and outcomes the database has not taken yet:
        # neither is claimed again by this sender, whatever its lease says.
        self._active: set[int] = set()
        self._held: dict[int, _Held] = {}
        self._claim_failures = FailureLog("outbox claim", log)
        self._record_failures = FailureLog("recording held outcomes", log)
        self._sending: dict[int, asyncio.Task[None]] = {}
        self._provider_threads: ThreadPoolExecutor | None = None
        self._database_threads: ThreadPoolExecutor | None = None
        self._wakeup = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._recorder_event: asyncio.Event | None = None
        self._stopping = False
        self._done: asyncio.Event | None = None

    # -- loop -----------------------------------------------------------------------------------
    def wake(self) -> None:
        """Send due rows now instead of at the next poll (safe from any thread)."""
        self._wakeup.set()
        loop, event = self._loop, self._event
        if loop is None or event is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(event.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._recorder_event = asyncio.Event()
        self._done = asyncio.Event()
        self._stopping = False
        recorder = asyncio.create_task(self._keep_recording(), name="outbox-recorder")
        try:
            while not self._stopping:
                self._event.clear()
                self._wakeup.clear()
                room = min(self.concurrency - len(self._sending), BATCH)
                if room > 0:
                    claims = await self._claim_safely(room)
                    for claim in claims:
                        self._start(claim)
                    if len(claims) == room and len(self._sending) < self.concurrency:
                        continue  # a full batch: more may be due
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), self.poll_interval_s)
            await self._settle()
        finally:
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
            self._done.set()

    async def stop(self) -> None:
        self._stopping = True
        self.wake()
        if self._done is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), self.send_timeout_s + STOP_RECORD_PATIENCE_S + 5)
        for channel in {id(c): c for c in self._channels.values()}.values():
            closer = getattr(channel, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
        for pool in (self._provider_threads, self._database_threads):
            if pool is not None:
                # A provider call that hangs keeps its thread until the client's own timeout; not waited for.
                pool.shutdown(wait=False, cancel_futures=True)
        self._provider_threads = self._database_threads = None

    async def _settle(self) -> None:
        """On stop: let the sends in flight finish, then record what is held, for a while."""
        if self._sending:
            await asyncio.wait(list(self._sending.values()), timeout=self.send_timeout_s + 5)
        deadline = time.monotonic() + STOP_RECORD_PATIENCE_S
        while self._held and time.monotonic() < deadline:
            if not await self._record_held():
                await asyncio.sleep(RECORD_RETRY_MAX_S)
        if self._held:
            log.error(
                "stopping with %d unrecorded outcome(s) (notifications %s): sent again when their lease runs out",
                len(self._held),
                ", ".join(map(str, sorted(self._held))),
            )

    def _start(self, claim: _Claim) -> None:
        task = asyncio.create_task(self._deliver(claim), name=f"outbox-send-{claim.id}")
        self._sending[claim.id] = task
        task.add_done_callback(functools.partial(self._finished, claim.id))

    def _finished(self, row_id: int, task: asyncio.Task[None]) -> None:
        self._sending.pop(row_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("sending notification %s failed", row_id, exc_info=task.exception())
        if self._event is not None:
            self._event.set()  # room for another claim

    async def _keep_recording(self) -> None:
        """Record held outcomes until the database takes them, retrying with backoff for as long as it takes."""
        assert self._recorder_event is not None
        pause = RECORD_RETRY_FIRST_S
        while True:
            if not self._held:
                pause = RECORD_RETRY_FIRST_S
                await self._recorder_event.wait()
                self._recorder_event.clear()
                continue
            if not await self._record_held():
                await asyncio.sleep(pause * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
                pause = min(pause * 2, RECORD_RETRY_MAX_S)

    # -- one pass -------------------------------------------------------------------------------
    async def send_due_once(self) -> int:
        """Record held outcomes, claim what is due, send it, record the outcomes; returns how many rows were claimed."""
        await self._record_held()
        claims = await self._in_database(self._claim_due, BATCH, self._busy())
        self._active.update(claim.id for claim in claims)
        await asyncio.gather(*(self._deliver(claim) for claim in claims))
        return len(claims)

    async def _claim_safely(self, limit: int) -> list[_Claim]:
        try:
            claims = await self._in_database(self._claim_due, limit, self._busy())
        except Exception as error:
            self._claim_failures.failed(error)  # rate-limited: an outage is a few lines, not one per poll
            return []
        self._claim_failures.succeeded()
        self._active.update(claim.id for claim in claims)
        return claims

    def _busy(self) -> frozenset[int]:
        return frozenset(self._active) | frozenset(self._held)

    async def _in_database(self, call: Callable[..., T], *args: Any) -> T:
        """Database work on the sender's own threads (asyncio's default pool is the alerter's)."""
        if self._database_threads is None:
            self._database_threads = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="spectra-outbox-db")
        return await asyncio.get_running_loop().run_in_executor(self._database_threads, functools.partial(call, *args))

    def _provider_pool(self) -> ThreadPoolExecutor:
        if self._provider_threads is None:
            # Twice the concurrency: a call that timed out keeps its thread until the client gives up.
            self._provider_threads = ThreadPoolExecutor(2 * self.concurrency, thread_name_prefix="spectra-outbox")
        return self._provider_threads

    def _claim_due(self, limit: int, busy: frozenset[int]) -> list[_Claim]:
        now = _now()
        table = Notification.__table__
        with self._session_factory() as session:
            due = sa.select(Notification.id, Notification.status, Notification.attempts).where(
                Notification.status.in_(_DUE_STATUSES), Notification.next_attempt_at <= now
            )
            if busy:
                due = due.where(Notification.id.not_in(busy))
            rows = session.execute(due.order_by(Notification.next_attempt_at, Notification.id).limit(limit)).all()
            # End the read transaction first: on SQLite a read that turns into a write cannot wait for
            # the lock (SQLITE_BUSY at once); each claim below is its own short write transaction.
            session.commit()
            claimed: list[tuple[int, int, bool]] = []
            for row_id, status, attempts in rows:
                # Conditional on what we read: of two senders, exactly one matches (attempts changes).
                result = session.execute(
                    sa.update(table)
                    .where(
                        table.c.id == row_id,
                        table.c.attempts == attempts,
                        table.c.status == status,
                        table.c.next_attempt_at <= now,
                    )
                    .values(
                        status=NotificationStatus.SENDING.value,
                        attempts=attempts + 1,
                        next_attempt_at=now + timedelta(seconds=self.lease_s),
                    )
                )
                session.commit()
                if getattr(result, "rowcount", 0) == 1:
                    claimed.append((row_id, attempts + 1, status == NotificationStatus.SENDING.value))
            if not claimed:
                return []
            loaded = {
                n.id: n
                for n in session.scalars(sa.select(Notification).where(Notification.id.in_([c[0] for c in claimed])))
            }
            claims: list[_Claim] = []
            for row_id, attempts, reclaimed in claimed:
                if reclaimed:
                    # The previous sender's lease ran out: we cannot know whether the provider got it.
                    session.add(
                        NotificationAttempt(
                            notification_id=row_id,
                            at=now,
                            outcome="lost",
                            error="sender lease expired before the outcome was recorded; sending again",
                        )
                    )
                row = loaded[row_id]
                claims.append(
                    _Claim(row_id, attempts, reclaimed, message_of(row), row.created_at, row.last_error is not None)
                )
            session.commit()
            return claims

    async def _deliver(self, claim: _Claim) -> None:
        try:
            async with self._slots:
                started = time.perf_counter()
                secret_values: list[str] = []
                if self._metrics is not None:
                    self._metrics.in_flight.inc()
                try:
                    with blocking_calls_on(self._provider_pool()):
                        outcome = await self._attempt(claim, secret_values)
                except Exception as exc:  # a channel bug must not kill the loop; retried like a 5xx
                    outcome = self._retry_or_give_up(claim, f"{type(exc).__name__}: {exc}", None, None)
                finally:
                    if self._metrics is not None:
                        self._metrics.in_flight.dec()
                duration_ms = (time.perf_counter() - started) * 1000
            outcome = replace(
                outcome, error=_scrub(outcome.error, secret_values), reason=_scrub(outcome.reason, secret_values)
            )
            self._count(claim, outcome)
            await self._record_or_hold(_Held(claim, outcome, duration_ms))
        finally:
            self._active.discard(claim.id)

    async def _attempt(self, claim: _Claim, secret_values: list[str]) -> _Outcome:
        message = claim.message
        try:
            ref = parse_secret_ref(message.recipient)
        except ValueError as exc:
            return _refused(str(exc), None)
        if ref is not None:
            value = self._secrets.get(*ref) if self._secrets is not None else None
            if not value:
                return _refused(f"secret {message.recipient} not found", None)
            secret_values.append(value)
            message = replace(message, recipient=value)
        channel = self._channels.get(message.channel) or self._console
        try:
            delivery: Delivery = await asyncio.wait_for(channel.send(message), self.send_timeout_s)
        except PermanentFailure as exc:
            return _refused(str(exc), exc.status_code)
        except TemporaryFailure as exc:
            return self._retry_or_give_up(claim, str(exc), exc.status_code, exc.retry_after_s)
        except TimeoutError:
            return self._retry_or_give_up(claim, f"{message.channel.value} send timed out", None, None)
        return _Outcome(
            NotificationStatus.SENT.value,
            "sent",
            delivery.status_code,
            provider_message_id=delivery.provider_message_id,
        )

    def backoff_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**(attempt-1))), raised to Retry-After when that is larger."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2 ** min(max(attempt - 1, 0), 64))
        delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return delay

    def _retry_or_give_up(
        self, claim: _Claim, error: str, status_code: int | None, retry_after_s: float | None
    ) -> _Outcome:
        now = _now()
        waited_s = (now - claim.queued_at).total_seconds()
        if waited_s >= self.retry_window_s:
            verdict = f"gave up after {claim.attempts} attempts in {_duration(waited_s)}"
            return _Outcome(
                NotificationStatus.DEAD.value,
                "failed",
                status_code,
                f"{verdict}: {error}",
                reason=error,
                gave_up=EXPIRED,
                verdict=verdict,
            )
        when = now + timedelta(seconds=self.backoff_s(claim.attempts, retry_after_s))
        return _Outcome(
            NotificationStatus.FAILED.value, "retry", status_code, error, next_attempt_at=when, reason=error
        )

    def _count(self, claim: _Claim, outcome: _Outcome) -> None:
        channel = claim.message.channel.value
        if outcome.status == NotificationStatus.SENT.value:
            log.info("notification %s sent via %s", claim.id, channel)
        else:
            log.warning("notification %s via %s: %s (%s)", claim.id, channel, outcome.status, outcome.error)
        if self._metrics is None:
            return
        if outcome.status == NotificationStatus.SENT.value:
            self._metrics.sent.labels(channel).inc()
        elif outcome.gave_up is not None:
            self._metrics.given_up.labels(channel, outcome.gave_up).inc()
        else:
            self._metrics.failed.labels(channel).inc()

    # -- recording ------------------------------------------------------------------------------
    async def _record_or_hold(self, held: _Held) -> None:
        try:
            await self._in_database(retry_conflicts, functools.partial(self._record, held))
        except Exception as exc:
            log.warning(
                "notification %s: could not record its outcome (%s: %s); holding it and retrying",
                held.claim.id,
                type(exc).__name__,
                str(exc)[:200],
            )
            self._hold(held)

    def _hold(self, held: _Held) -> None:
        self._held[held.claim.id] = held
        if self._metrics is not None:
            self._metrics.unrecorded.set(len(self._held))
        if self._recorder_event is not None:
            self._recorder_event.set()

    async def _record_held(self) -> bool:
        """Record the held outcomes, oldest first; False when the database still refuses."""
        for row_id, held in list(self._held.items()):
            try:
                await self._in_database(retry_conflicts, functools.partial(self._record, held))
            except Exception as exc:
                self._record_failures.failed(exc)
                return False
            self._record_failures.succeeded()
            self._held.pop(row_id, None)
            if self._metrics is not None:
                self._metrics.unrecorded.set(len(self._held))
            log.info("notification %s: held outcome recorded", row_id)
        return True

    def _record(self, held: _Held) -> None:
        claim, outcome = held.claim, held.outcome
        now = _now()
        table = Notification.__table__
        values: dict[str, Any] = {"status": outcome.status, "last_error": _clip(outcome.error)}
        if outcome.status == NotificationStatus.SENT.value:
            values.update(sent_at=now, provider_message_id=outcome.provider_message_id, last_error=None)
        elif outcome.next_attempt_at is not None:
            values["next_attempt_at"] = outcome.next_attempt_at
        if outcome.status in _FINAL_STATUSES:
            values["payload"] = {}  # the body and its links have no use any more
        with self._session_factory() as session:
            result = session.execute(
                sa.update(table)
                .where(
                    table.c.id == claim.id,
                    table.c.attempts == claim.attempts,
                    table.c.status == NotificationStatus.SENDING.value,
                )
                .values(**values)
            )
            if getattr(result, "rowcount", 0) == 1:
                self._tell_timeline(session, claim, outcome, now)
            else:
                log.warning("notification %s was reclaimed by another sender before its outcome was recorded", claim.id)
            session.add(
                NotificationAttempt(
                    notification_id=claim.id,
                    at=now,
                    outcome=outcome.outcome,
                    status_code=outcome.status_code,
                    error=_clip(outcome.error),
                    duration_ms=round(held.duration_ms, 3),
                )
            )
            session.commit()

    def _tell_timeline(self, session: Session, claim: _Claim, outcome: _Outcome, now: datetime) -> None:
        """What the incident's timeline says about this attempt: given up (and the fallback), first failure,
        delivery after failures; nothing for a plain delivery (the alerter already wrote "paged")."""
        incident_id = claim.message.incident_id
        note = _timeline_note(claim, outcome, self.retry_window_s)
        if incident_id is None or note is None:
            return
        # The incident's row first, as every transaction that changes an incident (alerting/incidents.py,
        # "Lock order"): the escalation and timeline rows after it, so a racing ack waits instead of deadlocking.
        locked = sa.select(Incident.id).where(Incident.id == incident_id).with_for_update()
        if session.scalar(locked) is None:
            return  # deleted since: nothing to tell
        if outcome.gave_up is not None and _is_page(claim.message):
            note += "; " + _escalate_now(session, incident_id, now)
        session.add(
            IncidentEvent(
                incident_id=incident_id,
                type=IncidentEventType.NOTE.value,
                at=now,
                channel=claim.message.channel.value,
                message=note,
                data={
                    "notification_id": claim.id,
                    "attempt": claim.attempts,
                    "status_code": outcome.status_code,
                    "delivery": outcome.gave_up or outcome.outcome,
                },
            )
        )


def _refused(error: str, status_code: int | None) -> _Outcome:
    return _Outcome(NotificationStatus.DEAD.value, "failed", status_code, error, reason=error, gave_up=REFUSED)


def _is_page(message: Message) -> bool:
    """A page of an escalation step (keys `incident:{id}:step:...`), not a notice of an ack or resolution."""
    return message.incident_id is not None and message.idempotency_key.startswith(
        f"incident:{message.incident_id}:step:"
    )


def _timeline_note(claim: _Claim, outcome: _Outcome, retry_window_s: float) -> str | None:
    who = f"{claim.message.channel.value} to {claim.message.recipient}"
    reason = (outcome.reason or "")[:TIMELINE_REASON_MAX]
    if outcome.gave_up is not None:
        return f"{who} failed: {reason} — {outcome.verdict}"
    if outcome.outcome == "retry" and not claim.failing:
        return f"{who} failing: {reason}; retrying for up to {_duration(retry_window_s)}"
    if outcome.outcome == "sent" and claim.failing:
        return f"{who} delivered at attempt {claim.attempts}"
    return None


def _escalate_now(session: Session, incident_id: int, now: datetime) -> str:
    """The fallback when a page cannot be delivered: the incident's next escalation step is due now."""
    escalation = EscalationState.__table__
    pulled = session.execute(
        sa.update(escalation)
        .where(
            escalation.c.incident_id == incident_id,
            escalation.c.status == EscalationStatus.ACTIVE.value,
            escalation.c.next_step_at > now,
        )
        # The version moves, so an alerter working from what it read before retries from the new state.
        .values(next_step_at=now, version=escalation.c.version + 1)
    )
    if getattr(pulled, "rowcount", 0) == 1:
        return "next escalation step pulled forward"
    status, next_step_at = session.execute(
        sa.select(EscalationState.status, EscalationState.next_step_at).where(
            EscalationState.incident_id == incident_id
        )
    ).one_or_none() or (None, None)
    if status == EscalationStatus.ACTIVE.value and next_step_at is not None:
        return "next escalation step already due"
    return "no further escalation step"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _scrub(text: str | None, secrets: list[str]) -> str | None:
    """``text`` without the recipient's secret values, link tokens and credentials (a provider's error may
    quote what it was sent)."""
    if text is None:
        return None
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return CREDENTIAL_SHAPES.sub(REDACTED, text)


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:ERROR_MAX]


__all__ = [
    "OutboxHealth",
    "Sender",
    "channels_from_env",
    "enqueue",
    "message_of",
    "outbox_health",
    "parse_secret_ref",
    "secret_ref",
]
