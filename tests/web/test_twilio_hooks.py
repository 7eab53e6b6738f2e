"""Twilio webhooks: signatures are checked; only numbers that were paged can acknowledge, by SMS or by key 1."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from spectra.notify.twilio.webhooks import NOT_ACCEPTED
from spectra.runtime.metrics import Metrics
from spectra.web.alerting import AlertingWeb, alerting_routes
from spectra.web.app import AppParts, create_app

from .conftest import CODE, OTHER_PHONE, PAGED_PHONE, PUBLIC_URL, TWILIO_AUTH_TOKEN, Site, client_for

TWILIO_NUMBER = "+15559990000"


def sms_form(body: str, sender: str = PAGED_PHONE) -> dict[str, str]:
    return {
        "MessageSid": "SM" + "0" * 32,
        "AccountSid": "AC" + "1" * 32,
        "From": sender,
        "To": TWILIO_NUMBER,
        "Body": body,
        "NumMedia": "0",
    }


def voice_form(digits: str, called: str = PAGED_PHONE) -> dict[str, str]:
    # An outbound call: From is our Twilio number, To / Called the person we paged.
    return {
        "CallSid": "CA" + "0" * 32,
        "AccountSid": "AC" + "1" * 32,
        "From": TWILIO_NUMBER,
        "To": called,
        "Called": called,
        "Direction": "outbound-api",
        "Digits": digits,
    }


def signature(path: str, form: dict[str, str], token: str = TWILIO_AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(PUBLIC_URL + path, form))


async def post(site: Site, path: str, form: dict[str, str], signature_: str | None) -> tuple[int, str]:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if signature_ is not None:
        headers["x-twilio-signature"] = signature_
    response = await site.client.post(path, content=urlencode(form), headers=headers)
    return response.status_code, response.text


async def signed_post(site: Site, path: str, form: dict[str, str]) -> tuple[int, str]:
    return await post(site, path, form, signature(path, form))


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
    [
        ("/hooks/twilio/sms", sms_form(f"ack {CODE}")),
        ("/hooks/twilio/voice?incident=ID", voice_form("1")),
    ],
    ids=["sms", "voice"],
)
async def test_bad_signatures_get_403_and_change_nothing(
    site: Site, kind: str, path: str, form: dict[str, str]
) -> None:
    path = path.replace("ID", str(site.incident_id))
    status, text = await post(site, path, form, BAD_SIGNATURES[kind](path, form))
    assert status == 403
    assert CODE not in text
    assert site.incident().state == "open"
    assert not site.acknowledged()
    assert site.wakes == []


async def test_no_auth_token_configured_refuses_everything(site: Site) -> None:
    routes = alerting_routes(AlertingWeb(site.tokens, PUBLIC_URL), site.sessions)
    app = create_app(AppParts(site.sessions, Metrics(), lambda: None, routes=routes))
    form = sms_form(f"ack {CODE}")
    async with client_for(app) as client:
        response = await client.post(
            "/hooks/twilio/sms",
            content=urlencode(form),
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "x-twilio-signature": signature("/hooks/twilio/sms", form),
            },
        )
    assert response.status_code == 403
    assert site.incident().state == "open"


@pytest.mark.parametrize("body", [f"ack {CODE}", CODE.lower(), f"  {CODE}  ", f"Ack {CODE.lower()}, on it", f"{CODE}."])
async def test_sms_from_the_paged_number_acknowledges(site: Site, body: str) -> None:
    status, text = await signed_post(site, "/hooks/twilio/sms", sms_form(body))
    assert status == 200
    assert "<Response><Message>" in text
    assert f"Acknowledged incident {CODE}" in text
    incident = site.incident()
    assert incident.state == "acknowledged"
    assert incident.acknowledged_by == PAGED_PHONE
    assert [event for event in site.events() if event[0] == "acknowledged"] == [("acknowledged", PAGED_PHONE, "sms")]
    assert site.wakes == [1]

    # Twilio retries webhooks; a second reply acknowledges nothing more.
    status, text = await signed_post(site, "/hooks/twilio/sms", sms_form(body))
    assert status == 200
    assert "already acknowledged" in text
    assert len([event for event in site.events() if event[0] == "acknowledged"]) == 1


async def test_sms_from_the_paged_number_on_both_databases(site_any_db: Site) -> None:
    status, text = await signed_post(site_any_db, "/hooks/twilio/sms", sms_form(f"ack {CODE.lower()}"))
    assert status == 200
    assert f"Acknowledged incident {CODE}" in text
    assert site_any_db.incident().state == "acknowledged"


@pytest.mark.parametrize(
    ("body", "sender"),
    [
        (f"ack {CODE}", OTHER_PHONE),  # a number that was not paged, with the right code
        ("ack QQQQ", PAGED_PHONE),  # a code that does not exist
        ("ok", PAGED_PHONE),  # no code at all
        ("", PAGED_PHONE),
        (f"ack {CODE}", ""),  # no sender
    ],
    ids=["not-paged", "unknown-code", "no-code", "empty", "no-sender"],
)
async def test_sms_not_accepted(site: Site, body: str, sender: str) -> None:
    status, text = await signed_post(site, "/hooks/twilio/sms", sms_form(body, sender))
    assert status == 200
    assert NOT_ACCEPTED in text
    # The same answer whether or not the code exists: nothing to learn for a stranger.
    assert CODE not in text
    assert "api is down" not in text
    assert site.incident().state == "open"
    assert not site.acknowledged()
    assert site.wakes == []


async def test_sms_email_recipient_is_not_a_paged_phone(site: Site) -> None:
    """An address paged by email is not a phone that may acknowledge by SMS."""
    status, text = await signed_post(site, "/hooks/twilio/sms", sms_form(f"ack {CODE}", "a@x.test"))
    assert status == 200
    assert NOT_ACCEPTED in text
    assert site.incident().state == "open"


async def test_voice_key_1_from_the_paged_number_acknowledges(site: Site) -> None:
    path = f"/hooks/twilio/voice?incident={site.incident_id}"
    status, text = await signed_post(site, path, voice_form("1"))
    assert status == 200
    assert "<Say>Acknowledged. Thank you.</Say>" in text
    assert site.incident().state == "acknowledged"
    assert [event for event in site.events() if event[0] == "acknowledged"] == [("acknowledged", PAGED_PHONE, "voice")]
    assert site.wakes == [1]


@pytest.mark.parametrize(
    ("digits", "called", "incident"),
    [
        ("2", PAGED_PHONE, "ID"),
        ("0", PAGED_PHONE, "ID"),
        ("", PAGED_PHONE, "ID"),  # the gather timed out
        ("11", PAGED_PHONE, "ID"),
        ("1", OTHER_PHONE, "ID"),  # a number that was not paged for this incident
        ("1", PAGED_PHONE, "ID0"),  # another incident
        ("1", PAGED_PHONE, "abc"),
        ("1", PAGED_PHONE, ""),
    ],
    ids=["key-2", "key-0", "no-key", "key-11", "not-paged", "other-incident", "bad-id", "no-id"],
)
async def test_voice_not_acknowledged(site: Site, digits: str, called: str, incident: str) -> None:
    incident = incident.replace("ID", str(site.incident_id))
    path = f"/hooks/twilio/voice?incident={incident}" if incident else "/hooks/twilio/voice"
    status, text = await signed_post(site, path, voice_form(digits, called))
    assert status == 200
    assert "Not acknowledged" in text
    assert "<Hangup />" in text
    assert site.incident().state == "open"
    assert not site.acknowledged()
