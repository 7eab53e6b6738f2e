"""Link tokens at rest: no table holds an ack, confirm or unsubscribe token (or its link) in clear, neither
while a message waits nor after it was delivered or given up, on SQLite and MariaDB; what reaches the
provider stand-ins still carries working links.

Every table is dumped with plain SQL (the stored bytes, not what the models read back) and searched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.notify import outbox
from spectra.notify.channel import Channel, ChannelName, Delivery, Message, PermanentFailure
from spectra.notify.email import SendGridChannel
from spectra.notify.outbox import Sender, enqueue, message_of
from spectra.notify.twilio.sms import TwilioSmsChannel
from spectra.runtime.redaction import REDACTED, SecretRedactor
from spectra.store import Base, Notification
from spectra.store.sealing import SEALED
from spectra.tokens import Purpose, Tokens
from tests.factories.alerting import Clock
from tests.factories.notify import sendgrid_channel, twilio_account
from tests.support.providers import FakeSendGrid, FakeTwilio

SECRET_KEY = "tokens-at-rest-test-key-0123456789abcdef"
PUBLIC_URL = "https://status.example.test"


@dataclass(frozen=True)
class Link:
    purpose: Purpose
    token: str
    url: str

    def forms(self) -> list[str]:
        """What must not be stored: the link, the token, and its signature (the part that makes it act)."""
        return [self.url, self.token, self.token.rsplit(".", 1)[-1]]


def link(tokens: Tokens, purpose: Purpose, payload: dict[str, object], path: str) -> Link:
    token = tokens.make(purpose, payload)
    return Link(purpose, token, f"{PUBLIC_URL}{path}/{token}")


@dataclass(frozen=True)
class Mails:
    ack: Link
    confirm: Link
    unsubscribe: Link
    messages: list[Message]

    @property
    def links(self) -> list[Link]:
        return [self.ack, self.confirm, self.unsubscribe]


def mails(tokens: Tokens) -> Mails:
    """A page by email and SMS, a confirmation mail and a subscriber notice, each carrying its links in the
    places the real builders put them (text, html, facts, headers)."""
    ack = link(tokens, Purpose.ACK, {"i": 42}, "/ack")
    confirm = link(
        tokens, Purpose.CONFIRM, {"page": "default/acme", "email": "sub@x.test", "component": ""}, "/s/acme/confirm"
    )
    unsubscribe = link(tokens, Purpose.UNSUBSCRIBE, {"id": 7, "email": "sub@x.test"}, "/s/acme/unsubscribe")
    page_facts = {"code": "K7Q2", "state": "opened", "ack_url": ack.url}
    messages = [
        Message(
            ChannelName.EMAIL,
            "oncall@x.test",
            "[K7Q2] api is down",
            f"api is down\nAcknowledge: {ack.url}",
            "incident:42:step:0:email:oncall@x.test",
            html=f'<a href="{ack.url}">Acknowledge</a>',
            facts=page_facts,
        ),
        Message(ChannelName.SMS, "+15550001111", "[K7Q2] api is down", "K7Q2 api is down", "k:sms", facts=page_facts),
        Message(
            ChannelName.EMAIL,
            "sub@x.test",
            "Confirm your subscription to Acme",
            f"Confirm your subscription: {confirm.url}",
            "subscribe:default/acme:sub@x.test",
            html=f'<a href="{confirm.url}">Confirm</a>',
            facts={"kind": "subscription-confirm"},
        ),
        Message(
            ChannelName.EMAIL,
            "sub@x.test",
            "Acme: api is down",
            f"api is down\nUnsubscribe: {unsubscribe.url}",
            "notice:default/acme:1:sub@x.test",
            html=f'<a href="{unsubscribe.url}">Unsubscribe</a>',
            headers={"List-Unsubscribe": f"<{unsubscribe.url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        ),
    ]
    return Mails(ack, confirm, unsubscribe, messages)


def dump(sessions: sessionmaker[Session]) -> str:
    """Every column of every row of every table, as the database holds it."""
    with sessions() as session:
        return "\n".join(
            repr(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in session.execute(sa.text(f"SELECT * FROM {table.name}"))
        )


def assert_no_link(text: str, links: list[Link]) -> None:
    for found in links:
        for form in found.forms():
            assert form not in text, f"{found.purpose} token stored in clear"


def queue(sessions: sessionmaker[Session], messages: list[Message]) -> None:
    with sessions() as session:
        for message in messages:
            assert enqueue(session, message)
        session.commit()


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> Tokens:
    monkeypatch.setenv("SPECTRA_SECRET_KEY", SECRET_KEY)
    return Tokens(SECRET_KEY)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(outbox, "_now", fake)
    return fake


def sender(sessions: sessionmaker[Session], channels: dict[ChannelName, Channel]) -> Sender:
    return Sender(sessions, channels, poll_interval_s=0.05)


async def drain(s: Sender, sessions: sessionmaker[Session], clock: Clock) -> None:
    for _ in range(20):
        await s.send_due_once()
        with sessions() as session:
            statuses = set(session.scalars(sa.select(Notification.status)))
        if statuses <= {"sent", "dead"}:
            return
        clock.advance(seconds=5)
    raise AssertionError("outbox did not settle")


def delivered_texts(fake: FakeSendGrid) -> Iterator[str]:
    for request in fake.accepted():
        body = request.json()
        yield "\n".join(str(part["value"]) for part in body["content"]) + repr(body.get("headers", {}))


async def test_no_table_holds_a_link_token_while_queued_or_after_delivery_yet_the_mail_links_work(
    sessions: sessionmaker[Session],
    tokens: Tokens,
    sendgrid: FakeSendGrid,
    twilio: FakeTwilio,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(SecretRedactor.from_environment())  # as every process's handlers have it
    found = mails(tokens)
    queue(sessions, found.messages)

    queued = dump(sessions)
    assert_no_link(queued, found.links)
    assert queued.count(f'"{SEALED}"') == len(found.messages)  # every body sealed
    with sessions() as session:  # while the outbox itself reads them whole
        read = [message_of(row) for row in session.scalars(sa.select(Notification).order_by(Notification.id))]
    assert read == found.messages

    channels: dict[ChannelName, Channel] = {
        ChannelName.EMAIL: sendgrid_channel(sendgrid),
        ChannelName.SMS: TwilioSmsChannel(twilio_account(twilio)),
    }
    s = sender(sessions, channels)
    await drain(s, sessions, clock)
    await s.stop()

    with sessions() as session:
        rows = list(session.scalars(sa.select(Notification)))
    assert {row.status for row in rows} == {"sent"}
    assert {str(row.payload) for row in rows} == {"{}"}  # emptied once delivered
    assert_no_link(dump(sessions), found.links)
    assert_no_link(caplog.text, found.links)

    # What the stand-in received carries links that work, each for its purpose only.
    delivered = "\n".join(delivered_texts(sendgrid))
    for expected in found.links:
        assert expected.url in delivered
        assert tokens.read(expected.purpose, expected.token, max_age_s=3600)
    assert 'List-Unsubscribe": "<' + found.unsubscribe.url in delivered.replace("'", '"')
    assert len(twilio.created) == 1


@dataclass
class EchoingRefusal:
    """A provider that refuses the message and quotes it back in its error (as some APIs do)."""

    name: ChannelName = ChannelName.EMAIL

    async def send(self, message: Message) -> Delivery:
        raise PermanentFailure(f"400 invalid content: {message.text}", status_code=400)


async def test_a_message_given_up_keeps_no_token_in_its_row_error_timeline_or_log(
    sessions: sessionmaker[Session], tokens: Tokens, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(SecretRedactor.from_environment())
    found = mails(tokens)
    queue(sessions, [message for message in found.messages if message.channel == ChannelName.EMAIL])
    refusing: Channel = EchoingRefusal()
    s = sender(sessions, {ChannelName.EMAIL: refusing})
    await drain(s, sessions, clock)
    await s.stop()
    with sessions() as session:
        rows = list(session.scalars(sa.select(Notification)))
    assert {row.status for row in rows} == {"dead"}
    assert all(row.payload == {} and REDACTED in (row.last_error or "") for row in rows)
    assert_no_link(dump(sessions), found.links)
    assert_no_link(caplog.text, found.links)


async def test_a_body_sealed_with_another_key_is_sent_as_its_subject(
    sessions: sessionmaker[Session],
    tokens: Tokens,
    sendgrid: FakeSendGrid,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SPECTRA_SECRET_KEY changed while a page waited: its links are dead anyway, the page still goes out."""
    page = mails(tokens).messages[0]
    queue(sessions, [page])
    monkeypatch.setenv("SPECTRA_SECRET_KEY", "a-rotated-key-0123456789abcdef0123456789")
    s = sender(sessions, {ChannelName.EMAIL: SendGridChannel(sendgrid.api_key, "a@x.test", host=sendgrid.url)})
    await drain(s, sessions, clock)
    await s.stop()
    [mail] = sendgrid.accepted()
    body = mail.json()
    assert body["subject"] == page.subject
    text = body["content"][0]["value"]
    assert text.strip() == page.subject
    assert "/ack/" not in repr(body)
    assert "sealed with another SPECTRA_SECRET_KEY; sending its subject alone" in caplog.text
