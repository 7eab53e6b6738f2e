"""Acknowledging by phone: only a number that was paged for an incident by SMS or voice may acknowledge
it, by texting its code or pressing 1 on the call; anything else is not accepted, and says nothing.

How the answers become TwiML (and signatures) is tested in tests/notify/twilio/test_webhooks.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from spectra.alerting import resolve_incident
from spectra.alerting.phone_acks import PhoneAcks
from tests.factories.alerting import CODE, OTHER_PHONE, PAGED_EMAIL, PAGED_PHONE, paged_incident
from tests.support.databases import sqlite_only


@sqlite_only
@pytest.mark.parametrize("body", [f"ack {CODE}", CODE.lower(), f"  {CODE}  ", f"Ack {CODE.lower()}, on it", f"{CODE}."])
def test_sms_from_the_paged_number_acknowledges(sessions: sessionmaker[Session], body: str) -> None:
    paged, acks = paged_incident(sessions), PhoneAcks(sessions)
    answer = acks.on_sms(PAGED_PHONE, body)
    assert answer is not None
    assert answer.acted
    assert answer.text == f"Acknowledged incident {CODE}: api is down: connection refused"
    incident = paged.incident()
    assert incident.state == "acknowledged"
    assert incident.acknowledged_by == PAGED_PHONE
    assert [event for event in paged.events() if event[0] == "acknowledged"] == [("acknowledged", PAGED_PHONE, "sms")]

    # Twilio retries webhooks; a second reply acknowledges nothing more.
    again = acks.on_sms(PAGED_PHONE, body)
    assert again is not None
    assert not again.acted
    assert again.text == f"Incident {CODE} is already acknowledged."
    assert len([event for event in paged.events() if event[0] == "acknowledged"]) == 1


def test_sms_from_the_paged_number_on_both_databases(sessions: sessionmaker[Session]) -> None:
    paged = paged_incident(sessions)
    answer = PhoneAcks(sessions).on_sms(PAGED_PHONE, f"ack {CODE.lower()}")
    assert answer is not None
    assert answer.acted
    assert f"Acknowledged incident {CODE}" in answer.text
    assert paged.incident().state == "acknowledged"


@sqlite_only
def test_sms_about_a_resolved_incident_says_so(sessions: sessionmaker[Session]) -> None:
    paged = paged_incident(sessions)
    with sessions.begin() as session:
        assert resolve_incident(session, paged.incident_id, by="alice", channel="web")
    answer = PhoneAcks(sessions).on_sms(PAGED_PHONE, CODE)
    assert answer is not None
    assert not answer.acted
    assert answer.text == f"Incident {CODE} is already resolved."
    assert not paged.acknowledged()


@sqlite_only
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
def test_sms_not_accepted(sessions: sessionmaker[Session], body: str, sender: str) -> None:
    paged = paged_incident(sessions)
    # The same answer whether or not the code exists (none: the webhook says NOT_ACCEPTED): nothing to learn.
    assert PhoneAcks(sessions).on_sms(sender, body) is None
    assert paged.incident().state == "open"
    assert not paged.acknowledged()


@sqlite_only
def test_sms_email_recipient_is_not_a_paged_phone(sessions: sessionmaker[Session]) -> None:
    """An address paged by email is not a phone that may acknowledge by SMS."""
    paged = paged_incident(sessions)
    assert PhoneAcks(sessions).on_sms(PAGED_EMAIL, f"ack {CODE}") is None
    assert paged.incident().state == "open"


@sqlite_only
def test_voice_key_1_from_the_paged_number_acknowledges(sessions: sessionmaker[Session]) -> None:
    paged, acks = paged_incident(sessions), PhoneAcks(sessions)
    assert acks.on_key(PAGED_PHONE, "1", str(paged.incident_id)) is True
    assert paged.incident().state == "acknowledged"
    assert [event for event in paged.events() if event[0] == "acknowledged"] == [("acknowledged", PAGED_PHONE, "voice")]
    assert acks.on_key(PAGED_PHONE, "1", str(paged.incident_id)) is False  # already acknowledged


@sqlite_only
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
def test_voice_not_acknowledged(sessions: sessionmaker[Session], digits: str, called: str, incident: str) -> None:
    paged = paged_incident(sessions)
    assert PhoneAcks(sessions).on_key(called, digits, incident.replace("ID", str(paged.incident_id))) is None
    assert paged.incident().state == "open"
    assert not paged.acknowledged()
