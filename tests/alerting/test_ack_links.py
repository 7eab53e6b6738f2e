"""`/ack/{token}`: GET shows the incident and changes nothing; POST acknowledges or resolves; bad tokens are refused."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from itsdangerous.timed import TimestampSigner

from spectra.alerting.ack_links import ACK_TOKEN_MAX_AGE_S, public_actor
from spectra.alerting.page_messages import Links
from spectra.store import Incident
from spectra.tokens import Purpose, Tokens
from tests.factories.alerting import CODE, PUBLIC_URL, SECRET_KEY, Site, add_incident
from tests.support.databases import sqlite_only


def ack_token(tokens: Tokens, incident_id: int) -> str:
    """The token of the link the alerter puts in its messages."""
    url = Links(tokens, PUBLIC_URL).ack_url(incident_id)
    assert url.startswith(f"{PUBLIC_URL}/ack/")
    return url.rpartition("/")[2]


@sqlite_only
async def test_get_shows_the_incident_and_changes_nothing(site: Site) -> None:
    token = ack_token(site.tokens, site.incident_id)
    for _ in range(3):  # mail scanners and previews follow links, maybe more than once
        response = await site.client.get(f"/ack/{token}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "same-origin"
        page = response.text
        assert CODE in page
        assert "default/api" in page
        assert "api is down: connection refused" in page
        assert '<dd id="state">open</dd>' in page
        assert 'method="post"' in page
        assert "Acknowledge</button>" in page
        assert "Resolve</button>" in page
    assert site.incident().state == "open"
    assert [event[0] for event in site.events()] == ["opened"]
    assert site.wakes == []


async def test_post_acknowledges_with_the_channel_on_the_timeline(any_site: Site) -> None:
    site = any_site
    token = ack_token(site.tokens, site.incident_id)
    response = await site.client.post(f"/ack/{token}", data={"action": "acknowledge"})
    assert response.status_code == 200
    assert f"Incident {CODE} is acknowledged" in response.text
    assert '<dd id="state">acknowledged</dd>' in response.text
    incident = site.incident()
    assert incident.state == "acknowledged"
    assert incident.acknowledged_at is not None
    acknowledged = [event for event in site.events() if event[0] == "acknowledged"]
    assert len(acknowledged) == 1
    assert acknowledged[0][2] in ("email", "link")
    assert site.wakes == [1]

    # A second click says so and changes nothing.
    again = await site.client.post(f"/ack/{token}", data={"action": "acknowledge"})
    assert again.status_code == 200
    assert "already acknowledged" in again.text
    assert len([event for event in site.events() if event[0] == "acknowledged"]) == 1
    shown = await site.client.get(f"/ack/{token}")
    assert "already acknowledged" in shown.text
    assert "Acknowledge</button>" not in shown.text


@sqlite_only
async def test_post_resolves(site: Site) -> None:
    token = ack_token(site.tokens, site.incident_id)
    response = await site.client.post(f"/ack/{token}", data={"action": "resolve"})
    assert response.status_code == 200
    assert f"Incident {CODE} is resolved" in response.text
    incident = site.incident()
    assert incident.state == "resolved"
    assert incident.resolved_at is not None
    assert "resolved" in [event[0] for event in site.events()]
    page = (await site.client.get(f"/ack/{token}")).text
    assert "already resolved" in page
    assert "Resolve</button>" not in page
    assert "Acknowledge</button>" not in page
    assert "already resolved" in (await site.client.post(f"/ack/{token}", data={"action": "acknowledge"})).text
    assert site.incident().state == "resolved"


@sqlite_only
async def test_unknown_action_is_refused(site: Site) -> None:
    token = ack_token(site.tokens, site.incident_id)
    response = await site.client.post(f"/ack/{token}", data={"action": "delete"})
    assert response.status_code == 400
    assert site.incident().state == "open"


def _tampered(tokens: Tokens, incident_id: int) -> str:
    token = ack_token(tokens, incident_id)
    payload, _, rest = token.partition(".")
    # Point the payload at another incident and keep the old signature.
    forged = ack_token(tokens, incident_id + 1).partition(".")[0]
    assert forged != payload
    return f"{forged}.{rest}"


def _expired(tokens: Tokens, incident_id: int, monkeypatch: pytest.MonkeyPatch) -> str:
    past = int(time.time()) - ACK_TOKEN_MAX_AGE_S - 60
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda self: past)
        return ack_token(tokens, incident_id)


BAD_TOKENS: dict[str, Callable[[Tokens, int, pytest.MonkeyPatch], str]] = {
    "tampered": lambda tokens, incident_id, mp: _tampered(tokens, incident_id),
    "truncated signature": lambda tokens, incident_id, mp: ack_token(tokens, incident_id)[:-3],
    "garbage": lambda tokens, incident_id, mp: "not-a-token",
    "expired": _expired,
    "other purpose": lambda tokens, incident_id, mp: tokens.make(Purpose.UNSUBSCRIBE, {"i": incident_id}),
    "other key": lambda tokens, incident_id, mp: ack_token(Tokens(SECRET_KEY + "-other"), incident_id),
    "no incident in payload": lambda tokens, incident_id, mp: tokens.make(Purpose.ACK, {"subscriber": 1}),
}


@sqlite_only
@pytest.mark.parametrize("kind", list(BAD_TOKENS))
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_bad_tokens_are_refused_without_details(
    site: Site, kind: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = BAD_TOKENS[kind](site.tokens, site.incident_id, monkeypatch)
    response = await site.client.request(
        method, f"/ack/{token}", data={"action": "acknowledge"} if method == "POST" else None
    )
    assert response.status_code in (400, 403)
    assert "This link is not valid" in response.text
    for detail in ("Traceback", "BadSignature", "expired", CODE, "api is down"):
        assert detail not in response.text
    assert site.incident().state == "open"
    assert not site.acknowledged()


@sqlite_only
async def test_token_for_a_deleted_incident(site: Site) -> None:
    response = await site.client.get(f"/ack/{ack_token(site.tokens, site.incident_id + 1000)}")
    assert response.status_code == 404
    assert "This link is not valid" in response.text


@sqlite_only
async def test_page_escapes_incident_text(site: Site) -> None:
    incident_id = add_incident(site.sessions, code="X9Q7")
    with site.sessions.begin() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incident.title = '<script>alert("x")</script>'
    page = (await site.client.get(f"/ack/{ack_token(site.tokens, incident_id)}")).text
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page


@pytest.mark.parametrize(
    ("who", "shown"),
    [
        ("+4915112345678", "a phone ending in 78"),
        ("+1 (555) 000-1111", "a phone ending in 11"),
        ("alice@example.com", "a…@example.com"),
        ("link", "link"),
        ("Alice Example", "Alice Example"),
        (None, None),
    ],
)
def test_the_ack_page_never_shows_whose_phone_or_address_acknowledged(who: str | None, shown: str | None) -> None:
    assert public_actor(who) == shown
