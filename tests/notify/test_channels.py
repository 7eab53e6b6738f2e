"""Each channel with its real client library against the local stand-ins."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs

import pytest

from spectra.notify.channel import ChannelName, Message, PermanentFailure, TemporaryFailure
from spectra.notify.console import ConsoleChannel
from spectra.notify.email import SendGridChannel, render_email
from spectra.notify.registry import channels_from_env
from spectra.notify.retry import parse_retry_after
from spectra.notify.slack import SlackChannel
from spectra.notify.twilio.client import TwilioAccount
from spectra.notify.twilio.sms import SMS_MAX_CHARS, TwilioSmsChannel, sms_text
from spectra.notify.twilio.voice import TwilioVoiceChannel, voice_twiml
from spectra.notify.webhook import WebhookChannel, verify
from tests.support.providers import FakeReceiver, FakeSendGrid, FakeTwilio, receiver_fake

FACTS = {
    "incident_id": 7,
    "code": "K7Q2",
    "title": "api is down",
    "monitor": "default/api",
    "state": "opened",
    "reason": "HTTP 503 <script>alert(1)</script>",
    "severity": "critical",
    "opened_at": "2026-11-24T11:00:00+00:00",
    "ack_url": "https://spectra.example/ack/tok123",
    "event": "opened",
}


def msg(channel: ChannelName, recipient: str, **kw: object) -> Message:
    base: dict[str, object] = {
        "channel": channel,
        "recipient": recipient,
        "subject": "[CRITICAL] K7Q2 default/api is down",
        "text": "api is down",
        "idempotency_key": f"incident:7:step:0:alice:{channel.value}",
        "incident_id": 7,
        "facts": dict(FACTS),
    }
    base.update(kw)
    return Message(**base)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sendgrid_channel(fake: FakeSendGrid, key: str | None = None) -> SendGridChannel:
    return SendGridChannel(key or fake.api_key, "alerts@spectra.example", host=fake.url, timeout_s=5)


def twilio_account(fake: FakeTwilio, token: str | None = None) -> TwilioAccount:
    return TwilioAccount(fake.account_sid, token or fake.auth_token, "+15550000000", base_url=fake.url, timeout_s=5)


# -- email ----------------------------------------------------------------------------------------
async def test_sendgrid_sends_text_and_html_with_facts(sendgrid: FakeSendGrid) -> None:
    message = msg(ChannelName.EMAIL, "alice@example.com", headers={"X-Spectra-Incident": "K7Q2"})
    delivery = await sendgrid_channel(sendgrid).send(message)
    [request] = sendgrid.requests
    body = request.json()
    assert request.status == 202
    assert delivery.provider_message_id == sendgrid.message_ids[0]
    assert body["personalizations"][0]["to"] == [{"email": "alice@example.com"}]
    assert body["from"]["email"] == "alerts@spectra.example"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    text, html = (c["value"] for c in body["content"])
    assert "K7Q2" in text
    assert "default/api" in text
    assert "https://spectra.example/ack/tok123" in text
    assert "<script>" in text  # plain text is not HTML: no escaping there
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'href="https://spectra.example/ack/tok123"' in html
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
    sendgrid: FakeSendGrid, script: list[object], expected: type[Exception], status: int, retry_after: float | None
) -> None:
    sendgrid.script = script  # type: ignore[assignment]
    with pytest.raises(expected) as caught:
        await sendgrid_channel(sendgrid).send(msg(ChannelName.EMAIL, "alice@example.com"))
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert getattr(caught.value, "retry_after_s", None) == retry_after


async def test_sendgrid_wrong_key_is_permanent_and_the_key_is_not_in_the_error(sendgrid: FakeSendGrid) -> None:
    with pytest.raises(PermanentFailure) as caught:
        await sendgrid_channel(sendgrid, key="SG.wrong-secret").send(msg(ChannelName.EMAIL, "alice@example.com"))
    assert caught.value.status_code == 401
    assert "SG.wrong-secret" not in str(caught.value)
    assert "SG.wrong-secret" not in repr(sendgrid_channel(sendgrid, key="SG.wrong-secret"))


async def test_sendgrid_unreachable_is_temporary() -> None:
    channel = SendGridChannel("SG.k", "a@b.c", host=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(TemporaryFailure, match="unreachable"):
        await channel.send(msg(ChannelName.EMAIL, "alice@example.com"))


# -- Twilio ---------------------------------------------------------------------------------------
async def test_sms_goes_to_the_base_url_with_basic_auth_and_the_idempotency_header(twilio: FakeTwilio) -> None:
    message = msg(ChannelName.SMS, "+15550100")
    delivery = await TwilioSmsChannel(twilio_account(twilio)).send(message)
    [request] = twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert request.status == 201
    assert str(delivery.provider_message_id).startswith("SM")
    assert request.headers["I-Twilio-Idempotency-Token"] == message.idempotency_key
    form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
    assert form["To"] == "+15550100"
    assert form["From"] == "+15550000000"
    assert form["Body"] == (
        "[CRITICAL] K7Q2 default/api is DOWN: HTTP 503 <script>alert(1)</script>. Reply K7Q2 to acknowledge."
    )


def test_sms_text_is_short_and_says_how_to_acknowledge() -> None:
    long = msg(ChannelName.SMS, "+1", facts={**FACTS, "reason": "x" * 1000})
    text = sms_text(long)
    assert len(text) <= SMS_MAX_CHARS
    assert text.endswith("Reply K7Q2 to acknowledge.")
    resolved = sms_text(msg(ChannelName.SMS, "+1", facts={**FACTS, "state": "resolved", "reason": ""}))
    assert resolved == "[CRITICAL] K7Q2 default/api is RESOLVED."


@pytest.mark.parametrize(
    ("script", "expected", "status", "retry_after"),
    [
        ([503], TemporaryFailure, 503, None),
        ([(429, {"Retry-After": "11"})], TemporaryFailure, 429, 11.0),
        ([400], PermanentFailure, 400, None),
    ],
)
async def test_twilio_status_mapping(
    twilio: FakeTwilio, script: list[object], expected: type[Exception], status: int, retry_after: float | None
) -> None:
    twilio.script = script  # type: ignore[assignment]
    with pytest.raises(expected) as caught:
        await TwilioSmsChannel(twilio_account(twilio)).send(msg(ChannelName.SMS, "+15550100"))
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert getattr(caught.value, "retry_after_s", None) == retry_after


async def test_twilio_wrong_token_is_permanent_and_not_in_the_error(twilio: FakeTwilio) -> None:
    with pytest.raises(PermanentFailure) as caught:
        await TwilioSmsChannel(twilio_account(twilio, token="tw-wrong-secret")).send(msg(ChannelName.SMS, "+1555"))
    assert caught.value.status_code == 401
    assert "tw-wrong-secret" not in str(caught.value)


async def test_twilio_unreachable_is_temporary() -> None:
    account = TwilioAccount("AC1", "t", "+1", base_url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(TemporaryFailure, match="unreachable"):
        await TwilioSmsChannel(account).send(msg(ChannelName.SMS, "+15550100"))


async def test_voice_call_says_the_incident_and_gathers_one_key(twilio: FakeTwilio) -> None:
    action = "https://spectra.example/hooks/twilio/voice?incident=7"
    message = msg(ChannelName.VOICE, "+15550100", facts={**FACTS, "voice_action_url": action})
    delivery = await TwilioVoiceChannel(twilio_account(twilio)).send(message)
    [request] = twilio.requests
    assert request.path.endswith("/Calls.json")
    assert str(delivery.provider_message_id).startswith("CA")
    twiml = parse_qs(request.body.decode())["Twiml"][0]
    assert '<Gather action="https://spectra.example/hooks/twilio/voice?incident=7"' in twiml.replace("&amp;", "&")
    assert 'numDigits="1"' in twiml
    assert "Press 1 to acknowledge." in twiml
    assert "default api is down" in twiml
    assert "&lt;script&gt;" in twiml


def test_voice_without_an_action_url_only_says() -> None:
    twiml = voice_twiml(msg(ChannelName.VOICE, "+1"))
    assert "<Gather" not in twiml
    assert "<Say>" in twiml


# -- webhook, Slack, console ----------------------------------------------------------------------
async def test_webhook_is_signed_json(receiver: FakeReceiver) -> None:
    message = msg(ChannelName.WEBHOOK, f"{receiver.url}/hook")
    channel = WebhookChannel(b"spectra-signing-key")
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
    channel = WebhookChannel(b"another-key")
    with pytest.raises(PermanentFailure) as caught:
        await channel.send(msg(ChannelName.WEBHOOK, f"{receiver.url}/hook-secret-path"))
    await channel.aclose()
    assert caught.value.status_code == 401
    assert "hook-secret-path" not in str(caught.value)


async def test_webhook_unreachable_error_has_no_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/very-secret-token"
    channel = WebhookChannel(b"k", timeout_s=2)
    with pytest.raises(TemporaryFailure) as caught:
        await channel.send(msg(ChannelName.WEBHOOK, url))
    await channel.aclose()
    assert "very-secret-token" not in str(caught.value)


async def test_slack_posts_text() -> None:
    channel = SlackChannel()
    async with receiver_fake(None) as slack:
        try:
            delivery = await channel.send(msg(ChannelName.SLACK, f"{slack.url}/services/T/B/X"))
        finally:
            await channel.aclose()
    [request] = slack.requests
    body = request.json()
    assert delivery.status_code == 200
    assert request.path == "/services/T/B/X"
    assert set(body) == {"text"}
    assert "K7Q2" in body["text"]
    assert "<https://spectra.example/ack/tok123|Acknowledge>" in body["text"]


async def test_console_logs_one_line_without_secret_urls(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    delivery = await ConsoleChannel().send(msg(ChannelName.WEBHOOK, "https://hooks.example/secret-path"))
    assert delivery.provider_message_id
    assert len(caplog.records) == 1
    assert "secret-path" not in caplog.text
    assert "K7Q2" in caplog.text


# -- settings -------------------------------------------------------------------------------------
def test_without_provider_keys_email_sms_and_voice_go_to_the_console() -> None:
    channels = channels_from_env({})
    console = channels[ChannelName.CONSOLE]
    assert all(channels[c] is console for c in (ChannelName.EMAIL, ChannelName.SMS, ChannelName.VOICE))
    assert isinstance(channels[ChannelName.WEBHOOK], WebhookChannel)
    assert isinstance(channels[ChannelName.SLACK], SlackChannel)


def test_with_provider_keys_the_providers_are_used() -> None:
    env = {
        "SENDGRID_API_KEY": "SG.x",
        "SPECTRA_SENDGRID_URL": "http://127.0.0.1:9",
        "TWILIO_ACCOUNT_SID": "AC1",
        "TWILIO_AUTH_TOKEN": "tok",
        "TWILIO_FROM_NUMBER": "+1555",
        "SPECTRA_TWILIO_URL": "http://127.0.0.1:9",
    }
    channels = channels_from_env(env)
    assert isinstance(channels[ChannelName.EMAIL], SendGridChannel)
    assert isinstance(channels[ChannelName.SMS], TwilioSmsChannel)
    assert isinstance(channels[ChannelName.VOICE], TwilioVoiceChannel)
    assert "tok" not in repr(channels[ChannelName.SMS].account)  # type: ignore[attr-defined]
    partial = channels_from_env({k: v for k, v in env.items() if k != "TWILIO_FROM_NUMBER"})
    assert partial[ChannelName.SMS] is partial[ChannelName.CONSOLE]


NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("999999", 3600.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("soon", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected
