"""The outbox and its sender on SQLite and MariaDB, with the real providers' libraries and fakes.

Time is the outbox's own clock (`spectra.notify.outbox._now`), replaced by a Clock that moves only when a
test says so: backoffs and leases run out by `clock.advance`, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from spectra.api.secrets import SecretResolver
from spectra.domain.egress import EgressPolicy
from spectra.notify import outbox
from spectra.notify.channel import Channel, ChannelName, Delivery, Message, run_blocking
from spectra.notify.console import ConsoleChannel
from spectra.notify.email import SendGridChannel
from spectra.notify.metrics import SenderMetrics
from spectra.notify.outbox import OutboxHealth, Sender, enqueue, outbox_health, secret_ref
from spectra.notify.twilio.client import TwilioAccount
from spectra.notify.twilio.sms import TwilioSmsChannel
from spectra.notify.webhook import WebhookChannel
from spectra.store import EscalationState, Incident, IncidentEvent, Notification, NotificationAttempt
from tests.factories.alerting import START, Clock
from tests.support.databases import sqlite_only
from tests.support.providers import FakeReceiver, FakeSendGrid, FakeTwilio
from tests.support.waiting import eventually

SG_KEY = "SG.test-key"


def email(key: str = "incident:1:step:0:alice:email") -> Message:
    return Message(ChannelName.EMAIL, "alice@example.com", "api is down", "api is down", key, facts={"code": "K7Q2"})


def sms(key: str = "incident:1:step:0:alice:sms") -> Message:
    facts = {"code": "K7Q2", "monitor": "default/api", "state": "opened", "reason": "HTTP 503"}
    return Message(ChannelName.SMS, "+15550100", "api is down", "api is down", key, facts=facts)


def queue(sessions: sessionmaker[Session], *messages: Message) -> None:
    with sessions() as session:
        for message in messages:
            enqueue(session, message)
        session.commit()


def rows(sessions: sessionmaker[Session]) -> list[Notification]:
    with sessions() as session:
        return list(session.scalars(sa.select(Notification).order_by(Notification.id)))


def attempts(sessions: sessionmaker[Session]) -> list[NotificationAttempt]:
    with sessions() as session:
        return list(session.scalars(sa.select(NotificationAttempt).order_by(NotificationAttempt.id)))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The outbox's clock, moved by the test."""
    fake = Clock()
    monkeypatch.setattr(outbox, "_now", fake)
    return fake


def sender(
    sessions: sessionmaker[Session],
    channels: dict[ChannelName, Channel],
    *,
    secrets: SecretResolver | None = None,
    retry_window_s: float = outbox.RETRY_WINDOW_S,
    poll_interval_s: float = 0.25,
    metrics: SenderMetrics | None = None,
) -> Sender:
    """A Sender whose backoffs are at most 20 ms and whose claims hold for LEASE."""
    return Sender(
        sessions,
        channels,
        secrets=secrets,
        metrics=metrics,
        retry_window_s=retry_window_s,
        poll_interval_s=poll_interval_s,
        base_backoff_s=0.01,
        max_backoff_s=0.02,
        lease_s=LEASE.total_seconds(),
    )


LEASE = timedelta(seconds=30)


async def drain(s: Sender, sessions: sessionmaker[Session], clock: Clock, rounds: int = 50) -> None:
    """Run passes until nothing is pending or failed, a second of the clock apart (longer than any backoff)."""
    for _ in range(rounds):
        await s.send_due_once()
        if all(r.status in {"sent", "dead"} for r in rows(sessions)):
            return
        clock.advance(seconds=1)
    raise AssertionError("outbox did not settle")


def sendgrid_channels(fake: FakeSendGrid) -> dict[ChannelName, Channel]:
    return {ChannelName.EMAIL: SendGridChannel(SG_KEY, "alerts@spectra.example", host=fake.url, timeout_s=5)}


def twilio_channels(fake: FakeTwilio) -> dict[ChannelName, Channel]:
    account = TwilioAccount(fake.account_sid, fake.auth_token, "+15550000000", base_url=fake.url, timeout_s=5)
    return {ChannelName.SMS: TwilioSmsChannel(account)}


def test_enqueue_twice_with_one_key_writes_one_row(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert enqueue(session, email()) is True
        assert enqueue(session, email()) is False
        session.commit()
    with sessions() as session:
        assert enqueue(session, email()) is False
        session.commit()
    assert len(rows(sessions)) == 1


def test_enqueue_refuses_inline_webhook_urls(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, pytest.raises(ValueError, match="secretref"):
        enqueue(session, Message(ChannelName.WEBHOOK, "https://hooks.example/x", "s", "t", "k"))


async def test_503_three_times_then_202_delivers_exactly_once(
    sessions: sessionmaker[Session], sendgrid: FakeSendGrid, clock: Clock
) -> None:
    sendgrid.script = [503, 503, 503]
    queue(sessions, email())
    await drain(sender(sessions, sendgrid_channels(sendgrid)), sessions, clock)
    [row] = rows(sessions)
    assert row.status == "sent"
    assert row.attempts == 4
    assert row.provider_message_id == sendgrid.message_ids[0]
    assert len(sendgrid.accepted()) == 1
    assert [(a.outcome, a.status_code) for a in attempts(sessions)] == [("retry", 503)] * 3 + [("sent", 202)]


async def test_a_400_is_not_retried(sessions: sessionmaker[Session], sendgrid: FakeSendGrid, clock: Clock) -> None:
    sendgrid.script = [400]
    queue(sessions, email())
    await drain(sender(sessions, sendgrid_channels(sendgrid)), sessions, clock)
    [row] = rows(sessions)
    assert (row.status, row.attempts) == ("dead", 1)
    assert [(a.outcome, a.status_code) for a in attempts(sessions)] == [("failed", 400)]
    assert len(sendgrid.requests) == 1


async def test_retry_after_is_honoured(sessions: sessionmaker[Session], twilio: FakeTwilio, clock: Clock) -> None:
    twilio.script = [(429, {"Retry-After": "120"})]
    queue(sessions, sms())
    before = clock()
    await sender(sessions, twilio_channels(twilio)).send_due_once()
    [row] = rows(sessions)
    assert row.status == "failed"
    assert row.next_attempt_at >= before + timedelta(seconds=120)
    assert await sender(sessions, twilio_channels(twilio)).send_due_once() == 0  # not due yet
    clock.advance(seconds=119)
    assert await sender(sessions, twilio_channels(twilio)).send_due_once() == 0  # still not
    clock.advance(seconds=1)
    assert await sender(sessions, twilio_channels(twilio)).send_due_once() == 1
    assert rows(sessions)[0].status == "sent"


async def test_temporary_failures_are_retried_for_the_retry_window_then_given_up(
    sessions: sessionmaker[Session], sendgrid: FakeSendGrid, clock: Clock
) -> None:
    sendgrid.fail_for(3600)
    queue(sessions, email())
    s = sender(sessions, sendgrid_channels(sendgrid), retry_window_s=300)
    for _ in range(12):
        await s.send_due_once()
        clock.advance(seconds=30)
    [row] = rows(sessions)
    assert (row.status, row.attempts) == ("dead", 11)  # at 0 s, 30 s, ..., 300 s
    assert str(row.last_error).startswith("gave up after 11 attempts in 5 min: SendGrid answered HTTP 503")
    assert [a.outcome for a in attempts(sessions)] == ["retry"] * 10 + ["failed"]


class Crash(BaseException):
    """The process dying between the provider's answer and our record."""


def crash(*args: object) -> None:
    raise Crash


@pytest.mark.parametrize("provider", ["sendgrid", "twilio"])
async def test_crash_between_send_and_record_duplicates_at_most_once(
    sessions: sessionmaker[Session],
    sendgrid: FakeSendGrid,
    twilio: FakeTwilio,
    provider: str,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channels = sendgrid_channels(sendgrid) if provider == "sendgrid" else twilio_channels(twilio)
    queue(sessions, email() if provider == "sendgrid" else sms())
    dying = sender(sessions, channels)
    monkeypatch.setattr(dying, "_record", crash)
    with pytest.raises(Crash):
        await dying.send_due_once()
    assert rows(sessions)[0].status == "sending"
    restarted = sender(sessions, channels)
    clock.advance(seconds=LEASE.total_seconds() - 1)
    assert await restarted.send_due_once() == 0  # the lease still holds
    clock.advance(seconds=1)  # ... until LEASE after the claim
    await drain(restarted, sessions, clock)
    [row] = rows(sessions)
    assert row.status == "sent"
    assert [a.outcome for a in attempts(sessions)] == ["lost", "sent"]
    fake = sendgrid if provider == "sendgrid" else twilio
    # Neither SendGrid nor Twilio documents an idempotency key for these creates: one duplicate, at most.
    assert len(fake.accepted()) == 2
    if provider == "twilio":
        keys = {r.headers["I-Twilio-Idempotency-Token"] for r in twilio.requests}
        assert keys == {"incident:1:step:0:alice:sms"}  # same key both times, should Twilio honour it


async def test_crash_does_not_duplicate_where_the_provider_honours_the_key(
    sessions: sessionmaker[Session], twilio: FakeTwilio, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    twilio.honour_idempotency = True
    queue(sessions, sms())
    dying = sender(sessions, twilio_channels(twilio))
    monkeypatch.setattr(dying, "_record", crash)
    with pytest.raises(Crash):
        await dying.send_due_once()
    clock.advance(seconds=LEASE.total_seconds())
    await drain(sender(sessions, twilio_channels(twilio)), sessions, clock)
    assert len(twilio.accepted()) == 2  # asked twice ...
    assert len(twilio.created) == 1  # ... created once


async def test_two_senders_never_send_one_row_twice(
    sessions: sessionmaker[Session], twilio: FakeTwilio, clock: Clock
) -> None:
    queue(sessions, *(sms(f"incident:1:step:0:c{i}:sms") for i in range(20)))
    a, b = sender(sessions, twilio_channels(twilio)), sender(sessions, twilio_channels(twilio))
    await asyncio.gather(a.send_due_once(), b.send_due_once(), a.send_due_once(), b.send_due_once())
    await drain(a, sessions, clock)
    assert len(twilio.accepted()) == 20
    assert all(r.status == "sent" and r.attempts == 1 for r in rows(sessions))
    assert len(attempts(sessions)) == 20


async def test_secrets_stay_out_of_rows_attempts_and_logs(
    sessions: sessionmaker[Session], receiver: FakeReceiver, caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"{receiver.url}/hooks/very-secret-path"

    class Secrets:
        def get(self, namespace: str, name: str, key: str) -> str | None:
            return url if (namespace, name, key) == ("default", "hooks", "ops") else None

    ok = Message(ChannelName.WEBHOOK, secret_ref("default", "hooks", "ops"), "s", "t", "k1", facts={"code": "K7Q2"})
    missing = Message(ChannelName.WEBHOOK, secret_ref("default", "hooks", "gone"), "s", "t", "k2")
    receiver.script = [503]
    queue(sessions, ok, missing)
    webhook = WebhookChannel(b"spectra-signing-key", egress=EgressPolicy.standalone())
    s = sender(sessions, {ChannelName.WEBHOOK: webhook}, secrets=Secrets())
    await drain(s, sessions, clock)
    await s.stop()
    by_key = {r.idempotency_key: r for r in rows(sessions)}
    assert by_key["k1"].status == "sent"
    assert (by_key["k2"].status, by_key["k2"].last_error) == ("dead", "secret secretref:default/hooks/gone not found")
    assert receiver.verified(receiver.requests[-1])
    with sessions() as session:
        dump = repr(
            [
                tuple(r)
                for t in ("notifications", "notification_attempts")
                for r in session.execute(sa.text(f"SELECT * FROM {t}"))
            ]
        )
    assert "very-secret-path" not in dump
    assert "very-secret-path" not in caplog.text
    assert "secretref:default/hooks/ops" in dump


async def test_a_missing_channel_falls_back_to_the_console(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    caplog.set_level(logging.INFO)
    queue(sessions, sms())
    await drain(sender(sessions, {ChannelName.CONSOLE: ConsoleChannel()}), sessions, clock)
    [row] = rows(sessions)
    assert row.status == "sent"
    assert str(row.provider_message_id).startswith("console-")
    assert "[sms to +15550100]" in caplog.text


async def test_run_sends_after_wake(sessions: sessionmaker[Session], twilio: FakeTwilio, clock: Clock) -> None:
    # Polls 30 s apart, waits 20 s at most: only wake() can make it send in time.
    s = sender(sessions, twilio_channels(twilio), poll_interval_s=30)
    task = asyncio.create_task(s.run())
    await eventually(lambda: s._done is not None)  # the loop runs
    queue(sessions, sms())
    s.wake()
    await eventually(twilio.accepted)
    await s.stop()
    await task
    assert len(twilio.accepted()) == 1
    assert rows(sessions)[0].status == "sent"


# --- the incident's timeline and the fallback --------------------------------------------------


def incident_paged(sessions: sessionmaker[Session], clock: Clock, *, escalation: str = "active") -> int:
    """An open incident whose next escalation step is due in 10 minutes (or whose escalation is over)."""
    with sessions.begin() as session:
        incident = Incident(
            code="K7Q2", namespace="default", monitor_name="api", title="api is down", severity="critical"
        )
        incident.opened_at = clock()
        session.add(incident)
        session.flush()
        next_step_at = clock() + timedelta(minutes=10) if escalation == "active" else None
        session.add(
            EscalationState(incident_id=incident.id, step_index=1, next_step_at=next_step_at, status=escalation)
        )
        return incident.id


def page(incident_id: int) -> Message:
    key = f"incident:{incident_id}:step:0:repeat:0:email:alice@example.com"
    return replace(email(key), incident_id=incident_id)


def notes(sessions: sessionmaker[Session], incident_id: int) -> list[str]:
    with sessions() as session:
        return list(
            session.scalars(
                sa.select(IncidentEvent.message)
                .where(IncidentEvent.incident_id == incident_id, IncidentEvent.type == "note")
                .order_by(IncidentEvent.id)
            )
        )


def escalation_of(sessions: sessionmaker[Session], incident_id: int) -> EscalationState:
    with sessions() as session:
        found = session.get(EscalationState, incident_id)
        assert found is not None
        return found


async def test_a_refused_page_is_told_in_the_timeline_and_escalates_now(
    sessions: sessionmaker[Session], sendgrid: FakeSendGrid, clock: Clock
) -> None:
    incident_id = incident_paged(sessions, clock)
    sendgrid.script = [400]
    queue(sessions, page(incident_id))
    metrics = SenderMetrics(CollectorRegistry())
    await sender(sessions, sendgrid_channels(sendgrid), metrics=metrics).send_due_once()
    assert rows(sessions)[0].status == "dead"
    assert notes(sessions, incident_id) == [
        "email to alice@example.com failed: SendGrid answered HTTP 400: scripted — gave up; "
        "next escalation step pulled forward"
    ]
    assert escalation_of(sessions, incident_id).next_step_at == clock()
    assert metrics.given_up.labels("email", "refused")._value.get() == 1


async def test_a_page_given_up_with_no_further_step_says_so(
    sessions: sessionmaker[Session], sendgrid: FakeSendGrid, clock: Clock
) -> None:
    incident_id = incident_paged(sessions, clock, escalation="exhausted")
    sendgrid.fail_for(3600)
    queue(sessions, page(incident_id))
    s = sender(sessions, sendgrid_channels(sendgrid), retry_window_s=60)
    for _ in range(4):
        await s.send_due_once()
        clock.advance(seconds=30)
    assert rows(sessions)[0].status == "dead"
    assert notes(sessions, incident_id) == [
        "email to alice@example.com failing: SendGrid answered HTTP 503: scripted; retrying for up to 60 s",
        "email to alice@example.com failed: SendGrid answered HTTP 503: scripted — gave up after 3 attempts in 60 s; "
        "no further escalation step",
    ]
    assert escalation_of(sessions, incident_id).status == "exhausted"


async def test_a_refused_notice_is_told_but_does_not_escalate(
    sessions: sessionmaker[Session], sendgrid: FakeSendGrid, clock: Clock
) -> None:
    incident_id = incident_paged(sessions, clock)
    sendgrid.script = [400]
    queue(
        sessions, replace(email(f"incident:{incident_id}:resolved:0:email:alice@example.com"), incident_id=incident_id)
    )
    await sender(sessions, sendgrid_channels(sendgrid)).send_due_once()
    assert notes(sessions, incident_id) == [
        "email to alice@example.com failed: SendGrid answered HTTP 400: scripted — gave up"
    ]
    assert escalation_of(sessions, incident_id).next_step_at == clock() + timedelta(minutes=10)


async def test_a_page_delivered_after_failing_says_so_once(
    sessions: sessionmaker[Session], sendgrid: FakeSendGrid, clock: Clock
) -> None:
    incident_id = incident_paged(sessions, clock)
    sendgrid.script = [503, 503]
    queue(sessions, page(incident_id))
    await drain(sender(sessions, sendgrid_channels(sendgrid)), sessions, clock)
    assert notes(sessions, incident_id) == [
        "email to alice@example.com failing: SendGrid answered HTTP 503: scripted; retrying for up to 30 min",
        "email to alice@example.com delivered at attempt 3",
    ]
    assert escalation_of(sessions, incident_id).next_step_at == START + timedelta(minutes=10)


# --- outcomes the database does not take -------------------------------------------------------


async def test_an_outcome_the_database_refuses_is_held_and_recorded_later_never_resent(
    sessions: sessionmaker[Session], twilio: FakeTwilio, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue(sessions, sms())
    metrics = SenderMetrics(CollectorRegistry())
    s = sender(sessions, twilio_channels(twilio), metrics=metrics)
    record = s._record
    database_down = True

    def record_unless_down(held: object) -> None:
        if database_down:
            raise sa.exc.OperationalError("UPDATE notifications", {}, ConnectionResetError("outage"))
        record(held)  # type: ignore[arg-type]

    monkeypatch.setattr(s, "_record", record_unless_down)
    assert await s.send_due_once() == 1
    assert len(twilio.accepted()) == 1
    assert rows(sessions)[0].status == "sending"
    assert metrics.unrecorded._value.get() == 1
    clock.advance(seconds=LEASE.total_seconds() + 5)  # the lease ran out, but this sender still holds the outcome
    assert await s.send_due_once() == 0
    database_down = False
    assert await s.send_due_once() == 0  # records what it held first: nothing is due any more
    [row] = rows(sessions)
    assert (row.status, row.attempts) == ("sent", 1)
    assert [a.outcome for a in attempts(sessions)] == ["sent"]
    assert len(twilio.accepted()) == 1
    assert metrics.unrecorded._value.get() == 0


async def test_run_records_a_held_outcome_when_the_database_is_back(
    sessions: sessionmaker[Session], twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue(sessions, sms())
    s = sender(sessions, twilio_channels(twilio), poll_interval_s=0.05)
    record = s._record
    failures = [sa.exc.OperationalError("UPDATE notifications", {}, ConnectionResetError("outage"))] * 3

    def record_after_failures(held: object) -> None:
        if failures:
            raise failures.pop()
        record(held)  # type: ignore[arg-type]

    monkeypatch.setattr(s, "_record", record_after_failures)
    task = asyncio.create_task(s.run())
    await eventually(lambda: rows(sessions)[0].status == "sent")
    await s.stop()
    await task
    assert len(twilio.accepted()) == 1
    assert [a.outcome for a in attempts(sessions)] == ["sent"]


# --- isolation ---------------------------------------------------------------------------------


class Blocking:
    """A channel whose sends to HELD wait until released; others are sent at once, on a thread via run_blocking."""

    HELD = "+15550999"

    def __init__(self) -> None:
        self.name = ChannelName.SMS
        self.release = asyncio.Event()
        self.sent: list[str] = []
        self.threads: list[str] = []

    async def send(self, message: Message) -> Delivery:
        if message.recipient == self.HELD:
            await self.release.wait()
        self.threads.append(await run_blocking(lambda: threading.current_thread().name))
        self.sent.append(message.recipient)
        return Delivery(provider_message_id=f"id-{len(self.sent)}", status_code=201)


@sqlite_only
async def test_a_hanging_send_holds_up_no_other_message(sessions: sessionmaker[Session]) -> None:
    channel = Blocking()
    s = sender(sessions, {ChannelName.SMS: channel}, poll_interval_s=0.05)
    task = asyncio.create_task(s.run())
    queue(sessions, replace(sms("held"), recipient=Blocking.HELD))
    await eventually(lambda: rows(sessions)[0].status == "sending")
    queue(sessions, sms("other"))
    s.wake()
    await eventually(lambda: channel.sent == ["+15550100"])
    assert rows(sessions)[0].status == "sending"  # the first is still waiting for its provider
    channel.release.set()
    await eventually(lambda: all(r.status == "sent" for r in rows(sessions)))
    await s.stop()
    await task
    # Provider calls run on the sender's own threads, not on asyncio's default pool.
    assert all(name.startswith("spectra-outbox") for name in channel.threads), channel.threads


def test_the_lease_must_outlast_a_send() -> None:
    with pytest.raises(ValueError, match="lease_s"):
        Sender(sessionmaker(), {}, send_timeout_s=20, lease_s=20)
    assert outbox.LEASE_S > outbox.SEND_TIMEOUT_S
    assert outbox.RETRY_WINDOW_S >= 20 * 60


# --- health ------------------------------------------------------------------------------------


def test_outbox_health_counts_waiting_and_given_up_rows(sessions: sessionmaker[Session], clock: Clock) -> None:
    with sessions() as session:
        assert outbox_health(session, clock()) == OutboxHealth(pending=0, oldest_pending_age_s=None, given_up_total=0)
    queue(sessions, sms("a"))
    clock.advance(seconds=90)
    queue(sessions, sms("b"), sms("c"), sms("d"))
    with sessions.begin() as session:
        session.execute(sa.update(Notification).where(Notification.idempotency_key == "c").values(status="dead"))
        session.execute(sa.update(Notification).where(Notification.idempotency_key == "d").values(status="sent"))
    clock.advance(seconds=30)
    with sessions() as session:
        assert outbox_health(session, clock()) == OutboxHealth(pending=2, oldest_pending_age_s=120.0, given_up_total=1)
