"""Twilio webhooks: SMS replies (`/hooks/twilio/sms`) and voice key presses (`/hooks/twilio/voice`).

Every request must carry a valid X-Twilio-Signature (HMAC of SPECTRA_PUBLIC_URL + path + query and the form
fields, keyed with TWILIO_AUTH_TOKEN; checked with the twilio library's RequestValidator); anything else
gets 403 and changes nothing. What a reply or a key press means is not decided here: a :class:`PhoneReplies`
(the alerting side's, :mod:`spectra.alerting.phone_acks`) answers, and this module turns its answer into
TwiML.

A signature never expires, so a captured request could be sent again (after the incident was resolved and
reopened, say). Each request acts once: its MessageSid or CallSid is recorded
(:mod:`spectra.store.webhook_requests`) before anything is asked, and a request whose id was seen, or that
has none, gets a harmless answer (no reply text, the call hung up) without acting. One call gathers one key
press (the answer hangs up), so the CallSid alone identifies it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from twilio.twiml.messaging_response import MessagingResponse  # type: ignore[import-untyped]
from twilio.twiml.voice_response import VoiceResponse  # type: ignore[import-untyped]

from spectra.runtime.forms import read_body, read_form
from spectra.store.webhook_requests import first_time, forget

log = logging.getLogger(__name__)

TWIML: Final = "application/xml"
NOT_ACCEPTED: Final = "Not accepted: reply with the code of an incident you were paged for."
# Twilio's ids: two letters (SM, MM, CA, ...) and 32 hex digits.
_SID: Final = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")


@dataclass(frozen=True)
class SmsAnswer:
    """What to text back; `acted` when the reply changed something (an incident was acknowledged)."""

    text: str
    acted: bool


class PhoneReplies(Protocol):
    """What a paged person's reply means. Both run in a worker thread (they touch the database)."""

    def on_sms(self, sender: str, body: str) -> SmsAnswer | None:
        """The answer to an SMS from `sender`; None when it is not accepted (never says why)."""

    def on_key(self, called: str, digits: str, incident: str) -> bool | None:
        """A key press on a call to `called` about `incident` (the callback URL's `incident` parameter):
        True: acted now; False: nothing left to do; None: not accepted."""


class _Form(dict[str, list[str]]):
    """Form fields with every value; RequestValidator reads multi-valued fields through getlist()."""

    def getlist(self, name: str) -> list[str]:
        return self[name]

    def first(self, name: str) -> str:
        values = self.get(name) or [""]
        return values[0]


def _requested_url(public_url: str, request: Request) -> str:
    """The URL Twilio requested, as Twilio saw it: the public base + path (+ query)."""
    url = public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


async def _signed_form(auth_token: str | None, public_url: str, request: Request) -> _Form | None:
    """The form of a correctly signed request, else None."""
    signature = request.headers.get("x-twilio-signature")
    if not signature or not auth_token:
        return None
    body = await read_body(request)
    if body is None:
        return None
    form = _Form(read_form(body))
    if not RequestValidator(auth_token).validate(_requested_url(public_url, request), form, signature):
        return None
    return form


def _forbidden() -> Response:
    return PlainTextResponse("forbidden\n", status_code=403)


def _twiml(xml: str) -> Response:
    return Response(xml, media_type=TWIML)


def _replay_sms() -> Response:
    return _twiml(str(MessagingResponse().to_xml()))  # no <Message>: nothing is texted back


def _replay_voice() -> Response:
    response = VoiceResponse()
    response.hangup()
    return _twiml(str(response.to_xml()))


async def _once(
    sessions: sessionmaker[Session], kind: str, sid: str, handle: Callable[[], Awaitable[Response]]
) -> Response | None:
    """``handle()`` if this is the first request with ``sid``, else None; a failure forgets ``sid`` again,
    so Twilio's retry acts."""
    if not _SID.fullmatch(sid):
        log.warning("a signed Twilio %s webhook without a valid id was answered without acting", kind)
        return None
    key = f"twilio:{kind}:{sid}"
    if not await run_in_threadpool(first_time, sessions, key):
        log.warning("a replayed Twilio %s webhook (%s) was answered without acting", kind, sid)
        return None
    try:
        return await handle()
    except BaseException:
        await run_in_threadpool(forget, sessions, key)
        raise


def twilio_routes(
    replies: PhoneReplies,
    *,
    sessions: sessionmaker[Session],
    auth_token: str | None,
    public_url: str,
    after_change: Callable[[], None] = lambda: None,
) -> list[Route]:
    """POST `/hooks/twilio/sms` and `/hooks/twilio/voice`; `after_change` runs after a reply acted.
    `sessions` records the requests handled (each acts once)."""

    async def sms(request: Request) -> Response:
        form = await _signed_form(auth_token, public_url, request)
        if form is None:
            log.warning("refused an SMS webhook without a valid Twilio signature")
            return _forbidden()
        answered = await _once(sessions, "sms", form.first("MessageSid"), lambda: answer_sms(form))
        return answered or _replay_sms()

    async def answer_sms(form: _Form) -> Response:
        sender, body = form.first("From"), form.first("Body")
        answer = await run_in_threadpool(replies.on_sms, sender, body) if sender else None
        response = MessagingResponse()
        if answer is None:
            response.message(NOT_ACCEPTED)
        else:
            if answer.acted:
                log.info("incident acknowledged by SMS")
                after_change()
            response.message(answer.text)
        return _twiml(str(response.to_xml()))

    async def voice(request: Request) -> Response:
        form = await _signed_form(auth_token, public_url, request)
        if form is None:
            log.warning("refused a voice webhook without a valid Twilio signature")
            return _forbidden()
        incident = request.query_params.get("incident", "")
        answered = await _once(sessions, "voice", form.first("CallSid"), lambda: answer_key(form, incident))
        return answered or _replay_voice()

    async def answer_key(form: _Form, incident: str) -> Response:
        response = VoiceResponse()
        called = form.first("Called") or form.first("To")
        digits = form.first("Digits").strip()
        outcome = await run_in_threadpool(replies.on_key, called, digits, incident) if called else None
        if outcome is True:
            log.info("incident acknowledged by phone")
            after_change()
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
