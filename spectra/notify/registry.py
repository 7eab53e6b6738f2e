"""Which channel delivers each ChannelName: the providers whose settings are in the environment, else the console.

Webhook and Slack URLs come from tenants' Secrets, so their deliveries pass the egress policy the process
runs under. SendGrid and Twilio hosts are the operator's settings (SPECTRA_SENDGRID_URL, SPECTRA_TWILIO_URL),
not a tenant's, so they do not.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from spectra.domain.egress import EgressPolicy
from spectra.notify.channel import Channel, ChannelName
from spectra.notify.console import ConsoleChannel
from spectra.notify.email import SendGridChannel, sendgrid_settings
from spectra.notify.slack import SlackChannel
from spectra.notify.twilio.client import TwilioAccount
from spectra.notify.twilio.settings import twilio_settings
from spectra.notify.twilio.sms import TwilioSmsChannel
from spectra.notify.twilio.voice import TwilioVoiceChannel
from spectra.notify.webhook import WebhookChannel

log = logging.getLogger("spectra.notify")


def channels_from_env(
    env: Mapping[str, str] = os.environ, *, egress: EgressPolicy | None = None
) -> dict[ChannelName, Channel]:
    """Every channel: SendGrid / Twilio where their keys are set, else console; webhook, slack, console always.

    `egress` is what webhook and Slack deliveries may reach; None is the strict (cluster) default.
    """
    egress = egress if egress is not None else EgressPolicy()
    console = ConsoleChannel()
    channels: dict[ChannelName, Channel] = {
        ChannelName.CONSOLE: console,
        ChannelName.EMAIL: console,
        ChannelName.SMS: console,
        ChannelName.VOICE: console,
        ChannelName.WEBHOOK: WebhookChannel(env.get("SPECTRA_SECRET_KEY") or None, egress=egress),
        ChannelName.SLACK: SlackChannel(egress=egress),
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
