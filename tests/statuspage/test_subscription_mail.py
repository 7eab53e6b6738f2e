"""The confirmation mail and the signed links of subscriber mails: contents, token purposes, key lengths."""

from __future__ import annotations

import hashlib
import re
import time

import pytest

from spectra.notify.channel import ChannelName
from spectra.statuspage.subscription_mail import (
    CONFIRM_MAX_AGE_S,
    IDEMPOTENCY_KEY_LEN,
    UNSUBSCRIBE_MAX_AGE_S,
    confirm_token,
    confirmation_message,
    page_url,
    scope_text,
    short_key,
    unsubscribe_token,
    unsubscribe_url,
)
from spectra.store import Subscriber
from spectra.tokens import InvalidToken, Purpose, Tokens
from tests.factories.pages import NOW, PUBLIC_URL, SECRET_KEY, subscription_page

TOKENS = Tokens(SECRET_KEY)
PAGE = subscription_page()
DAY = 24 * 3600
CONFIRM_LINK = re.compile(r"https://status\.example\.test/s/acme/confirm/([A-Za-z0-9_.\-]+)")


def subscriber(**changes: object) -> Subscriber:
    fields: dict[str, object] = {
        "id": 17,
        "page_namespace": "default",
        "page_name": "acme",
        "email": "ann@example.com",
        "component": "",
    }
    fields.update(changes)
    return Subscriber(**fields)


@pytest.mark.parametrize(
    ("component", "scope"), [("", "every component"), ("API", "the component API")], ids=["page", "component"]
)
def test_confirmation_message(component: str, scope: str) -> None:
    message = confirmation_message(TOKENS, PUBLIC_URL, PAGE, email="ann@example.com", component=component, now=NOW)
    assert (message.channel, message.recipient) == (ChannelName.EMAIL, "ann@example.com")
    assert message.subject == "Confirm your subscription to Acme Status"
    assert f"updates about {scope} of Acme Status" in message.text
    assert "seven days" in message.text
    assert message.idempotency_key == f"subscribe:default/acme:ann@example.com:{component}:2026-11-24"
    assert message.facts == {"kind": "subscription-confirm", "page": "default/acme"}
    found = CONFIRM_LINK.search(message.text)
    assert found is not None, message.text
    assert message.html is not None
    assert found.group(0) in message.html
    assert scope in message.html
    payload = TOKENS.read(Purpose.CONFIRM, found.group(1), max_age_s=CONFIRM_MAX_AGE_S)
    assert payload == {"page": "default/acme", "email": "ann@example.com", "component": component}


def test_confirmation_key_suffix_and_trailing_slash() -> None:
    message = confirmation_message(
        TOKENS, PUBLIC_URL + "/", PAGE, email="ann@example.com", component="", now=NOW, suffix=":again1700000000"
    )
    assert message.idempotency_key == "subscribe:default/acme:ann@example.com::2026-11-24:again1700000000"
    assert CONFIRM_LINK.search(message.text) is not None  # no "//s/" from the trailing slash


def test_confirmation_key_of_a_long_address_fits_the_outbox() -> None:
    email = "a" * 64 + "@" + ("b" * 60 + ".") * 2 + "example.com"  # 198 characters, a valid length
    message = confirmation_message(TOKENS, PUBLIC_URL, PAGE, email=email, component="C" * 191, now=NOW)
    key = f"subscribe:default/acme:{email}:{'C' * 191}:2026-11-24"
    assert message.idempotency_key == f"subscribe:{hashlib.sha256(key.encode()).hexdigest()}"


def test_page_url_and_scope_text() -> None:
    assert page_url("https://status.example.test/", "acme") == "https://status.example.test/s/acme"
    assert page_url("https://status.example.test", "acme") == "https://status.example.test/s/acme"
    assert scope_text("") == "every component"
    assert scope_text("Web") == "the component Web"


def test_confirm_token_is_for_confirming_only() -> None:
    token = confirm_token(TOKENS, PAGE, "ann@example.com", "API")
    assert TOKENS.read(Purpose.CONFIRM, token, max_age_s=60) == {
        "page": "default/acme",
        "email": "ann@example.com",
        "component": "API",
    }
    with pytest.raises(InvalidToken):
        TOKENS.read(Purpose.UNSUBSCRIBE, token, max_age_s=UNSUBSCRIBE_MAX_AGE_S)


def test_unsubscribe_token_names_the_row_and_is_for_unsubscribing_only() -> None:
    token = unsubscribe_token(TOKENS, subscriber(component="Web"))
    assert TOKENS.read(Purpose.UNSUBSCRIBE, token, max_age_s=60) == {
        "id": 17,
        "page": "default/acme",
        "email": "ann@example.com",
        "component": "Web",
    }
    with pytest.raises(InvalidToken):
        TOKENS.read(Purpose.CONFIRM, token, max_age_s=CONFIRM_MAX_AGE_S)


def test_unsubscribe_url() -> None:
    url = unsubscribe_url(TOKENS, PUBLIC_URL, "acme", subscriber())
    prefix = "https://status.example.test/s/acme/unsubscribe/"
    assert url.startswith(prefix)
    assert TOKENS.read(Purpose.UNSUBSCRIBE, url.removeprefix(prefix), max_age_s=60)["id"] == 17


def test_link_lifetimes() -> None:
    assert CONFIRM_MAX_AGE_S == 7 * DAY
    assert UNSUBSCRIBE_MAX_AGE_S == 365 * DAY  # they sit in every notice a subscriber keeps


@pytest.mark.parametrize(
    ("age_days", "confirm_ok", "unsubscribe_ok"),
    [(6, True, True), (8, False, True), (364, False, True), (366, False, False)],
)
def test_links_expire_after_their_lifetime(
    monkeypatch: pytest.MonkeyPatch, age_days: int, confirm_ok: bool, unsubscribe_ok: bool
) -> None:
    real = time.time
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real() - age_days * DAY)
    confirm = confirm_token(TOKENS, PAGE, "ann@example.com", "")
    unsubscribe = unsubscribe_token(TOKENS, subscriber())
    monkeypatch.setattr("itsdangerous.timed.time.time", real)
    for purpose, token, max_age, ok in (
        (Purpose.CONFIRM, confirm, CONFIRM_MAX_AGE_S, confirm_ok),
        (Purpose.UNSUBSCRIBE, unsubscribe, UNSUBSCRIBE_MAX_AGE_S, unsubscribe_ok),
    ):
        if ok:
            assert TOKENS.read(purpose, token, max_age_s=max_age)["email"] == "ann@example.com"
        else:
            with pytest.raises(InvalidToken):
                TOKENS.read(purpose, token, max_age_s=max_age)


@pytest.mark.parametrize("length", [0, 1, IDEMPOTENCY_KEY_LEN - 1, IDEMPOTENCY_KEY_LEN])
def test_short_key_keeps_keys_that_fit(length: int) -> None:
    key = "k" * length
    assert short_key(key, "prefix") == key


@pytest.mark.parametrize("length", [IDEMPOTENCY_KEY_LEN + 1, 1000])
def test_short_key_hashes_longer_keys(length: int) -> None:
    key = "k" * length
    shortened = short_key(key, "page-incident")
    assert shortened == f"page-incident:{hashlib.sha256(key.encode()).hexdigest()}"
    assert len(shortened) <= IDEMPOTENCY_KEY_LEN
    assert short_key(key + "x", "page-incident") != shortened  # still one key per message
