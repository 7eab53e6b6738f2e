"""Subscriber notifications: only confirmed, active subscriptions covering the event; List-Unsubscribe works."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from spectra.notify.email import render_email
from spectra.notify.outbox import message_of
from spectra.statuspage.incidents import add_update, open_incident
from spectra.statuspage.model import MaintenanceView, PageLike
from spectra.statuspage.notices import (
    NoticeKind,
    PageNotice,
    maintenance_notices,
    notify_subscribers,
    text_of_html,
)
from spectra.statuspage.subscription_routes import subscription_routes
from spectra.store import Notification, Subscriber
from spectra.tokens import Purpose, Tokens
from tests.factories.pages import PUBLIC_URL, SECRET_KEY, FakeCache, subscription_page

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PAGES = {"acme": subscription_page(), "quiet": subscription_page("quiet", name="quiet", subscriptions=False)}

# (email, component, confirmed, unsubscribed, page)
SUBSCRIBERS = [
    ("whole@example.com", "", True, False, "acme"),
    ("api@example.com", "API", True, False, "acme"),
    ("web@example.com", "Web", True, False, "acme"),
    ("pending@example.com", "", False, False, "acme"),
    ("gone@example.com", "", True, True, "acme"),
    ("both@example.com", "", True, False, "acme"),
    ("both@example.com", "API", True, False, "acme"),
    ("elsewhere@example.com", "", True, False, "other"),
    ("quiet@example.com", "", True, False, "quiet"),
]


@pytest.fixture
def subscribers(sessions: sessionmaker[Session]) -> None:
    """SUBSCRIBERS in the shared migrated database."""
    with sessions.begin() as session:
        for email, component, confirmed, unsubscribed, page in SUBSCRIBERS:
            session.add(
                Subscriber(
                    page_namespace="default",
                    page_name=page,
                    email=email,
                    component=component,
                    confirmed_at=NOW if confirmed else None,
                    unsubscribed_at=NOW if unsubscribed else None,
                )
            )


def notice(
    kind: NoticeKind = NoticeKind.INCIDENT_OPENED,
    *,
    components: tuple[str, ...] = ("API",),
    name: str = "acme",
    ref: int | str = 42,
    step: str = "investigating",
    state: str = "investigating",
) -> PageNotice:
    return PageNotice(
        namespace="default",
        name=name,
        kind=kind,
        ref=ref,
        step=step,
        title="Elevated API errors",
        state=state,
        body="We are looking into <errors> on the API.",
        components=components,
        at=NOW,
    )


def run(sessions: sessionmaker[Session], *events: PageNotice, pages: Mapping[str, PageLike] | None = None) -> int:
    with sessions.begin() as session:
        return notify_subscribers(session, events, pages or PAGES, Tokens(SECRET_KEY), PUBLIC_URL)


def mails(sessions: sessionmaker[Session]) -> list[Notification]:
    with sessions() as session:
        rows = list(session.scalars(select(Notification).order_by(Notification.id)))
        session.expunge_all()
        return rows


@pytest.mark.usefixtures("subscribers")
@pytest.mark.parametrize(
    ("event", "recipients"),
    [
        (notice(components=("API",)), ["api@example.com", "both@example.com", "whole@example.com"]),
        (notice(components=("Web",)), ["both@example.com", "web@example.com", "whole@example.com"]),
        (
            notice(NoticeKind.MAINTENANCE_STARTED, components=(), ref="db-upgrade", step="started"),
            ["api@example.com", "both@example.com", "web@example.com", "whole@example.com"],
        ),
        (
            notice(components=("API", "Web")),
            ["api@example.com", "both@example.com", "web@example.com", "whole@example.com"],
        ),
    ],
    ids=["api", "web", "maintenance-whole-page", "both-components"],
)
def test_only_confirmed_active_subscribers_covering_the_event_are_mailed(
    sessions: sessionmaker[Session], event: PageNotice, recipients: list[str]
) -> None:
    assert run(sessions, event) == len(recipients)
    sent = mails(sessions)
    assert sorted(mail.recipient for mail in sent) == recipients  # one mail per address, even when subscribed twice
    assert {mail.channel for mail in sent} == {"email"}
    prefix = "page-maintenance:db-upgrade:started:" if event.is_maintenance else "page-incident:42:investigating:"
    assert all(mail.idempotency_key.startswith(prefix) for mail in sent)


@pytest.mark.usefixtures("subscribers")
def test_mails_carry_list_unsubscribe_headers_and_link(sessions: sessionmaker[Session]) -> None:
    run(sessions, notice())
    tokens = Tokens(SECRET_KEY)
    with sessions() as session:
        ids = {row.email: row.id for row in session.scalars(select(Subscriber).where(Subscriber.component == ""))}
    for row in mails(sessions):
        message = message_of(row)
        header = message.headers["List-Unsubscribe"]
        found = re.fullmatch(r"<https://status\.example\.test/s/acme/unsubscribe/([A-Za-z0-9_.\-]+)>", header)
        assert found is not None, header
        assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        payload = tokens.read(Purpose.UNSUBSCRIBE, found.group(1), max_age_s=60)
        assert payload["email"] == message.recipient
        assert payload["page"] == "default/acme"
        assert message.idempotency_key == f"page-incident:42:investigating:{payload['id']}"
        if message.recipient in ids:
            assert payload["id"] == ids[message.recipient]
        text, html = render_email(message)
        assert f"Unsubscribe: {header[1:-1]}" in text
        assert "https://status.example.test/s/acme" in text
        assert "Elevated API errors" in message.subject
        assert header[1:-1] in html
        assert "&lt;errors&gt;" in html
        assert "<errors>" not in html


@pytest.mark.usefixtures("subscribers")
def test_notifying_again_sends_nothing_twice_but_a_new_update_is_sent(sessions: sessionmaker[Session]) -> None:
    first = run(sessions, notice())
    assert first == 3
    assert run(sessions, notice()) == 0
    assert run(sessions, notice(NoticeKind.INCIDENT_UPDATED, step="update-7", state="identified")) == 3
    assert run(sessions, notice(NoticeKind.INCIDENT_RESOLVED, step="resolved", state="resolved")) == 3
    assert len(mails(sessions)) == 9


@pytest.mark.usefixtures("subscribers")
@pytest.mark.parametrize(
    "pages",
    [
        {"quiet": subscription_page("quiet", name="quiet", subscriptions=False)},
        {"acme": subscription_page(public=False)},
        {"acme": subscription_page(subscriptions=False)},
        {},
    ],
    ids=["subscriptions-disabled", "not-public", "acme-subscriptions-disabled", "unknown-page"],
)
def test_pages_without_subscriptions_mail_nobody(
    sessions: sessionmaker[Session], pages: Mapping[str, PageLike]
) -> None:
    events = [notice(), notice(name="quiet")]
    with sessions.begin() as session:
        assert notify_subscribers(session, events, pages, Tokens(SECRET_KEY), PUBLIC_URL) == 0
    assert mails(sessions) == []


@pytest.mark.usefixtures("subscribers")
async def test_one_click_unsubscribe_from_the_header_stops_further_mail(sessions: sessionmaker[Session]) -> None:
    run(sessions, notice())
    whole = next(message_of(row) for row in mails(sessions) if row.recipient == "whole@example.com")
    url = whole.headers["List-Unsubscribe"][1:-1]
    app = Starlette(
        routes=subscription_routes(FakeCache(*PAGES.values()), sessions, Tokens(SECRET_KEY), PUBLIC_URL, None)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as client:
        response = await client.post(
            url, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    assert response.status_code == 200
    assert run(sessions, notice(step="update-1")) == 2
    later = [row.recipient for row in mails(sessions) if row.idempotency_key.startswith("page-incident:42:update-1:")]
    assert sorted(later) == ["api@example.com", "both@example.com"]


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Fixed &amp; verified.</p>", "Fixed & verified."),
        ("<p>One</p><p>Two<br>Three</p>", "One\nTwo\nThree"),
        ("<ul><li>a</li><li>b</li></ul>", "a\nb"),
        ("", ""),
    ],
)
def test_text_of_html(html: str, text: str) -> None:
    assert text_of_html(html) == text


@pytest.mark.usefixtures("subscribers")
def test_page_incident_events_are_mailed_with_their_update(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        opened = open_incident(
            session,
            "default",
            "acme",
            title="Elevated API errors",
            impact="major",
            components=["API"],
            body="We are **investigating** errors.",
            now=NOW,
        )
        updated = add_update(session, opened.page_incident_id, "identified", "A bad deploy; rolling back.", None)
        resolved = add_update(session, opened.page_incident_id, "resolved", "All good since 12:40.", None)
        count = notify_subscribers(session, [opened, updated, resolved], PAGES, Tokens(SECRET_KEY), PUBLIC_URL)
    assert count == 9  # three events x (api, both, whole)
    sent = mails(sessions)
    incident = opened.page_incident_id
    for event, text in ((opened, "**investigating**"), (updated, "rolling back"), (resolved, "All good")):
        batch = [row for row in sent if row.idempotency_key.startswith(f"page-incident:{incident}:u{event.update_id}:")]
        assert sorted(row.recipient for row in batch) == ["api@example.com", "both@example.com", "whole@example.com"]
        assert all(text in str(row.payload["text"]) for row in batch)
    subjects = {row.subject for row in sent}
    assert subjects == {
        "[Acme Status] New incident: Elevated API errors",
        "[Acme Status] Incident update: Elevated API errors",
        "[Acme Status] Resolved: Elevated API errors",
    }


def maintenance(start: datetime, *, active: bool = True, components: tuple[str, ...] = ()) -> MaintenanceView:
    return MaintenanceView(
        "db-upgrade", "<p>Upgrading &amp; vacuuming.</p>", start, start + timedelta(hours=2), active, components
    )


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (maintenance(NOW - timedelta(minutes=5)), 1),
        (maintenance(NOW - timedelta(hours=3)), 0),  # started long ago: not news
        (maintenance(NOW + timedelta(hours=1), active=False), 0),  # upcoming
        (maintenance(NOW - timedelta(minutes=5), active=False), 0),
    ],
    ids=["just-started", "long-running", "upcoming", "inactive"],
)
def test_maintenance_notices(window: MaintenanceView, expected: int) -> None:
    pages = {"acme": replace(subscription_page(), maintenance=(window,))}
    notices = maintenance_notices(pages, NOW)
    assert len(notices) == expected
    if notices:
        [found] = notices
        assert found.kind is NoticeKind.MAINTENANCE_STARTED
        assert found.body == "Upgrading & vacuuming."
        assert found.page == "default/acme"


@pytest.mark.usefixtures("subscribers")
def test_maintenance_start_is_mailed_once_per_occurrence(sessions: sessionmaker[Session]) -> None:
    pages = {
        "acme": replace(
            subscription_page(), maintenance=(maintenance(NOW - timedelta(minutes=1), components=("Web",)),)
        )
    }
    assert run(sessions, *maintenance_notices(pages, NOW), pages=pages) == 3  # both, web, whole
    assert run(sessions, *maintenance_notices(pages, NOW + timedelta(minutes=1)), pages=pages) == 0
    [mail] = [row for row in mails(sessions) if row.recipient == "web@example.com"]
    assert "Maintenance started: db-upgrade" in str(mail.subject)
    assert mail.idempotency_key.startswith("page-maintenance:db-upgrade:")
