"""Signed JSON webhooks against the local receiver; failures never reveal the URL (a secret)."""

from __future__ import annotations

import pytest

from spectra.domain.egress import EgressPolicy
from spectra.notify.channel import ChannelName, PermanentFailure, TemporaryFailure
from spectra.notify.webhook import WebhookChannel, verify
from tests.factories.notify import msg
from tests.support.processes import free_port
from tests.support.providers import FakeReceiver


async def test_webhook_is_signed_json(receiver: FakeReceiver) -> None:
    message = msg(ChannelName.WEBHOOK, f"{receiver.url}/hook")
    channel = WebhookChannel(b"spectra-signing-key", egress=EgressPolicy.standalone())
    try:
        await channel.send(message)
    finally:
        await channel.aclose()
    [request] = receiver.requests
    assert request.status == 200
    assert receiver.verified(request)
    assert verify(b"spectra-signing-key", request.body, request.headers["X-Spectra-Signature"])
    assert request.headers["Idempotency-Key"] == message.idempotency_key
    assert int(request.headers["X-Spectra-Timestamp"]) > 0
    body = request.json()
    assert body["event"] == "opened"
    assert body["facts"]["code"] == "K7Q2"
    assert body["idempotencyKey"]


async def test_webhook_with_the_wrong_key_is_refused_permanently(receiver: FakeReceiver) -> None:
    channel = WebhookChannel(b"another-key", egress=EgressPolicy.standalone())
    with pytest.raises(PermanentFailure) as caught:
        await channel.send(msg(ChannelName.WEBHOOK, f"{receiver.url}/hook-secret-path"))
    await channel.aclose()
    assert caught.value.status_code == 401
    assert "hook-secret-path" not in str(caught.value)


async def test_webhook_unreachable_error_has_no_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/very-secret-token"
    channel = WebhookChannel(b"k", egress=EgressPolicy.standalone(), timeout_s=5)
    with pytest.raises(TemporaryFailure) as caught:
        await channel.send(msg(ChannelName.WEBHOOK, url))
    await channel.aclose()
    assert "very-secret-token" not in str(caught.value)
