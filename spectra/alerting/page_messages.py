"""The message of one page: what an escalation step sends to one recipient through one channel.

Every page carries the incident's code, title, reason and an acknowledge link; SMS and voice are short and
say how to acknowledge by phone. Idempotency key: ``incident:{id}:step:{k}:repeat:{r}:{channel}:{recipient}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from spectra.alerting.incidents import idempotency_key, incident_facts
from spectra.alerting.recipients import Page
from spectra.notify.channel import ChannelName, Message
from spectra.store import Incident
from spectra.tokens import Purpose, Tokens


@dataclass(frozen=True)
class Links:
    tokens: Tokens
    public_url: str

    def ack_url(self, incident_id: int) -> str:
        return f"{self.public_url}/ack/{self.tokens.make(Purpose.ACK, {'i': incident_id})}"

    def voice_url(self, incident_id: int) -> str:
        return f"{self.public_url}/hooks/twilio/voice?incident={incident_id}"


def page_message(incident: Incident, page: Page, *, step: int, repeat: int, reason: str, links: Links) -> Message:
    state = "opened" if step == 0 and repeat == 0 else "escalated"
    ack_url = links.ack_url(incident.id)
    facts = incident_facts(incident, state=state, reason=reason, ack_url=ack_url, step=step)
    facts["repeat"] = repeat
    if page.channel == ChannelName.VOICE:
        facts["voice_action_url"] = links.voice_url(incident.id)
    detail = f": {reason}" if reason else ""
    if page.channel in (ChannelName.SMS, ChannelName.VOICE):
        text = (
            f"{incident.code} {incident.severity} {incident.title}{detail}. Reply ACK {incident.code} to acknowledge."
        )
    else:
        text = (
            f"{incident.title}{detail}\nSeverity: {incident.severity}\nIncident: {incident.code}\n"
            f"Opened: {incident.opened_at.isoformat()}\nAcknowledge: {ack_url}"
        )
    return Message(
        channel=page.channel,
        recipient=page.recipient,
        subject=f"[{incident.code}] {incident.title}",
        text=text,
        idempotency_key=idempotency_key(
            "incident", incident.id, "step", step, "repeat", repeat, str(page.channel), page.recipient
        ),
        incident_id=incident.id,
        facts=facts,
    )
