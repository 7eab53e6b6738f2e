"""The console channel: one log line per message, for standalone mode without provider accounts."""

from __future__ import annotations

import logging
import uuid

from spectra.notify.channel import ChannelName, Delivery, Message

log = logging.getLogger("spectra.notify.console")

# Recipients of these channels are URLs, and URLs are secrets: never logged.
_SECRET_RECIPIENTS = frozenset({ChannelName.WEBHOOK, ChannelName.SLACK})


class ConsoleChannel:
    """Logs the message instead of sending it (also the stand-in for email/sms/voice without keys)."""

    name = ChannelName.CONSOLE

    async def send(self, message: Message) -> Delivery:
        recipient = "(hidden)" if message.channel in _SECRET_RECIPIENTS else message.recipient
        log.warning(
            "notification [%s to %s] %s | %s",
            message.channel.value,
            recipient,
            message.subject,
            " ".join(message.text.split()),
        )
        return Delivery(provider_message_id=f"console-{uuid.uuid4().hex}")
