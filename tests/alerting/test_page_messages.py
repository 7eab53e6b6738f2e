"""The message of one page: short texts for SMS and voice that say how to acknowledge, a longer email
with the acknowledge link, the facts channels render, and one idempotency key per step, repeat,
channel and recipient."""

from __future__ import annotations

import pytest

from spectra.alerting.page_messages import Links, page_message
from spectra.alerting.recipients import Page
from spectra.notify.channel import ChannelName
from spectra.store import Incident
from spectra.tokens import Purpose, Tokens
from tests.factories.alerting import PUBLIC_URL, SECRET_KEY, START

PHONE = "+4915112345678"
LINKS = Links(Tokens(SECRET_KEY), PUBLIC_URL)


def incident() -> Incident:
    return Incident(
        id=42,
        code="K7Q2",
        namespace="default",
        monitor_name="web",
        title="default/web is down",
        severity="critical",
        state="open",
        opened_at=START,
    )


def test_links_point_at_the_ack_page_and_the_voice_hook() -> None:
    ack_url = LINKS.ack_url(42)
    assert ack_url.startswith(f"{PUBLIC_URL}/ack/")
    assert Tokens(SECRET_KEY).read(Purpose.ACK, ack_url.rpartition("/")[2], max_age_s=60) == {"i": 42}
    assert LINKS.voice_url(42) == f"{PUBLIC_URL}/hooks/twilio/voice?incident=42"


@pytest.mark.parametrize("channel", [ChannelName.SMS, ChannelName.VOICE])
def test_phone_pages_are_short_and_say_how_to_acknowledge(channel: ChannelName) -> None:
    message = page_message(incident(), Page(channel, PHONE, "alice"), step=0, repeat=0, reason="HTTP 503", links=LINKS)
    assert message.channel == channel
    assert message.recipient == PHONE
    assert message.subject == "[K7Q2] default/web is down"
    assert message.text == "K7Q2 critical default/web is down: HTTP 503. Reply ACK K7Q2 to acknowledge."
    assert message.idempotency_key == f"incident:42:step:0:repeat:0:{channel}:{PHONE}"
    assert message.incident_id == 42
    facts = message.facts
    assert (facts["state"], facts["step"], facts["repeat"], facts["reason"]) == ("opened", 0, 0, "HTTP 503")
    assert (facts["code"], facts["monitor"], facts["severity"]) == ("K7Q2", "default/web", "critical")
    assert facts["opened_at"] == START.isoformat()
    assert facts["ack_url"].startswith(f"{PUBLIC_URL}/ack/")
    # Only a call needs somewhere to send the key press.
    assert facts.get("voice_action_url") == (LINKS.voice_url(42) if channel == ChannelName.VOICE else None)


def test_an_email_page_carries_the_acknowledge_link() -> None:
    message = page_message(
        incident(), Page(ChannelName.EMAIL, "bob@example.com", "bob"), step=1, repeat=0, reason="", links=LINKS
    )
    ack_url = message.facts["ack_url"]
    assert message.text == (
        f"default/web is down\nSeverity: critical\nIncident: K7Q2\nOpened: {START.isoformat()}\nAcknowledge: {ack_url}"
    )  # no reason: no ": ..." after the title
    assert message.facts["state"] == "escalated"
    assert message.idempotency_key == "incident:42:step:1:repeat:0:email:bob@example.com"


def test_a_repeat_is_escalated_and_keyed_apart() -> None:
    page = Page(ChannelName.SMS, PHONE, "alice")
    first = page_message(incident(), page, step=0, repeat=0, reason="", links=LINKS)
    repeat = page_message(incident(), page, step=0, repeat=1, reason="", links=LINKS)
    assert (first.facts["state"], repeat.facts["state"]) == ("opened", "escalated")
    assert repeat.facts["repeat"] == 1
    assert first.idempotency_key != repeat.idempotency_key
    assert repeat.idempotency_key == f"incident:42:step:0:repeat:1:sms:{PHONE}"
