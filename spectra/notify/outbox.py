"""The outbox: `enqueue` writes one row per message (idempotent); a `Sender` delivers due rows.

Delivery is at-least-once with a bounded duplicate window: a row is claimed with an atomic conditional
UPDATE (status -> sending, attempts + 1, next_attempt_at -> now + lease), so two senders never send the
same row; if a sender dies between the provider's answer and its record, the row is reclaimed once its
lease runs out and sent again (at most one duplicate per crash; see docs/notifications.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

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
)
from spectra.notify.console import ConsoleChannel
from spectra.notify.registry import channels_from_env
from spectra.store.notifications import Notification, NotificationAttempt, NotificationStatus

log = logging.getLogger("spectra.notify.outbox")

SECRET_REF_PREFIX: Final = "secretref:"  # noqa: S105 - a prefix, not a secret
ERROR_MAX: Final = 1000
BATCH: Final = 50
SEND_TIMEOUT_S: Final = 60.0

_DUE_STATUSES: Final = (
    NotificationStatus.PENDING.value,
    NotificationStatus.FAILED.value,
    NotificationStatus.SENDING.value,  # a sender died holding it: due again when its lease runs out
)

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
    if message.channel in (ChannelName.WEBHOOK, ChannelName.SLACK):
        # URLs are secrets: only references reach the database.
        parse_secret_ref(message.recipient) or _refuse_inline_url(message)
    exists = session.scalar(sa.select(Notification.id).where(Notification.idempotency_key == message.idempotency_key))
    if exists is not None:
        return False
    now = _now()
    row = Notification(
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
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # a concurrent writer queued the same key first
        return False
    return True


def _refuse_inline_url(message: Message) -> bool:
    raise ValueError(f"{message.channel.value} recipients must be secretref:namespace/secret/key references")


def message_of(row: Notification) -> Message:
    payload: dict[str, Any] = row.payload or {}
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
class _Claim:
    id: int
    attempts: int  # after the claim's increment: the number of this attempt
    reclaimed: bool  # taken over from a sender whose lease ran out
    message: Message


@dataclass(frozen=True)
class _Outcome:
    status: str
    outcome: str  # sent | retry | failed
    status_code: int | None = None
    error: str | None = None
    provider_message_id: str | None = None
    next_attempt_at: datetime | None = None


class Sender:
    """Delivers due notifications with retry, backoff (full jitter) and Retry-After; records every attempt."""

    def __init__(
        self,
        session_factory: SessionFactory,
        channels: Mapping[ChannelName, Channel] | None = None,
        *,
        secrets: SecretResolver | None = None,
        poll_interval_s: float = 0.25,
        max_attempts: int = 8,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        lease_s: float = 60.0,
        concurrency: int = 16,
    ) -> None:
        self._session_factory = session_factory
        self._channels: Mapping[ChannelName, Channel] = channels if channels is not None else channels_from_env()
        self._console: Channel = self._channels.get(ChannelName.CONSOLE) or ConsoleChannel()
        self._secrets = secrets
        self.poll_interval_s = poll_interval_s
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.lease_s = lease_s
        self._semaphore = asyncio.Semaphore(concurrency)
        self._wakeup = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
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
        self._done = asyncio.Event()
        self._stopping = False
        try:
            while not self._stopping:
                self._event.clear()
                self._wakeup.clear()
                try:
                    sent = await self.send_due_once()
                except Exception:
                    log.exception("outbox pass failed; retrying in %.2fs", self.poll_interval_s)
                    sent = 0
                if sent or self._stopping:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), self.poll_interval_s)
        finally:
            self._done.set()

    async def stop(self) -> None:
        self._stopping = True
        self.wake()
        if self._done is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), SEND_TIMEOUT_S + 5)
        for channel in {id(c): c for c in self._channels.values()}.values():
            closer = getattr(channel, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    # -- one pass -------------------------------------------------------------------------------
    async def send_due_once(self) -> int:
        """Claim what is due, send it, record the outcomes; returns how many rows were handled."""
        claims = await asyncio.to_thread(self._claim_due)
        if not claims:
            return 0
        await asyncio.gather(*(self._deliver(claim) for claim in claims))
        return len(claims)

    def _claim_due(self) -> list[_Claim]:
        now = _now()
        table = Notification.__table__
        with self._session_factory() as session:
            rows = session.execute(
                sa.select(Notification.id, Notification.status, Notification.attempts)
                .where(Notification.status.in_(_DUE_STATUSES), Notification.next_attempt_at <= now)
                .order_by(Notification.next_attempt_at, Notification.id)
                .limit(BATCH)
            ).all()
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
                claims.append(_Claim(row_id, attempts, reclaimed, message_of(loaded[row_id])))
            session.commit()
            return claims

    async def _deliver(self, claim: _Claim) -> None:
        async with self._semaphore:
            started = time.perf_counter()
            secret_values: list[str] = []
            try:
                outcome = await self._attempt(claim, secret_values)
            except Exception as exc:  # a channel bug must not kill the loop; retried like a 5xx
                outcome = self._retry_or_dead(claim, f"{type(exc).__name__}: {exc}", None, None)
            duration_ms = (time.perf_counter() - started) * 1000
            outcome = replace(outcome, error=_scrub(outcome.error, secret_values))
            await asyncio.to_thread(self._record, claim, outcome, duration_ms)
            if outcome.status == NotificationStatus.SENT.value:
                log.info("notification %s sent via %s", claim.id, claim.message.channel.value)
            else:
                log.warning(
                    "notification %s via %s: %s (%s)",
                    claim.id,
                    claim.message.channel.value,
                    outcome.status,
                    outcome.error,
                )

    async def _attempt(self, claim: _Claim, secret_values: list[str]) -> _Outcome:
        message = claim.message
        try:
            ref = parse_secret_ref(message.recipient)
        except ValueError as exc:
            return _Outcome(NotificationStatus.DEAD.value, "failed", error=str(exc))
        if ref is not None:
            value = self._secrets.get(*ref) if self._secrets is not None else None
            if not value:
                return _Outcome(NotificationStatus.DEAD.value, "failed", error=f"secret {message.recipient} not found")
            secret_values.append(value)
            message = replace(message, recipient=value)
        channel = self._channels.get(message.channel) or self._console
        try:
            delivery: Delivery = await asyncio.wait_for(channel.send(message), SEND_TIMEOUT_S)
        except PermanentFailure as exc:
            return _Outcome(NotificationStatus.DEAD.value, "failed", exc.status_code, str(exc))
        except TemporaryFailure as exc:
            return self._retry_or_dead(claim, str(exc), exc.status_code, exc.retry_after_s)
        except TimeoutError:
            return self._retry_or_dead(claim, f"{message.channel.value} send timed out", None, None)
        return _Outcome(
            NotificationStatus.SENT.value,
            "sent",
            delivery.status_code,
            provider_message_id=delivery.provider_message_id,
        )

    def backoff_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**(attempt-1))), raised to Retry-After when that is larger."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2 ** max(attempt - 1, 0))
        delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return delay

    def _retry_or_dead(
        self, claim: _Claim, error: str, status_code: int | None, retry_after_s: float | None
    ) -> _Outcome:
        if claim.attempts >= self.max_attempts:
            return _Outcome(
                NotificationStatus.DEAD.value,
                "failed",
                status_code,
                f"gave up after {claim.attempts} attempts: {error}",
            )
        when = _now() + timedelta(seconds=self.backoff_s(claim.attempts, retry_after_s))
        return _Outcome(NotificationStatus.FAILED.value, "retry", status_code, error, next_attempt_at=when)

    def _record(self, claim: _Claim, outcome: _Outcome, duration_ms: float) -> None:
        now = _now()
        table = Notification.__table__
        values: dict[str, Any] = {"status": outcome.status, "last_error": _clip(outcome.error)}
        if outcome.status == NotificationStatus.SENT.value:
            values.update(sent_at=now, provider_message_id=outcome.provider_message_id, last_error=None)
        elif outcome.next_attempt_at is not None:
            values["next_attempt_at"] = outcome.next_attempt_at
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
            if getattr(result, "rowcount", 0) != 1:
                log.warning("notification %s was reclaimed by another sender before its outcome was recorded", claim.id)
            session.add(
                NotificationAttempt(
                    notification_id=claim.id,
                    at=now,
                    outcome=outcome.outcome,
                    status_code=outcome.status_code,
                    error=_clip(outcome.error),
                    duration_ms=round(duration_ms, 3),
                )
            )
            session.commit()


def _scrub(text: str | None, secrets: list[str]) -> str | None:
    if text is None:
        return None
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:ERROR_MAX]


__all__ = ["Sender", "channels_from_env", "enqueue", "message_of", "parse_secret_ref", "secret_ref"]
