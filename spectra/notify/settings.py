"""Provider settings from the environment and the channel set they give."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from spectra.notify.console import ConsoleChannel
from spectra.notify.email import SendGridChannel
from spectra.notify.message import Channel, ChannelName
from spectra.notify.slack import SlackChannel
from spectra.notify.sms import TwilioAccount, TwilioSmsChannel
from spectra.notify.voice import TwilioVoiceChannel
from spectra.notify.webhook import WebhookChannel

log = logging.getLogger("spectra.notify")

DEFAULT_EMAIL_FROM: Final = "spectra@localhost"


@dataclass(frozen=True, repr=False)
class SendGridSettings:
    api_key: str
    from_email: str
    host: str | None

    def __repr__(self) -> str:
        return f"SendGridSettings(from_email={self.from_email!r}, host={self.host!r})"


@dataclass(frozen=True, repr=False)
class TwilioSettings:
    account_sid: str
    auth_token: str
    from_number: str
    base_url: str | None

    def __repr__(self) -> str:
        return f"TwilioSettings(account_sid={self.account_sid!r}, base_url={self.base_url!r})"


def sendgrid_settings(env: Mapping[str, str]) -> SendGridSettings | None:
    key = env.get("SENDGRID_API_KEY", "").strip()
    if not key:
        return None
    return SendGridSettings(
        api_key=key,
        from_email=env.get("SPECTRA_EMAIL_FROM", "").strip() or DEFAULT_EMAIL_FROM,
        host=env.get("SPECTRA_SENDGRID_URL", "").strip() or None,
    )


def twilio_settings(env: Mapping[str, str]) -> TwilioSettings | None:
    names = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER")
    sid, token, number = (env.get(name, "").strip() for name in names)
    if not (sid and token and number):
        return None
    return TwilioSettings(sid, token, number, env.get("SPECTRA_TWILIO_URL", "").strip() or None)


def channels_from_env(env: Mapping[str, str] = os.environ) -> dict[ChannelName, Channel]:
    """Every channel: SendGrid / Twilio where their keys are set, else console; webhook, slack, console always."""
    console = ConsoleChannel()
    channels: dict[ChannelName, Channel] = {
        ChannelName.CONSOLE: console,
        ChannelName.EMAIL: console,
        ChannelName.SMS: console,
        ChannelName.VOICE: console,
        ChannelName.WEBHOOK: WebhookChannel(env.get("SPECTRA_SECRET_KEY") or None),
        ChannelName.SLACK: SlackChannel(),
    }
    sendgrid = sendgrid_settings(env)
    if sendgrid is not None:
        channels[ChannelName.EMAIL] = SendGridChannel(sendgrid.api_key, sendgrid.from_email, host=sendgrid.host)
    twilio = twilio_settings(env)
    if twilio is not None:
        account = TwilioAccount(twilio.account_sid, twilio.auth_token, twilio.from_number, base_url=twilio.base_url)
        channels[ChannelName.SMS] = TwilioSmsChannel(account)
        channels[ChannelName.VOICE] = TwilioVoiceChannel(account)
    missing = [c.value for c in (ChannelName.EMAIL, ChannelName.SMS, ChannelName.VOICE) if channels[c] is console]
    if missing:
        log.info("no provider keys for %s: those messages go to the console", ", ".join(missing))
    return channels
