"""Notification test data: the facts of a page and messages built from them, channels pointed at the
provider stand-ins (tests/support/providers.py), and an address where nothing listens."""

from __future__ import annotations

from typing import Any

from spectra.notify.channel import ChannelName, Message
from spectra.notify.email import SendGridChannel
from spectra.notify.twilio.client import TwilioAccount
from tests.support.providers import FakeSendGrid, FakeTwilio

FROM_EMAIL = "alerts@spectra.example"
FROM_NUMBER = "+15550000000"
ACK_URL = "https://spectra.example/ack/tok123"

FACTS: dict[str, Any] = {
    "incident_id": 7,
    "code": "K7Q2",
    "title": "api is down",
    "monitor": "default/api",
    "state": "opened",
    "reason": "HTTP 503 <script>alert(1)</script>",
    "severity": "critical",
    "opened_at": "2026-11-24T11:00:00+00:00",
    "ack_url": ACK_URL,
    "event": "opened",
}


def msg(
    channel: ChannelName,
    recipient: str,
    *,
    facts: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Message:
    """A page of incident K7Q2 (FACTS unless `facts` replaces them)."""
    return Message(
        channel=channel,
        recipient=recipient,
        subject="[CRITICAL] K7Q2 default/api is down",
        text="api is down",
        idempotency_key=f"incident:7:step:0:alice:{channel.value}",
        incident_id=7,
        facts=dict(FACTS) if facts is None else facts,
        headers=headers or {},
    )


def sendgrid_channel(fake: FakeSendGrid, key: str | None = None) -> SendGridChannel:
    return SendGridChannel(key or fake.api_key, FROM_EMAIL, host=fake.url, timeout_s=5)


def twilio_account(fake: FakeTwilio, token: str | None = None) -> TwilioAccount:
    return TwilioAccount(fake.account_sid, token or fake.auth_token, FROM_NUMBER, base_url=fake.url, timeout_s=5)
