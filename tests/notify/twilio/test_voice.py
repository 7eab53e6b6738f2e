"""Voice calls through Twilio's Calls API with the real `twilio` library against the local stand-in."""

from __future__ import annotations

from urllib.parse import parse_qs

from spectra.notify.channel import ChannelName
from spectra.notify.twilio.voice import TwilioVoiceChannel, voice_twiml
from tests.factories.notify import FACTS, msg, twilio_account
from tests.support.providers import FakeTwilio


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
