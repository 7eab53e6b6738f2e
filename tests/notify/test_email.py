"""Email through SendGrid with the real `sendgrid` library against the local stand-in."""

from __future__ import annotations

import pytest

from spectra.notify.channel import ChannelName, Message, PermanentFailure, TemporaryFailure
from spectra.notify.email import SendGridChannel, render_email
from tests.factories.notify import ACK_URL, FROM_EMAIL, msg, sendgrid_channel
from tests.support.processes import free_port
from tests.support.providers import FakeSendGrid, Step


async def test_sendgrid_sends_text_and_html_with_facts(sendgrid: FakeSendGrid) -> None:
    message = msg(ChannelName.EMAIL, "alice@example.com", headers={"X-Spectra-Incident": "K7Q2"})
    delivery = await sendgrid_channel(sendgrid).send(message)
    [request] = sendgrid.requests
    body = request.json()
    assert request.status == 202
    assert delivery.provider_message_id == sendgrid.message_ids[0]
    assert body["personalizations"][0]["to"] == [{"email": "alice@example.com"}]
    assert body["from"]["email"] == FROM_EMAIL
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    text, html = (c["value"] for c in body["content"])
    assert "K7Q2" in text
    assert "default/api" in text
    assert ACK_URL in text
    assert "<script>" in text  # plain text is not HTML: no escaping there
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert f'href="{ACK_URL}"' in html
    assert "Acknowledge" in html
    assert body["headers"] == {"X-Spectra-Incident": "K7Q2"}
    assert body["custom_args"] == {"idempotency_key": message.idempotency_key}


def test_email_without_facts_falls_back_to_the_text() -> None:
    text, html = render_email(Message(ChannelName.EMAIL, "a@b.c", "Hello", "plain <b>words</b>", "k"))
    assert "plain <b>words</b>" in text
    assert "plain &lt;b&gt;words&lt;/b&gt;" in html
    assert "Acknowledge" not in html


@pytest.mark.parametrize(
    ("script", "expected", "status", "retry_after"),
    [
        ([503], TemporaryFailure, 503, None),
        ([(429, {"Retry-After": "7"})], TemporaryFailure, 429, 7.0),
        ([500], TemporaryFailure, 500, None),
        ([400], PermanentFailure, 400, None),
        ([403], PermanentFailure, 403, None),
    ],
)
async def test_sendgrid_status_mapping(
    sendgrid: FakeSendGrid,
    script: list[Step],
    expected: type[TemporaryFailure | PermanentFailure],
    status: int,
    retry_after: float | None,
) -> None:
    sendgrid.script = script
    with pytest.raises(expected) as caught:
        await sendgrid_channel(sendgrid).send(msg(ChannelName.EMAIL, "alice@example.com"))
    failure = caught.value
    assert isinstance(failure, TemporaryFailure | PermanentFailure)
    assert failure.status_code == status
    assert getattr(failure, "retry_after_s", None) == retry_after


async def test_sendgrid_wrong_key_is_permanent_and_the_key_is_not_in_the_error(sendgrid: FakeSendGrid) -> None:
    with pytest.raises(PermanentFailure) as caught:
        await sendgrid_channel(sendgrid, key="SG.wrong-secret").send(msg(ChannelName.EMAIL, "alice@example.com"))
    assert caught.value.status_code == 401
    assert "SG.wrong-secret" not in str(caught.value)
    assert "SG.wrong-secret" not in repr(sendgrid_channel(sendgrid, key="SG.wrong-secret"))


async def test_sendgrid_unreachable_is_temporary() -> None:
    channel = SendGridChannel("SG.k", "a@b.c", host=f"http://127.0.0.1:{free_port()}", timeout_s=5)
    with pytest.raises(TemporaryFailure, match="unreachable"):
        await channel.send(msg(ChannelName.EMAIL, "alice@example.com"))
