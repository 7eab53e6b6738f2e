"""SMS through Twilio's Messages API with the real `twilio` library."""

from __future__ import annotations

from typing import Any, Final

from twilio.rest import Client  # type: ignore[import-untyped]

from spectra.notify.channel import ChannelName, Delivery, Message
from spectra.notify.twilio.client import TwilioAccount

SMS_MAX_CHARS: Final = 320


_STATES: Final = {
    "opened": "DOWN",
    "escalated": "DOWN",
    "resolved": "RESOLVED",
    "acknowledged": "ACKNOWLEDGED",
}


def sms_text(message: Message) -> str:
    """'[SEV] CODE monitor is DOWN: reason. Reply CODE to acknowledge.' within 320 characters."""
    facts = message.facts
    code = str(facts.get("code") or "")
    monitor = str(facts.get("monitor") or "")
    if not code or not monitor:
        return _clip(" ".join(message.text.split()) or message.subject, SMS_MAX_CHARS)
    severity = str(facts.get("severity") or "alert").upper()
    state_fact = str(facts.get("state") or "opened")
    state = _STATES.get(state_fact, state_fact.upper())
    reason = " ".join(str(facts.get("reason") or "").split())
    head = f"[{severity}] {code} {monitor} is {state}"
    tail = f". Reply {code} to acknowledge." if state == "DOWN" else "."
    if reason:
        room = SMS_MAX_CHARS - len(head) - len(tail) - 2
        if room >= 10:
            return f"{head}: {_clip(reason, room)}{tail}"
    return _clip(head + tail, SMS_MAX_CHARS)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class TwilioSmsChannel:
    name = ChannelName.SMS

    def __init__(self, account: TwilioAccount) -> None:
        self.account = account

    async def send(self, message: Message) -> Delivery:
        body = sms_text(message)

        def create(client: Client) -> Any:
            return client.messages.create(to=message.recipient, from_=self.account.from_number, body=body)

        created = await self.account.call("Messages", message, create)
        return Delivery(provider_message_id=created.sid, status_code=201)
