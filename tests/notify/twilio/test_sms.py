"""SMS through Twilio's Messages API with the real `twilio` library against the local stand-in."""

from __future__ import annotations

from urllib.parse import parse_qs

from spectra.notify.channel import ChannelName
from spectra.notify.twilio.sms import SMS_MAX_CHARS, TwilioSmsChannel, sms_text
from tests.factories.notify import FACTS, FROM_NUMBER, msg, twilio_account
from tests.support.providers import FakeTwilio


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
    assert form["From"] == FROM_NUMBER
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
