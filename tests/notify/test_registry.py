"""Which channel delivers each ChannelName, from the environment."""

from __future__ import annotations

from spectra.notify.channel import ChannelName
from spectra.notify.email import SendGridChannel
from spectra.notify.registry import channels_from_env
from spectra.notify.slack import SlackChannel
from spectra.notify.twilio.sms import TwilioSmsChannel
from spectra.notify.twilio.voice import TwilioVoiceChannel
from spectra.notify.webhook import WebhookChannel


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
    sms = channels[ChannelName.SMS]
    assert isinstance(sms, TwilioSmsChannel)
    assert isinstance(channels[ChannelName.VOICE], TwilioVoiceChannel)
    assert "tok" not in repr(sms.account)
    partial = channels_from_env({k: v for k, v in env.items() if k != "TWILIO_FROM_NUMBER"})
    assert partial[ChannelName.SMS] is partial[ChannelName.CONSOLE]
