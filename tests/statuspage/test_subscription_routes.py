"""Subscribe, confirm and unsubscribe over HTTP against a real database (SQLite, and MariaDB where it matters).

The lifecycle on the database itself: tests/statuspage/test_subscriptions.py; the mails and links:
tests/statuspage/test_subscription_mail.py.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from spectra.statuspage.ratelimit import SlidingWindowLimiter
from spectra.statuspage.subscription_mail import confirm_token, unsubscribe_token
from spectra.statuspage.subscription_routes import SubscribeLimits, normalize_email, subscription_routes
from spectra.store import Notification, Subscriber
from spectra.tokens import Purpose, Tokens
from tests.factories.pages import PUBLIC_URL, SECRET_KEY, FakeCache, subscription_page
from tests.support.databases import sqlite_only

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@dataclass
class Site:
    app: Starlette
    client: httpx.AsyncClient
    sessions: sessionmaker[Session]
    tokens: Tokens
    cache: FakeCache
    wakes: list[int]

    def client_from(self, ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL)

    def subscribers(self) -> list[Subscriber]:
        with self.sessions() as session:
            rows = list(session.scalars(select(Subscriber).order_by(Subscriber.id)))
            session.expunge_all()
            return rows

    def mails(self) -> list[Notification]:
        with self.sessions() as session:
            rows = list(session.scalars(select(Notification).order_by(Notification.id)))
            session.expunge_all()
            return rows

    def add_subscriber(self, email: str, *, confirmed: bool, component: str = "", page: str = "acme") -> int:
        with self.sessions.begin() as session:
            row = Subscriber(
                page_namespace="default",
                page_name=page,
                email=email,
                component=component,
                confirmed_at=NOW if confirmed else None,
            )
            session.add(row)
            session.flush()
            return row.id


def confirm_link_of(mail: Notification) -> str:
    text = str(mail.payload["text"])
    found = re.search(r"https://status\.example\.test(/s/acme/confirm/[A-Za-z0-9_.\-]+)", text)
    assert found is not None, text
    assert found.group(1) in str(mail.payload["html"])
    return found.group(1)


@asynccontextmanager
async def open_site(sessions: sessionmaker[Session], limits: SubscribeLimits | None = None) -> AsyncIterator[Site]:
    """The subscription routes on the shared database, for pages "acme", "hidden" (not public) and "quiet"."""
    tokens = Tokens(SECRET_KEY)
    cache = FakeCache(
        subscription_page(),
        subscription_page("hidden", name="hidden", public=False),
        subscription_page("quiet", name="quiet", subscriptions=False),
    )
    wakes: list[int] = []
    routes = subscription_routes(cache, sessions, tokens, PUBLIC_URL, lambda: wakes.append(1), limits=limits)
    app = Starlette(routes=routes)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        yield Site(app, client, sessions, tokens, cache, wakes)


@pytest.fixture
async def site(sessions: sessionmaker[Session]) -> AsyncIterator[Site]:
    """On both backends; tests that gain nothing from MariaDB say `sqlite_only`."""
    async with open_site(sessions) as value:
        yield value


async def test_subscribe_records_unconfirmed_row_and_queues_one_confirmation(site: Site) -> None:
    response = await site.client.post("/s/acme/subscribe", data={"email": " Alice@Example.COM "})
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    assert response.headers["Cache-Control"] == "no-store"

    [row] = site.subscribers()
    assert (row.page_namespace, row.page_name, row.email, row.component) == ("default", "acme", "alice@example.com", "")
    assert row.confirmed_at is None
    assert row.unsubscribed_at is None

    [mail] = site.mails()
    assert (mail.channel, mail.recipient, mail.status) == ("email", "alice@example.com", "pending")
    assert mail.idempotency_key.startswith("subscribe:default/acme:alice@example.com::")
    path = confirm_link_of(mail)
    payload = site.tokens.read(Purpose.CONFIRM, path.rsplit("/", 1)[1], max_age_s=60)
    assert payload == {"page": "default/acme", "email": "alice@example.com", "component": ""}
    assert site.wakes == [1]

    # The same request again the same day: the same answer, still one row and one mail.
    again = await site.client.post("/s/acme/subscribe", data={"email": "alice@example.com"})
    assert again.status_code == 200
    assert again.text == response.text
    assert len(site.subscribers()) == 1
    assert len(site.mails()) == 1


@sqlite_only
async def test_component_subscription(site: Site) -> None:
    response = await site.client.post("/s/acme/subscribe", data={"email": "bob@example.com", "component": "API"})
    assert response.status_code == 200
    [row] = site.subscribers()
    assert row.component == "API"
    [mail] = site.mails()
    payload = site.tokens.read(Purpose.CONFIRM, confirm_link_of(mail).rsplit("/", 1)[1], max_age_s=60)
    assert payload["component"] == "API"
    assert "the component API" in str(mail.payload["text"])


@sqlite_only
async def test_same_answer_whether_the_address_is_new_pending_or_confirmed(site: Site) -> None:
    site.add_subscriber("confirmed@example.com", confirmed=True)
    site.add_subscriber("pending@example.com", confirmed=False)
    bodies = {}
    for email in ("new@example.com", "pending@example.com", "confirmed@example.com"):
        response = await site.client.post("/s/acme/subscribe", data={"email": email})
        assert response.status_code == 200
        bodies[email] = response.text
    assert len(set(bodies.values())) == 1
    # Mail for the new and the pending address; the confirmed one is left alone.
    assert sorted(mail.recipient for mail in site.mails()) == ["new@example.com", "pending@example.com"]
    confirmed = next(row for row in site.subscribers() if row.email == "confirmed@example.com")
    assert confirmed.confirmed_at is not None


async def test_confirm_get_shows_a_button_and_only_post_confirms(site: Site) -> None:
    await site.client.post("/s/acme/subscribe", data={"email": "carol@example.com"})
    path = confirm_link_of(site.mails()[0])

    shown = await site.client.get(path)
    assert shown.status_code == 200
    assert "Confirm subscription" in shown.text
    assert '<form method="post">' in shown.text
    assert site.subscribers()[0].confirmed_at is None

    done = await site.client.post(path, data={"action": "confirm"})
    assert done.status_code == 200
    assert "Subscription confirmed" in done.text
    first = site.subscribers()[0].confirmed_at
    assert first is not None

    again = await site.client.post(path)
    assert again.status_code == 200
    assert "Subscription confirmed" in again.text
    assert site.subscribers()[0].confirmed_at == first
    assert len(site.subscribers()) == 1


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"action=unsubscribe", "application/x-www-form-urlencoded"),
        (b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"),  # RFC 8058, from mail providers
        (b"", None),
    ],
    ids=["button", "one-click", "empty"],
)
async def test_unsubscribe_get_shows_a_button_and_post_unsubscribes(
    site: Site, body: bytes, content_type: str | None
) -> None:
    sid = site.add_subscriber("dave@example.com", confirmed=True)
    [row] = site.subscribers()
    path = f"/s/acme/unsubscribe/{unsubscribe_token(site.tokens, row)}"

    shown = await site.client.get(path)
    assert shown.status_code == 200
    assert "Unsubscribe" in shown.text
    assert site.subscribers()[0].unsubscribed_at is None

    headers = {"Content-Type": content_type} if content_type else {}
    done = await site.client.post(path, content=body, headers=headers)
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    [after] = site.subscribers()
    assert after.id == sid
    assert after.unsubscribed_at is not None

    again = await site.client.post(path, content=body, headers=headers)
    assert again.status_code == 200
    assert site.subscribers()[0].unsubscribed_at == after.unsubscribed_at


@sqlite_only
async def test_subscribing_again_after_unsubscribing_needs_a_new_confirmation(site: Site) -> None:
    await site.client.post("/s/acme/subscribe", data={"email": "erin@example.com"})
    first_link = confirm_link_of(site.mails()[0])
    await site.client.post(first_link)
    [row] = site.subscribers()
    await site.client.post(f"/s/acme/unsubscribe/{unsubscribe_token(site.tokens, row)}")
    assert site.subscribers()[0].unsubscribed_at is not None

    # The first mail's link cannot undo the unsubscribe, before or after a new request.
    for _ in range(2):
        replayed = await site.client.post(first_link)
        assert replayed.status_code == 400
        assert "This link is not valid" in replayed.text
        assert site.subscribers()[0].unsubscribed_at is not None
        await site.client.post("/s/acme/subscribe", data={"email": "erin@example.com"})

    mails = site.mails()
    assert len(mails) == 2  # a fresh confirmation, although one went out today
    await site.client.post(confirm_link_of(mails[1]))
    [row] = site.subscribers()
    assert (row.confirmed_at is not None, row.unsubscribed_at) == (True, None)


@sqlite_only
async def test_the_confirm_page_shows_the_button_only_while_the_link_would_act(site: Site) -> None:
    """GET changes nothing and promises nothing the POST would refuse."""
    await site.client.post("/s/acme/subscribe", data={"email": "finn@example.com"})
    link = confirm_link_of(site.mails()[0])
    pending = await site.client.get(link)
    assert (pending.status_code, 'method="post"' in pending.text) == (200, True)
    assert site.subscribers()[0].confirmed_at is None

    await site.client.post(link)
    confirmed = await site.client.get(link)
    assert (confirmed.status_code, 'method="post"' in confirmed.text) == (200, False)
    assert "Subscription confirmed" in confirmed.text

    [row] = site.subscribers()
    await site.client.post(f"/s/acme/unsubscribe/{unsubscribe_token(site.tokens, row)}")
    after_unsubscribe = await site.client.get(link)
    assert after_unsubscribe.status_code == 400
    assert "This link is not valid" in after_unsubscribe.text
    assert 'method="post"' not in after_unsubscribe.text
    assert site.subscribers()[0].unsubscribed_at is not None


def _tampered(token: str) -> str:
    return token[:-2] + ("AA" if not token.endswith("AA") else "BB")


def _expired(tokens: Tokens, purpose: Purpose, payload: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> str:
    real = time.time
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real() - 400 * 24 * 3600)
    token = tokens.make(purpose, payload)
    monkeypatch.setattr("itsdangerous.timed.time.time", real)
    return token


def _bad_token(
    flaw: str, tokens: Tokens, purpose: Purpose, payload: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> str:
    other_purpose = Purpose.UNSUBSCRIBE if purpose is Purpose.CONFIRM else Purpose.CONFIRM
    if flaw == "tampered":
        return _tampered(tokens.make(purpose, payload))
    if flaw == "expired":
        return _expired(tokens, purpose, payload, monkeypatch)
    if flaw == "wrong-purpose":
        return tokens.make(other_purpose, payload)
    if flaw == "other-page":
        return tokens.make(purpose, dict(payload, page="default/other"))
    if flaw == "other-key":
        return Tokens("another-secret-key-entirely-0123456789").make(purpose, payload)
    return "not-a-token"


CONFIRM_PAYLOAD = {"page": "default/acme", "email": "frank@example.com", "component": ""}


@sqlite_only
@pytest.mark.parametrize("kind", ["confirm", "unsubscribe"])
@pytest.mark.parametrize("flaw", ["tampered", "expired", "wrong-purpose", "other-page", "garbage", "other-key"])
async def test_bad_links_are_refused_without_details(
    site: Site, monkeypatch: pytest.MonkeyPatch, kind: str, flaw: str
) -> None:
    sid = site.add_subscriber("frank@example.com", confirmed=kind == "unsubscribe")
    payload: dict[str, object] = dict(CONFIRM_PAYLOAD, id=sid) if kind == "unsubscribe" else dict(CONFIRM_PAYLOAD)
    purpose = Purpose.CONFIRM if kind == "confirm" else Purpose.UNSUBSCRIBE
    token = _bad_token(flaw, site.tokens, purpose, payload, monkeypatch)
    path = f"/s/acme/{kind}/{token}"
    before = site.subscribers()
    for response in (await site.client.get(path), await site.client.post(path, content=b"List-Unsubscribe=One-Click")):
        assert response.status_code == 400
        assert "This link is not valid" in response.text
        assert "expired" not in response.text.lower()
        assert "frank" not in response.text
    after = site.subscribers()
    assert [(r.confirmed_at, r.unsubscribed_at) for r in after] == [(r.confirmed_at, r.unsubscribed_at) for r in before]


@sqlite_only
async def test_valid_links_with_a_missing_field_are_refused(site: Site) -> None:
    no_id = site.tokens.make(Purpose.UNSUBSCRIBE, CONFIRM_PAYLOAD)
    no_email = site.tokens.make(Purpose.CONFIRM, {"page": "default/acme", "component": ""})
    for path in (f"/s/acme/unsubscribe/{no_id}", f"/s/acme/confirm/{no_email}"):
        response = await site.client.post(path)
        assert response.status_code == 400
        assert "This link is not valid" in response.text
    assert site.subscribers() == []


@sqlite_only
@pytest.mark.parametrize("slug", ["quiet", "hidden", "missing"])
async def test_pages_without_subscriptions_answer_404(site: Site, slug: str) -> None:
    page = subscription_page(slug, name=slug)
    confirm = confirm_token(site.tokens, page, "gina@example.com", "")
    unsubscribe = site.tokens.make(Purpose.UNSUBSCRIBE, {"id": 1, "page": f"default/{slug}", "email": "g@example.com"})
    responses = [
        await site.client.post(f"/s/{slug}/subscribe", data={"email": "gina@example.com"}),
        await site.client.get(f"/s/{slug}/confirm/{confirm}"),
        await site.client.post(f"/s/{slug}/confirm/{confirm}"),
        await site.client.get(f"/s/{slug}/unsubscribe/{unsubscribe}"),
        await site.client.post(f"/s/{slug}/unsubscribe/{unsubscribe}"),
    ]
    assert [response.status_code for response in responses] == [404] * 5
    assert site.subscribers() == []
    assert site.mails() == []


@sqlite_only
@pytest.mark.parametrize(
    ("form", "status", "text"),
    [
        ({"email": "not an address"}, 400, "does not look like an email address"),
        ({"email": ""}, 400, "does not look like an email address"),
        ({}, 400, "does not look like an email address"),
        ({"email": "a@" + "x" * 300 + ".com"}, 400, "does not look like an email address"),
        ({"email": "hank@example.com", "component": "Database"}, 400, "no component of that name"),
    ],
)
async def test_bad_subscribe_forms_are_refused(site: Site, form: dict[str, str], status: int, text: str) -> None:
    response = await site.client.post("/s/acme/subscribe", data=form)
    assert response.status_code == status
    assert text in response.text
    assert site.subscribers() == []
    assert site.mails() == []


@sqlite_only
async def test_rate_limit_per_client_ip(site: Site) -> None:
    async with site.client_from("192.0.2.10") as client, site.client_from("192.0.2.11") as other:
        for n in range(5):
            response = await client.post("/s/acme/subscribe", data={"email": f"user{n}@example.com"})
            assert response.status_code == 200
        limited = await client.post("/s/acme/subscribe", data={"email": "user5@example.com"})
        assert limited.status_code == 429
        assert "Too many" in limited.text
        assert 0 < int(limited.headers["Retry-After"]) <= 3600
        # Another client is not affected.
        assert (await other.post("/s/acme/subscribe", data={"email": "user6@example.com"})).status_code == 200
    assert "user5@example.com" not in {row.email for row in site.subscribers()}
    assert len(site.subscribers()) == 6


@sqlite_only
async def test_rate_limit_counts_an_ipv6_client_by_its_64(site: Site) -> None:
    """One /64 is one client, however many of its addresses it uses; the next /64 is another."""
    statuses = []
    for n in range(6):
        async with site.client_from(f"2001:db8:0:7::{n + 1:x}") as client:
            statuses.append((await client.post("/s/acme/subscribe", data={"email": f"v6-{n}@example.com"})).status_code)
    assert statuses == [200] * 5 + [429]
    async with site.client_from("2001:db8:0:8::1") as other:
        assert (await other.post("/s/acme/subscribe", data={"email": "v6-other@example.com"})).status_code == 200


@sqlite_only
@pytest.mark.parametrize(
    "spellings",
    [
        ["ivy@example.com"] * 4,
        ["Ivy@Example.com", "IVY@EXAMPLE.COM", "ivy@example.com", "iVy@example.COM"],
        ["ivy+a@example.com", "ivy+b@example.com", "ivy+c+d@example.com", "ivy@example.com"],
        ["Ivy+News@Example.com", "ivy@example.com", "IVY+x@example.com", "ivy+@example.com"],
    ],
    ids=["same", "case", "tags", "tags-and-case"],
)
async def test_rate_limit_per_mailbox_whatever_the_spelling(site: Site, spellings: list[str]) -> None:
    statuses = []
    for n, email in enumerate(spellings):
        async with site.client_from(f"198.51.100.{n}") as client:  # a new client each time
            response = await client.post("/s/acme/subscribe", data={"email": email})
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert 0 < int(response.headers["Retry-After"]) <= 3600  # an hour at most, not a day
    assert statuses == [200, 200, 200, 429]
    assert len(site.mails()) <= 3
    # Dots are kept (only some providers ignore them) and other mailboxes are not affected.
    for email in ("i.vy@example.com", "ivy@example.org", "jack@example.com"):
        async with site.client_from("198.51.100.9") as client:
            assert (await client.post("/s/acme/subscribe", data={"email": email})).status_code == 200


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@sqlite_only
async def test_a_throttled_owner_still_confirms_with_the_mailed_link_and_is_free_within_the_hour(
    sessions: sessionmaker[Session],
) -> None:
    clock = FakeClock()
    limits = SubscribeLimits(per_mailbox=SlidingWindowLimiter(3, 3600, clock=clock))
    async with open_site(sessions, limits) as site:
        for n, tag in enumerate(("a", "b", "c")):  # someone else asks for the owner's mailbox
            async with site.client_from(f"203.0.113.{n}") as attacker:
                await attacker.post("/s/acme/subscribe", data={"email": f"owner+{tag}@example.com"})
        async with site.client_from("192.0.2.1") as owner:
            assert (await owner.post("/s/acme/subscribe", data={"email": "owner@example.com"})).status_code == 429
            # What was mailed works: the owner confirms one of those subscriptions (links are not limited).
            done = await owner.post(confirm_link_of(site.mails()[0]))
            assert "Subscription confirmed" in done.text
            clock.now += 3601  # a sliding hour, not a day
            assert (await owner.post("/s/acme/subscribe", data={"email": "owner@example.com"})).status_code == 200
        assert "owner@example.com" in {row.email for row in site.subscribers()}


@sqlite_only
async def test_rate_limits_are_configurable(sessions: sessionmaker[Session]) -> None:
    limits = SubscribeLimits(per_ip=SlidingWindowLimiter(1, 60), per_mailbox=SlidingWindowLimiter(10, 60))
    async with open_site(sessions, limits) as site:
        assert (await site.client.post("/s/acme/subscribe", data={"email": "k@example.com"})).status_code == 200
        assert (await site.client.post("/s/acme/subscribe", data={"email": "l@example.com"})).status_code == 429


@sqlite_only
async def test_pages_escape_the_title_and_send_security_headers(site: Site) -> None:
    page = replace(subscription_page(), title="<script>alert(1)</script>")
    site.cache.set(page)
    response = await site.client.post("/s/acme/subscribe", data={"email": "mia@example.com"})
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (" Alice@Example.COM ", "alice@example.com"),
        ("bob+status@example.com", "bob+status@example.com"),
        ("", None),
        ("   ", None),
        ("not an address", None),
        ("a@b", None),  # no dot in the domain: not deliverable-looking
        ("a@" + "x" * 300 + ".com", None),  # longer than the column
    ],
)
def test_normalize_email(raw: str, normalized: str | None) -> None:
    assert normalize_email(raw) == normalized


# --- the answer does not depend on the address's state, in text or in the work done before it -----------


async def _subscribe_recorded(site: Site, engine: sa.Engine, email: str) -> tuple[int, bytes, list[str]]:
    """POST the form straight to the ASGI app; its status, body, and what happened in order: the answer's
    messages ("answer:..."), every SQL statement ("store:SELECT" ...) and the sender's wake ("wake")."""
    happened: list[str] = []
    status, body = 0, b""

    def statement(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        happened.append(f"store:{sql.split(None, 1)[0].upper()}")

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": f"email={email}".encode(), "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status, body
        happened.append(f"answer:{message['type']}")
        status = int(message.get("status", status))
        body += bytes(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/s/acme/subscribe",
        "raw_path": b"/s/acme/subscribe",
        "query_string": b"",
        "headers": [(b"host", b"status.example.test"), (b"content-type", b"application/x-www-form-urlencoded")],
        "client": ("192.0.2.50", 40000),
        "server": ("status.example.test", 443),
    }
    wakes_before = len(site.wakes)
    sa.event.listen(engine, "before_cursor_execute", statement)
    try:
        await site.app(scope, receive, send)
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
    happened += ["wake"] * (len(site.wakes) - wakes_before)
    return status, body, happened


@sqlite_only
async def test_the_subscribe_answer_is_the_same_and_sent_before_any_store_work_whatever_the_state(
    site: Site, engine: sa.Engine
) -> None:
    site.add_subscriber("pending@example.com", confirmed=False)
    site.add_subscriber("confirmed@example.com", confirmed=True)
    gone = site.add_subscriber("unsubscribed@example.com", confirmed=True)
    with site.sessions.begin() as session:
        session.get_one(Subscriber, gone).unsubscribed_at = NOW

    answers = {}
    for state in ("new", "pending", "confirmed", "unsubscribed"):
        status, body, happened = await _subscribe_recorded(site, engine, f"{state}@example.com")
        answer = [event for event in happened if event.startswith("answer:")]
        first_store = next(n for n, event in enumerate(happened) if event.startswith("store:"))
        # The whole answer went out before the store was first touched: what differs by state comes after.
        assert happened[:first_store] == answer == ["answer:http.response.start", "answer:http.response.body"], state
        answers[state] = (status, body)
    assert len(set(answers.values())) == 1
    assert answers["new"][0] == 200
    # The work after the answer did differ: mails for the new, pending and unsubscribed addresses only.
    assert sorted(mail.recipient for mail in site.mails()) == [
        "new@example.com",
        "pending@example.com",
        "unsubscribed@example.com",
    ]


@sqlite_only
async def test_a_failed_subscription_write_is_logged_without_the_address(
    site: Site, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    engine.dispose()
    site.sessions.configure(bind=sa.create_engine("sqlite:////nonexistent/dir/spectra.db"))
    with caplog.at_level(logging.WARNING, logger="spectra.statuspage.subscription_routes"):
        response = await site.client.post("/s/acme/subscribe", data={"email": "olga@example.com"})
    assert response.status_code == 200  # the answer went out before the write failed
    assert "subscription to default/acme not recorded: OperationalError" in caplog.text
    assert "olga" not in caplog.text
