"""The outbox Sender under faults, on MariaDB with the real sendgrid and twilio libraries against the
provider stand-ins: a database outage between send and record, a long provider outage and a refusal,
a provider call that hangs, and a sender killed mid-send (a real `spectra alerter` process).

Each test names the defect of issue 12 it guards against; docs/notifications.md says what is promised.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.notify.channel import Channel, ChannelName, Message
from spectra.notify.email import SendGridChannel
from spectra.notify.outbox import Sender, enqueue
from spectra.notify.twilio.client import TwilioAccount
from spectra.notify.twilio.sms import TwilioSmsChannel
from spectra.store import EscalationState, Incident, IncidentEvent, Notification, NotificationAttempt
from spectra.store.engine import make_engine, session_factory
from tests.support.databases import mariadb_only
from tests.support.db_proxy import DatabaseProxy
from tests.support.processes import SPECTRA, free_port, get
from tests.support.providers import FakeSendGrid, FakeTwilio, Hang, Providers, sendgrid_fake, twilio_fake
from tests.support.waiting import eventually, wait_for

pytestmark = mariadb_only


def email(recipient: str, key: str | None = None) -> Message:
    return Message(ChannelName.EMAIL, recipient, "api is down", "api is down", key or f"page:{recipient}:email")


def sms(number: str) -> Message:
    return Message(ChannelName.SMS, number, "api is down", "api is down", f"page:{number}:sms")


def queue(sessions: sessionmaker[Session], *messages: Message) -> None:
    with sessions.begin() as session:
        for message in messages:
            enqueue(session, message)


def rows(sessions: sessionmaker[Session]) -> list[Notification]:
    with sessions() as session:
        return list(session.scalars(sa.select(Notification).order_by(Notification.id)))


def outcomes(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(sa.select(NotificationAttempt.outcome).order_by(NotificationAttempt.id)))


def channels(
    sendgrid: FakeSendGrid, twilio: FakeTwilio | None = None, *, timeout_s: float = 10
) -> dict[ChannelName, Channel]:
    found: dict[ChannelName, Channel] = {
        ChannelName.EMAIL: SendGridChannel(
            sendgrid.api_key, "alerts@spectra.example", host=sendgrid.url, timeout_s=timeout_s
        )
    }
    if twilio is not None:
        account = TwilioAccount(twilio.account_sid, twilio.auth_token, "+15550000000", base_url=twilio.url)
        found[ChannelName.SMS] = TwilioSmsChannel(account)
    return found


@pytest.fixture
def proxy() -> Iterator[DatabaseProxy]:
    proxy = DatabaseProxy()
    yield proxy
    proxy.close()


@pytest.fixture
def direct(engine: sa.Engine) -> sessionmaker[Session]:
    """The migrated test database, reached without the proxy (what the test itself reads and writes)."""
    return session_factory(engine)


@contextmanager
def proxied_sessions(proxy: DatabaseProxy, database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(proxy.url(database_url), timeout_s=3)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


@contextmanager
def running(sender: Sender) -> Iterator[None]:
    """`sender.run()` as a task of the current loop (stopped by the caller's `await sender.stop()`)."""
    task = asyncio.get_running_loop().create_task(sender.run())
    try:
        yield
    finally:
        if not task.done():
            task.cancel()


async def test_database_outage_between_send_and_record_sends_once(
    proxy: DatabaseProxy, database_url: str, direct: sessionmaker[Session]
) -> None:
    """Defect 2: the outcome is held while the database is down and recorded when it is back; no resend."""
    restorer: list[threading.Timer] = []

    def cut_for_five_seconds() -> None:
        if not restorer:  # the first request only
            proxy.cut()
            restorer.append(threading.Timer(5, proxy.restore))
            restorer[0].start()

    queue(direct, email("bob@example.com"))
    with proxied_sessions(proxy, database_url) as sessions:
        async with sendgrid_fake() as sendgrid:
            sendgrid.on_request = cut_for_five_seconds
            sender = Sender(sessions, channels(sendgrid), poll_interval_s=0.2)
            with running(sender):
                await eventually(lambda: rows(direct)[0].status == "sent", timeout=40)
                await sender.stop()
    assert restorer, "the provider was never called"
    assert len(sendgrid.accepted()) == 1
    assert outcomes(direct) == ["sent"]
    assert rows(direct)[0].attempts == 1


async def test_a_provider_outage_delays_pages_and_delivers_each_once(
    proxy: DatabaseProxy, database_url: str, direct: sessionmaker[Session]
) -> None:
    """Defect 3: a 150 s outage against a 30 min window, scaled by 1/7.5: 20 s of 503s against 240 s of
    retrying, backoff capped at 6 s. Eight attempts (the old limit) would give up within 18 s."""
    emails = [f"oncall{i}@example.com" for i in range(4)]
    numbers = [f"+1555010000{i}" for i in range(4)]
    queue(direct, *(email(to) for to in emails), *(sms(number) for number in numbers))
    with proxied_sessions(proxy, database_url) as sessions:
        async with sendgrid_fake() as sendgrid, twilio_fake() as twilio:
            sendgrid.fail_for(20)
            twilio.fail_for(20)
            started = time.monotonic()
            sender = Sender(
                sessions,
                channels(sendgrid, twilio),
                poll_interval_s=0.2,
                retry_window_s=240,
                base_backoff_s=0.2,
                max_backoff_s=6,
            )
            with running(sender):
                await eventually(lambda: all(r.status in ("sent", "dead") for r in rows(direct)), timeout=60)
                await sender.stop()
    assert [r.status for r in rows(direct)] == ["sent"] * 8
    assert time.monotonic() - started >= 20
    assert sorted(to["email"] for r in sendgrid.accepted() for p in r.json()["personalizations"] for to in p["to"]) == (
        sorted(emails)
    )
    assert len(twilio.accepted()) == 4
    assert len(set(twilio.created)) == 4


async def test_a_refused_page_is_told_and_escalates_now(
    proxy: DatabaseProxy, database_url: str, direct: sessionmaker[Session]
) -> None:
    """Defect 3: a 400 is final; the timeline says so and the incident's next step is due at once."""
    now = datetime.now(UTC)
    with direct.begin() as session:
        incident = Incident(
            code="K7Q2", namespace="default", monitor_name="api", title="api is down", severity="critical"
        )
        session.add(incident)
        session.flush()
        incident_id = incident.id
        session.add(EscalationState(incident_id=incident_id, step_index=1, next_step_at=now + timedelta(minutes=10)))
    key = f"incident:{incident_id}:step:0:repeat:0:email:bob@example.com"
    queue(direct, replace(email("bob@example.com", key), incident_id=incident_id))
    with proxied_sessions(proxy, database_url) as sessions:
        async with sendgrid_fake() as sendgrid:
            sendgrid.script = [400]
            sender = Sender(sessions, channels(sendgrid), poll_interval_s=0.2)
            with running(sender):
                await eventually(lambda: rows(direct)[0].status == "dead", timeout=30)
                await sender.stop()
    with direct() as session:
        notes = list(session.scalars(sa.select(IncidentEvent.message).where(IncidentEvent.incident_id == incident_id)))
        escalation = session.get(EscalationState, incident_id)
    assert notes == [
        "email to bob@example.com failed: SendGrid answered HTTP 400: scripted — gave up; "
        "next escalation step pulled forward"
    ]
    assert escalation is not None
    assert escalation.next_step_at is not None
    assert escalation.next_step_at <= datetime.now(UTC)


async def test_a_hanging_provider_call_does_not_delay_another_page(
    proxy: DatabaseProxy, database_url: str, direct: sessionmaker[Session]
) -> None:
    """Defect 7: one request held 15 s by the provider; a page queued meanwhile goes out at once."""
    arrived = asyncio.Event()
    queue(direct, email("slow@example.com"))
    with proxied_sessions(proxy, database_url) as sessions:
        async with sendgrid_fake() as sendgrid:
            sendgrid.script = [Hang(15)]
            sendgrid.on_request = arrived.set
            sender = Sender(sessions, channels(sendgrid, timeout_s=20), poll_interval_s=0.2)
            with running(sender):
                await asyncio.wait_for(arrived.wait(), 30)
                queued = time.monotonic()
                queue(direct, email("bob@example.com"))
                sender.wake()
                await eventually(lambda: any(r.status == "sent" for r in rows(direct)), timeout=30)
                waited_s = time.monotonic() - queued
                await eventually(lambda: all(r.status == "sent" for r in rows(direct)), timeout=40)
                await sender.stop()
    assert waited_s < 8, f"the unrelated page waited {waited_s:.1f}s for the hanging one"
    assert [r.recipient for r in sorted(rows(direct), key=lambda r: r.sent_at or datetime.max.replace(tzinfo=UTC))] == [
        "bob@example.com",
        "slow@example.com",
    ]
    assert len(sendgrid.accepted()) == 2


def test_a_sender_killed_mid_send_is_retried_within_the_lease(
    tmp_path: Path, providers: Providers, database_url: str, direct: sessionmaker[Session]
) -> None:
    """Defect 11: `spectra alerter` killed (SIGKILL) while SendGrid holds its request; a new process
    sends again about 30 s (the lease) after the claim, not 60 s; at most one duplicate."""
    assert providers.sendgrid is not None
    arrived = threading.Event()
    providers.sendgrid.script = [Hang(20)]
    providers.sendgrid.on_request = arrived.set
    queue(direct, email("bob@example.com"))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    env |= providers.env() | {"PYTHONUNBUFFERED": "1", "SPECTRA_SECRET_KEY": "faults-sender-secret-key-0123456789"}

    def alerter(name: str) -> subprocess.Popen[bytes]:
        port = free_port()
        with (tmp_path / f"{name}.log").open("w") as log:
            process = subprocess.Popen(
                [SPECTRA, "alerter", "--database", database_url, "--listen", f"127.0.0.1:{port}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200 or process.poll() is not None, "healthz")
        assert process.poll() is None, (tmp_path / f"{name}.log").read_text()
        return process

    first = alerter("first")
    second: subprocess.Popen[bytes] | None = None
    try:
        assert arrived.wait(30), (tmp_path / "first.log").read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        second = alerter("second")
        wait_for(lambda: rows(direct)[0].status == "sent", "the page sent again", timeout=45)
        retried_after_s = time.monotonic() - killed
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0, (tmp_path / "second.log").read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert retried_after_s < 40
    assert outcomes(direct) == ["lost", "sent"]
    wait_for(lambda: len(providers.sendgrid.requests) == 2, "the held request answered")  # type: ignore[union-attr]
    assert len(providers.emails("bob@example.com")) <= 2  # at most one duplicate per crash
    assert "Traceback" not in (tmp_path / "second.log").read_text()
