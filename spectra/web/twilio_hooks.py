"""Twilio webhooks: acknowledge by SMS reply (`/hooks/twilio/sms`) and by voice key (`/hooks/twilio/voice`).

Every request must carry a valid X-Twilio-Signature (HMAC of SPECTRA_PUBLIC_URL + path + query and the form
fields, keyed with TWILIO_AUTH_TOKEN; checked with the twilio library's RequestValidator); anything else
gets 403 and changes nothing. An SMS acknowledges the incident whose code it contains only when that
incident was paged to the sending number; a call acknowledges on key 1 only when the called number was
paged. The answers never reveal whether a code exists to a number that was not paged.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from twilio.twiml.messaging_response import MessagingResponse  # type: ignore[import-untyped]
from twilio.twiml.voice_response import VoiceResponse  # type: ignore[import-untyped]

from spectra.runtime.forms import read_body, read_form
from spectra.store.engine import retry_locked
from spectra.web.ack import AlertingWeb

log = logging.getLogger(__name__)

TWIML: Final = "application/xml"
# Words of an SMS that could be an incident code; more than a few words is not an ack reply.
_WORD = re.compile(r"[A-Za-z0-9]{3,16}")
MAX_CANDIDATES: Final = 8
NOT_ACCEPTED: Final = "Not accepted: reply with the code of an incident you were paged for."


class _Form(dict[str, list[str]]):
    """Form fields with every value; RequestValidator reads multi-valued fields through getlist()."""

    def getlist(self, name: str) -> list[str]:
        return self[name]

    def first(self, name: str) -> str:
        values = self.get(name) or [""]
        return values[0]


def _public_url(config: AlertingWeb, request: Request) -> str:
    """The URL Twilio requested, as Twilio saw it: the public base + path (+ query)."""
    url = config.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


async def _signed_form(config: AlertingWeb, request: Request) -> _Form | None:
    """The form of a correctly signed request, else None."""
    signature = request.headers.get("x-twilio-signature")
    if not signature or not config.twilio_auth_token:
        return None
    body = await read_body(request)
    if body is None:
        return None
    form = _Form(read_form(body))
    if not RequestValidator(config.twilio_auth_token).validate(_public_url(config, request), form, signature):
        return None
    return form


def _forbidden() -> Response:
    return PlainTextResponse("forbidden\n", status_code=403)


def _twiml(xml: str) -> Response:
    return Response(xml, media_type=TWIML)


def _ack_by_sms(factory: sessionmaker[Session], body: str, sender: str) -> str | None:
    """Acknowledge the paged incident whose code `body` names; the reply text, or None when not accepted."""
    from spectra.alerting import acknowledge, find_incident_by_code, was_paged

    candidates = [word.upper() for word in _WORD.findall(body)][:MAX_CANDIDATES]
    with factory.begin() as session:
        for code in candidates:
            incident = find_incident_by_code(session, code)
            if incident is None or not was_paged(session, incident.id, sender):
                continue
            if acknowledge(session, incident.id, by=sender, channel="sms"):
                return f"Acknowledged incident {incident.code}: {incident.title}"
            state = "resolved" if incident.state == "resolved" else "acknowledged"
            return f"Incident {incident.code} is already {state}."
    return None


def _ack_by_voice(factory: sessionmaker[Session], incident_id: int, called: str) -> bool | None:
    """True: acknowledged now; False: was already; None: not accepted (number not paged, no such incident)."""
    from spectra.alerting import acknowledge, was_paged

    with factory.begin() as session:
        if not was_paged(session, incident_id, called):
            return None
        return acknowledge(session, incident_id, by=called, channel="voice")


def twilio_routes(config: AlertingWeb, factory: sessionmaker[Session]) -> list[Route]:
    async def sms(request: Request) -> Response:
        form = await _signed_form(config, request)
        if form is None:
            log.warning("refused an SMS webhook without a valid Twilio signature")
            return _forbidden()
        sender = form.first("From")
        body = form.first("Body")
        reply = await run_in_threadpool(retry_locked, lambda: _ack_by_sms(factory, body, sender)) if sender else None
        response = MessagingResponse()
        if reply is None:
            response.message(NOT_ACCEPTED)
        else:
            if reply.startswith("Acknowledged"):
                log.info("incident acknowledged by SMS")
                config.after_change()
            response.message(reply)
        return _twiml(str(response.to_xml()))

    async def voice(request: Request) -> Response:
        form = await _signed_form(config, request)
        if form is None:
            log.warning("refused a voice webhook without a valid Twilio signature")
            return _forbidden()
        response = VoiceResponse()
        raw_id = request.query_params.get("incident", "")
        called = form.first("Called") or form.first("To")
        digits = form.first("Digits").strip()
        outcome: bool | None = None
        if digits == "1" and raw_id.isdigit() and called:
            incident_id = int(raw_id)
            outcome = await run_in_threadpool(retry_locked, lambda: _ack_by_voice(factory, incident_id, called))
        if outcome is True:
            log.info("incident acknowledged by phone")
            config.after_change()
            response.say("Acknowledged. Thank you.")
        elif outcome is False:
            response.say("This incident was already acknowledged. Goodbye.")
        else:
            response.say("Not acknowledged. Goodbye.")
        response.hangup()
        return _twiml(str(response.to_xml()))

    return [
        Route("/hooks/twilio/sms", sms, methods=["POST"]),
        Route("/hooks/twilio/voice", voice, methods=["POST"]),
    ]
