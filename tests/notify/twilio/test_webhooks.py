"""Twilio webhooks: a valid signature or 403 and nothing asked; the form's sender, called number, key and
incident go to a PhoneReplies, whose answer comes back as TwiML (`after_change` when it acted).

A small fake PhoneReplies answers in most tests; the last ones go through the real app with the alerting
side's PhoneAcks (which numbers may acknowledge what is tested in tests/alerting/test_phone_acks.py).
Each request acts once: a replay of a signed request (same MessageSid / CallSid) gets a harmless answer
and asks nothing. Every test has a database (the handled requests are recorded there); SQLite only here,
the unique key on both databases is tested in tests/store/test_webhook_requests.py.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from spectra.alerting import resolve_incident
from spectra.notify.twilio.webhooks import NOT_ACCEPTED, SmsAnswer, twilio_routes
from spectra.store import Incident, WebhookRequest
from spectra.tokens import Tokens
from spectra.web.alerting import AlertingWeb
from tests.factories.alerting import (
    CODE,
    OTHER_PHONE,
    PAGED_PHONE,
    PUBLIC_URL,
    SECRET_KEY,
    TWILIO_AUTH_TOKEN,
    TWILIO_NUMBER,
    Site,
    alerting_app,
    client_for,
    open_site,
    paged_incident,
)
from tests.support.databases import sqlite_only

pytestmark = sqlite_only

SMS = "/hooks/twilio/sms"
VOICE = "/hooks/twilio/voice"
ACKED = SmsAnswer(f"Acknowledged incident {CODE}: api is down", acted=True)


_SIDS = itertools.count(1)


def new_sid(prefix: str) -> str:
    """A Twilio id not used before in this run: each form is a new request unless a test replays it."""
    return f"{prefix}{next(_SIDS):032x}"


def sms_form(body: str, sender: str = PAGED_PHONE) -> dict[str, str]:
    return {
        "MessageSid": new_sid("SM"),
        "AccountSid": "AC" + "1" * 32,
        "From": sender,
        "To": TWILIO_NUMBER,
        "Body": body,
        "NumMedia": "0",
    }


def voice_form(digits: str, called: str = PAGED_PHONE) -> dict[str, str]:
    # An outbound call: From is our Twilio number, To / Called the person we paged.
    return {
        "CallSid": new_sid("CA"),
        "AccountSid": "AC" + "1" * 32,
        "From": TWILIO_NUMBER,
        "To": called,
        "Called": called,
        "Direction": "outbound-api",
        "Digits": digits,
    }


def signature(path: str, form: dict[str, str], token: str = TWILIO_AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(PUBLIC_URL + path, form))


async def post(client: httpx.AsyncClient, path: str, form: dict[str, str], signature_: str | None) -> httpx.Response:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if signature_ is not None:
        headers["x-twilio-signature"] = signature_
    return await client.post(path, content=urlencode(form), headers=headers)


async def signed_post(client: httpx.AsyncClient, path: str, form: dict[str, str]) -> httpx.Response:
    return await post(client, path, form, signature(path, form))


@dataclass
class FakeReplies:
    """A PhoneReplies that answers as told and records what it was asked."""

    sms_answer: SmsAnswer | None = None
    key_outcome: bool | None = None
    asked: list[tuple[str, ...]] = field(default_factory=list)

    def on_sms(self, sender: str, body: str) -> SmsAnswer | None:
        self.asked.append(("sms", sender, body))
        return self.sms_answer

    def on_key(self, called: str, digits: str, incident: str) -> bool | None:
        self.asked.append(("key", called, digits, incident))
        return self.key_outcome


@dataclass
class Hooks:
    client: httpx.AsyncClient
    replies: FakeReplies
    changes: list[int]  # one entry per `after_change` call


def hooks_app(
    replies: FakeReplies,
    changes: list[int],
    sessions: sessionmaker[Session],
    auth_token: str | None = TWILIO_AUTH_TOKEN,
) -> Starlette:
    routes = twilio_routes(
        replies,
        sessions=sessions,
        auth_token=auth_token,
        public_url=PUBLIC_URL,
        after_change=lambda: changes.append(1),
    )
    return Starlette(routes=routes)


@pytest.fixture
async def hooks(sessions: sessionmaker[Session]) -> AsyncIterator[Hooks]:
    replies = FakeReplies()
    changes: list[int] = []
    async with client_for(hooks_app(replies, changes, sessions)) as client:
        yield Hooks(client, replies, changes)


# --- signatures ------------------------------------------------------------------------------------

BAD_SIGNATURES: dict[str, Callable[[str, dict[str, str]], str | None]] = {
    "missing": lambda path, form: None,
    "empty": lambda path, form: "",
    "garbage": lambda path, form: "bm90IGEgc2lnbmF0dXJl",
    "other auth token": lambda path, form: signature(path, form, token="another-accounts-auth-token"),
    "other URL": lambda path, form: signature(path + "?incident=999", form),
    "other body": lambda path, form: signature(
        path, {**form, "Body": "hello"} if "Body" in form else {**form, "Digits": "9"}
    ),
}


@pytest.mark.parametrize("kind", list(BAD_SIGNATURES))
@pytest.mark.parametrize(
    ("path", "form"),
    [(SMS, sms_form(f"ack {CODE}")), (f"{VOICE}?incident=7", voice_form("1"))],
    ids=["sms", "voice"],
)
async def test_bad_signatures_get_403_and_change_nothing(
    hooks: Hooks, kind: str, path: str, form: dict[str, str]
) -> None:
    hooks.replies.sms_answer, hooks.replies.key_outcome = ACKED, True
    response = await post(hooks.client, path, form, BAD_SIGNATURES[kind](path, form))
    assert response.status_code == 403
    assert CODE not in response.text
    assert hooks.replies.asked == []  # nobody was asked what the reply means: nothing could change
    assert hooks.changes == []


@pytest.mark.parametrize(("path", "form"), [(SMS, sms_form(f"ack {CODE}")), (f"{VOICE}?incident=7", voice_form("1"))])
async def test_no_auth_token_configured_refuses_everything(
    sessions: sessionmaker[Session], path: str, form: dict[str, str]
) -> None:
    replies = FakeReplies(ACKED, True)
    changes: list[int] = []
    async with client_for(hooks_app(replies, changes, sessions, auth_token=None)) as client:
        response = await signed_post(client, path, form)
    assert response.status_code == 403
    assert replies.asked == []
    assert changes == []


# --- SMS replies -----------------------------------------------------------------------------------


async def test_an_sms_answer_that_acted_is_texted_back_after_the_change(hooks: Hooks) -> None:
    hooks.replies.sms_answer = ACKED
    response = await signed_post(hooks.client, SMS, sms_form(f"Ack {CODE.lower()}, on it"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Response><Message>" in response.text
    assert f"Acknowledged incident {CODE}: api is down" in response.text
    assert hooks.replies.asked == [("sms", PAGED_PHONE, f"Ack {CODE.lower()}, on it")]
    assert hooks.changes == [1]


async def test_an_sms_answer_that_did_not_act_changes_nothing(hooks: Hooks) -> None:
    hooks.replies.sms_answer = SmsAnswer(f"Incident {CODE} is already acknowledged.", acted=False)
    response = await signed_post(hooks.client, SMS, sms_form(CODE))
    assert response.status_code == 200
    assert "already acknowledged" in response.text
    assert hooks.changes == []


@pytest.mark.parametrize("sender", [PAGED_PHONE, ""], ids=["not-accepted", "no-sender"])
async def test_an_sms_not_accepted_gets_the_same_answer(hooks: Hooks, sender: str) -> None:
    response = await signed_post(hooks.client, SMS, sms_form(f"ack {CODE}", sender))
    assert response.status_code == 200
    assert NOT_ACCEPTED in response.text
    assert CODE not in response.text
    assert hooks.replies.asked == ([("sms", sender, f"ack {CODE}")] if sender else [])  # no sender: not asked
    assert hooks.changes == []


# --- key presses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "said", "changes"),
    [
        (True, "<Say>Acknowledged. Thank you.</Say>", [1]),
        (False, "<Say>This incident was already acknowledged. Goodbye.</Say>", []),
        (None, "<Say>Not acknowledged. Goodbye.</Say>", []),
    ],
    ids=["acted", "already", "not-accepted"],
)
async def test_a_key_press_is_answered_and_the_call_hung_up(
    hooks: Hooks, outcome: bool | None, said: str, changes: list[int]
) -> None:
    hooks.replies.key_outcome = outcome
    response = await signed_post(hooks.client, f"{VOICE}?incident=7", voice_form(" 1 "))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert said in response.text
    assert "<Hangup />" in response.text
    assert hooks.replies.asked == [("key", PAGED_PHONE, "1", "7")]  # the key without blanks, the URL's incident
    assert hooks.changes == changes


@pytest.mark.parametrize(
    ("form", "path", "asked"),
    [
        ({**voice_form("1"), "Called": ""}, f"{VOICE}?incident=7", [("key", PAGED_PHONE, "1", "7")]),  # To instead
        (voice_form(""), f"{VOICE}?incident=7", [("key", PAGED_PHONE, "", "7")]),  # the gather timed out
        (voice_form("1"), VOICE, [("key", PAGED_PHONE, "1", "")]),  # no incident in the URL
        ({**voice_form("1"), "Called": "", "To": ""}, f"{VOICE}?incident=7", []),  # nobody called: not asked
    ],
    ids=["to-without-called", "no-key", "no-incident", "no-number"],
)
async def test_what_a_key_press_asks(
    hooks: Hooks, form: dict[str, str], path: str, asked: list[tuple[str, ...]]
) -> None:
    hooks.replies.key_outcome = True
    response = await signed_post(hooks.client, path, form)
    assert response.status_code == 200
    assert hooks.replies.asked == asked
    assert ("Acknowledged. Thank you." in response.text) is bool(asked)


# --- through the real app, with the alerting side's PhoneAcks ---------------------------------------


async def test_sms_from_the_paged_number_acknowledges_through_the_app(sessions: sessionmaker[Session]) -> None:
    async with open_site(sessions) as site:
        response = await signed_post(site.client, SMS, sms_form(f"ack {CODE}"))
        assert response.status_code == 200
        assert "<Response><Message>" in response.text
        assert f"Acknowledged incident {CODE}" in response.text
        incident = site.incident()
        assert incident.state == "acknowledged"
        assert incident.acknowledged_by == PAGED_PHONE
        assert [event for event in site.events() if event[0] == "acknowledged"] == [
            ("acknowledged", PAGED_PHONE, "sms")
        ]
        assert site.wakes == [1]

        # A second reply (a new message) acknowledges nothing more.
        again = await signed_post(site.client, SMS, sms_form(f"ack {CODE}"))
        assert again.status_code == 200
        assert "already acknowledged" in again.text
        assert len([event for event in site.events() if event[0] == "acknowledged"]) == 1
        assert site.wakes == [1]


async def test_an_unknown_code_and_a_stranger_get_the_same_answer(sessions: sessionmaker[Session]) -> None:
    async with open_site(sessions) as site:
        stranger = await signed_post(site.client, SMS, sms_form(f"ack {CODE}", OTHER_PHONE))
        unknown = await signed_post(site.client, SMS, sms_form("ack QQQQ"))
        assert stranger.status_code == unknown.status_code == 200
        assert stranger.text == unknown.text  # nothing to learn for a stranger
        assert NOT_ACCEPTED in stranger.text
        assert site.incident().state == "open"
        assert not site.acknowledged()
        assert site.wakes == []


async def test_voice_key_1_from_the_paged_number_acknowledges_through_the_app(sessions: sessionmaker[Session]) -> None:
    async with open_site(sessions) as site:
        response = await signed_post(site.client, f"{VOICE}?incident={site.incident_id}", voice_form("1"))
        assert response.status_code == 200
        assert "<Say>Acknowledged. Thank you.</Say>" in response.text
        assert site.incident().state == "acknowledged"
        assert [event for event in site.events() if event[0] == "acknowledged"] == [
            ("acknowledged", PAGED_PHONE, "voice")
        ]
        assert site.wakes == [1]


async def test_an_app_without_a_twilio_auth_token_refuses_everything(sessions: sessionmaker[Session]) -> None:
    paged = paged_incident(sessions)
    app = alerting_app(sessions, AlertingWeb(Tokens(SECRET_KEY), PUBLIC_URL))  # no twilio_auth_token
    async with client_for(app) as client:
        response = await signed_post(client, SMS, sms_form(f"ack {CODE}"))
    assert response.status_code == 403
    assert paged.incident().state == "open"


# --- replays: each signed request acts once -----------------------------------------------------------

REPLAY_SMS_ANSWER = "<Response />"  # nothing is texted back
REPLAY_VOICE_ANSWER = "<Response><Hangup /></Response>"


def replay_answer(path: str) -> str:
    return REPLAY_SMS_ANSWER if path.startswith(SMS) else REPLAY_VOICE_ANSWER


@pytest.mark.parametrize(
    ("path", "form"),
    [(SMS, lambda: sms_form(f"ack {CODE}")), (f"{VOICE}?incident=7", lambda: voice_form("1"))],
    ids=["sms", "voice"],
)
async def test_a_replayed_request_asks_nothing_and_gets_a_harmless_answer(
    hooks: Hooks, path: str, form: Callable[[], dict[str, str]]
) -> None:
    hooks.replies.sms_answer, hooks.replies.key_outcome = ACKED, True
    request = form()
    first = await signed_post(hooks.client, path, request)
    assert first.status_code == 200
    assert "Acknowledged" in first.text
    for _ in range(3):
        replayed = await signed_post(hooks.client, path, request)
        assert replayed.status_code == 200
        assert replayed.headers["content-type"].startswith("application/xml")
        assert replay_answer(path) in replayed.text
        assert "Acknowledged" not in replayed.text
    assert len(hooks.replies.asked) == 1
    assert hooks.changes == [1]


@pytest.mark.parametrize(
    ("path", "field", "sid"),
    [
        (SMS, "MessageSid", ""),
        (SMS, "MessageSid", "SM1234"),
        (SMS, "MessageSid", "SM" + "g" * 32),
        (SMS, "MessageSid", "SM" + "0" * 32 + "' OR 1=1"),
        (f"{VOICE}?incident=7", "CallSid", ""),
        (f"{VOICE}?incident=7", "CallSid", "CA" + "0" * 31),
        (f"{VOICE}?incident=7", "CallSid", "x" * 300),
    ],
    ids=["sms-none", "sms-short", "sms-not-hex", "sms-trailing", "voice-none", "voice-short", "voice-long"],
)
async def test_a_signed_request_without_a_valid_id_never_acts(hooks: Hooks, path: str, field: str, sid: str) -> None:
    hooks.replies.sms_answer, hooks.replies.key_outcome = ACKED, True
    request = {**(sms_form(f"ack {CODE}") if path == SMS else voice_form("1")), field: sid}
    response = await signed_post(hooks.client, path, request)
    assert response.status_code == 200
    assert replay_answer(path) in response.text
    assert hooks.replies.asked == []
    assert hooks.changes == []


@dataclass
class FailingOnce(FakeReplies):
    """Fails the first question (the database went away mid-request), then answers."""

    failed: bool = False

    def on_sms(self, sender: str, body: str) -> SmsAnswer | None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("database went away")
        return super().on_sms(sender, body)


async def test_a_request_that_failed_acts_when_twilio_retries_it(sessions: sessionmaker[Session]) -> None:
    replies, changes = FailingOnce(sms_answer=ACKED), list[int]()
    request = sms_form(f"ack {CODE}")
    async with client_for(hooks_app(replies, changes, sessions)) as client:
        with pytest.raises(ConnectionError):
            await signed_post(client, SMS, request)
        with sessions() as session:  # not remembered: the retry must act
            assert session.scalars(sa.select(WebhookRequest)).all() == []
        retried = await signed_post(client, SMS, request)
    assert f"Acknowledged incident {CODE}" in retried.text
    assert changes == [1]


def reopen(site: Site) -> None:
    """Resolve the incident, then reopen it as a flap does (the same incident, open again)."""
    with site.sessions.begin() as session:
        assert resolve_incident(session, site.incident_id, by="alice", channel="web")
    with site.sessions.begin() as session:
        incident = session.get(Incident, site.incident_id)
        assert incident is not None
        incident.state, incident.resolved_at = "open", None
        incident.acknowledged_at, incident.acknowledged_by = None, None


def acks(site: Site) -> int:
    return len([event for event in site.events() if event[0] == "acknowledged"])


@pytest.mark.parametrize("channel", ["sms", "voice"])
@pytest.mark.parametrize("reopened", [False, True], ids=["at-once", "after-resolved-and-reopened"])
async def test_a_replayed_ack_acknowledges_nothing_through_the_app(
    sessions: sessionmaker[Session], channel: str, reopened: bool
) -> None:
    async with open_site(sessions) as site:
        path = SMS if channel == "sms" else f"{VOICE}?incident={site.incident_id}"

        def request() -> dict[str, str]:
            return sms_form(f"ack {CODE}") if channel == "sms" else voice_form("1")

        captured = request()
        first = await signed_post(site.client, path, captured)
        assert "Acknowledged" in first.text
        assert site.incident().state == "acknowledged"
        if reopened:
            reopen(site)
            assert site.incident().state == "open"

        for _ in range(3):
            replayed = await signed_post(site.client, path, captured)
            assert replayed.status_code == 200
            assert replay_answer(path) in replayed.text
        assert site.incident().state == ("open" if reopened else "acknowledged")
        assert acks(site) == 1
        assert site.wakes == [1]
        with sessions() as session:
            sid = captured["MessageSid" if channel == "sms" else "CallSid"]
            assert session.scalars(sa.select(WebhookRequest.request_key)).all() == [f"twilio:{channel}:{sid}"]

        if reopened:  # the person may still acknowledge: a new message or call acts
            fresh = await signed_post(site.client, path, request())
            assert "Acknowledged" in fresh.text
            assert site.incident().state == "acknowledged"
            assert acks(site) == 2
