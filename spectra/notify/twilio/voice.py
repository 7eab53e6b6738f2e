"""Voice calls through Twilio's Calls API: TwiML that says the incident and gathers 1 to acknowledge."""

from __future__ import annotations

from typing import Any

from twilio.rest import Client  # type: ignore[import-untyped]
from twilio.twiml.voice_response import VoiceResponse  # type: ignore[import-untyped]

from spectra.notify.channel import ChannelName, Delivery, Message
from spectra.notify.twilio.client import TwilioAccount

_SPOKEN_STATES = {"opened": "down", "escalated": "down", "resolved": "resolved", "acknowledged": "acknowledged"}


def voice_twiml(message: Message) -> str:
    """TwiML: the incident said twice at most, and (with facts['voice_action_url']) "press 1" gathered."""
    facts = message.facts
    monitor = str(facts.get("monitor") or "")
    if monitor:
        state = str(facts.get("state") or "opened")
        said = f"SpectraMonitor alert. Monitor {monitor.replace('/', ' ')} is {_SPOKEN_STATES.get(state, state)}."
        reason = " ".join(str(facts.get("reason") or "").split())
        if reason:
            said += f" Reason: {reason[:200]}."
        if facts.get("code"):
            said += f" Incident {' '.join(str(facts['code']))}."
    else:
        said = " ".join((message.text or message.subject).split())[:400]
    response = VoiceResponse()
    action = facts.get("voice_action_url")
    if action:
        gather = response.gather(num_digits=1, action=str(action), method="POST", timeout=10)
        gather.say(said)
        gather.say("Press 1 to acknowledge.")
        response.say("No key pressed. Goodbye.")
    else:
        response.say(said)
    return str(response)


class TwilioVoiceChannel:
    name = ChannelName.VOICE

    def __init__(self, account: TwilioAccount) -> None:
        self.account = account

    async def send(self, message: Message) -> Delivery:
        twiml = voice_twiml(message)

        def create(client: Client) -> Any:
            return client.calls.create(to=message.recipient, from_=self.account.from_number, twiml=twiml)

        created = await self.account.call("Calls", message, create)
        return Delivery(provider_message_id=created.sid, status_code=201)
