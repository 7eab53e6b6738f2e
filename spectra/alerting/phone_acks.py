"""Acknowledging by phone: what an SMS reply or a key press on a call means for incidents.

An SMS acknowledges the incident whose code it contains only when that incident was paged to the sending
number; a call acknowledges on key 1 only when the called number was paged for the incident. The answers
never reveal whether a code exists to a number that was not paged. The Twilio webhooks
(:mod:`spectra.notify.twilio.webhooks`) check signatures and speak TwiML; this decides.
"""

from __future__ import annotations

import re
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from spectra.alerting.incidents import acknowledge, find_incident_by_code, was_paged
from spectra.notify.twilio.webhooks import SmsAnswer
from spectra.store.engine import retry_conflicts

# Words of an SMS that could be an incident code; more than a few words is not an ack reply.
_WORD = re.compile(r"[A-Za-z0-9]{3,16}")
MAX_CANDIDATES: Final = 8


class PhoneAcks:
    """The alerting side of :class:`spectra.notify.twilio.webhooks.PhoneReplies`."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def on_sms(self, sender: str, body: str) -> SmsAnswer | None:
        return retry_conflicts(lambda: self._ack_by_sms(body, sender))

    def on_key(self, called: str, digits: str, incident: str) -> bool | None:
        if digits != "1" or not incident.isdigit():
            return None
        incident_id = int(incident)
        return retry_conflicts(lambda: self._ack_by_voice(incident_id, called))

    def _ack_by_sms(self, body: str, sender: str) -> SmsAnswer | None:
        """Acknowledge the paged incident whose code `body` names."""
        candidates = [word.upper() for word in _WORD.findall(body)][:MAX_CANDIDATES]
        with self._sessions.begin() as session:
            for code in candidates:
                incident = find_incident_by_code(session, code)
                if incident is None or not was_paged(session, incident.id, sender):
                    continue
                if acknowledge(session, incident.id, by=sender, channel="sms"):
                    return SmsAnswer(f"Acknowledged incident {incident.code}: {incident.title}", acted=True)
                state = "resolved" if incident.state == "resolved" else "acknowledged"
                return SmsAnswer(f"Incident {incident.code} is already {state}.", acted=False)
        return None

    def _ack_by_voice(self, incident_id: int, called: str) -> bool | None:
        with self._sessions.begin() as session:
            if not was_paged(session, incident_id, called):
                return None
            return acknowledge(session, incident_id, by=called, channel="voice")
