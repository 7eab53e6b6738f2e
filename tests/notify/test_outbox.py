"""The outbox and its sender on SQLite and MariaDB, with the real providers' libraries and fakes.

Time is the outbox's own clock (`spectra.notify.outbox._now`), replaced by a Clock that moves only when a
test says so: backoffs and leases run out by `clock.advance`, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.api.secrets import SecretResolver
from spectra.notify import outbox
from spectra.notify.channel import Channel, ChannelName, Message
from spectra.notify.console import ConsoleChannel
from spectra.notify.email import SendGridChannel
from spectra.notify.outbox import Sender, enqueue, secret_ref
from spectra.notify.twilio.client import TwilioAccount
from spectra.notify.twilio.sms import TwilioSmsChannel
from spectra.notify.webhook import WebhookChannel
from spectra.store import Notification, NotificationAttempt
from tests.factories.alerting import Clock
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
    max_attempts: int = 8,
    poll_interval_s: float = 0.25,
) -> Sender:
    """A Sender whose backoffs are at most 20 ms and whose claims hold for LEASE."""
    return Sender(
        sessions,
        channels,
        secrets=secrets,
        max_attempts=max_attempts,
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


async def test_out_of_attempts_is_dead(sessions: sessionmaker[Session], sendgrid: FakeSendGrid, clock: Clock) -> None:
    sendgrid.script = [503] * 10
    queue(sessions, email())
    await drain(sender(sessions, sendgrid_channels(sendgrid), max_attempts=3), sessions, clock)
    [row] = rows(sessions)
    assert (row.status, row.attempts) == ("dead", 3)
    assert "gave up after 3 attempts" in str(row.last_error)


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
    webhook = WebhookChannel(b"spectra-signing-key")
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
