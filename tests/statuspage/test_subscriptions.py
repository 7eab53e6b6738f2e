"""Subscriptions' lifecycle on the database: pending, confirmed, unsubscribed, and one confirmation mail a day.

Over HTTP: tests/statuspage/test_subscription_routes.py; the mail and its links: test_subscription_mail.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.statuspage.model import PageLike
from spectra.statuspage.subscription_mail import unsubscribed_stamp
from spectra.statuspage.subscriptions import Confirmation, confirm, subscribe, unsubscribe
from spectra.store import Notification, Subscriber
from spectra.tokens import Tokens
from tests.factories.pages import NOW, PUBLIC_URL, SECRET_KEY, subscription_page
from tests.support.databases import sqlite_only

PAGE = subscription_page()
OTHER_PAGE = subscription_page("other", name="other")
ANN = "ann@example.com"


def sub(
    sessions: sessionmaker[Session],
    email: str = ANN,
    component: str = "",
    *,
    page: PageLike = PAGE,
    now: datetime = NOW,
) -> bool:
    return subscribe(sessions, Tokens(SECRET_KEY), PUBLIC_URL, page, email=email, component=component, now=now)


def subscribers(sessions: sessionmaker[Session]) -> list[Subscriber]:
    with sessions() as session:
        rows = list(session.scalars(select(Subscriber).order_by(Subscriber.id)))
        session.expunge_all()
        return rows


def states(sessions: sessionmaker[Session]) -> list[tuple[str, str, str, str]]:
    """(page, email, component, "pending" | "confirmed" | "unsubscribed") of every subscription."""

    def state(row: Subscriber) -> str:
        if row.unsubscribed_at is not None:
            return "unsubscribed"
        return "pending" if row.confirmed_at is None else "confirmed"

    return [(row.page_name, row.email, row.component, state(row)) for row in subscribers(sessions)]


def mails(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    """(recipient, idempotency key) of every queued mail, oldest first."""
    with sessions() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id))
        return [(row.recipient, row.idempotency_key) for row in rows]


def only_id(sessions: sessionmaker[Session]) -> int:
    [row] = subscribers(sessions)
    return row.id


def test_subscribe_records_a_pending_subscription_and_queues_its_confirmation(
    sessions: sessionmaker[Session],
) -> None:
    assert sub(sessions) is True
    assert states(sessions) == [("acme", ANN, "", "pending")]
    assert mails(sessions) == [(ANN, f"subscribe:default/acme:{ANN}::2026-11-24")]
    with sessions() as session:
        mail = session.scalars(select(Notification)).one()
        assert (mail.channel, mail.status) == ("email", "pending")
        assert mail.payload["facts"] == {"kind": "subscription-confirm", "page": "default/acme"}


def test_a_pending_subscription_gets_one_confirmation_mail_a_day(sessions: sessionmaker[Session]) -> None:
    assert sub(sessions) is True
    assert sub(sessions, now=NOW + timedelta(hours=6)) is False  # the same UTC day: no second mail
    assert sub(sessions, now=NOW + timedelta(days=1)) is True
    assert states(sessions) == [("acme", ANN, "", "pending")]
    assert [key for _, key in mails(sessions)] == [
        f"subscribe:default/acme:{ANN}::2026-11-24",
        f"subscribe:default/acme:{ANN}::2026-11-25",
    ]


def test_confirm_makes_a_pending_subscription_confirmed_once(sessions: sessionmaker[Session]) -> None:
    sub(sessions)
    assert confirm(sessions, PAGE, ANN, "") is Confirmation.CONFIRMED
    [first] = subscribers(sessions)
    assert first.confirmed_at is not None
    assert states(sessions) == [("acme", ANN, "", "confirmed")]

    assert confirm(sessions, PAGE, ANN, "") is Confirmation.ALREADY_CONFIRMED  # nothing changes
    [again] = subscribers(sessions)
    assert again.confirmed_at == first.confirmed_at


def test_a_confirmed_subscription_is_left_alone_by_subscribe(sessions: sessionmaker[Session]) -> None:
    sub(sessions)
    confirm(sessions, PAGE, ANN, "")
    [before] = subscribers(sessions)
    assert sub(sessions) is False
    assert sub(sessions, now=NOW + timedelta(days=3)) is False  # not even on another day
    [after] = subscribers(sessions)
    assert (after.confirmed_at, after.unsubscribed_at) == (before.confirmed_at, None)
    assert len(mails(sessions)) == 1  # only the first confirmation


def test_unsubscribe_marks_the_subscription_once_and_keeps_the_row(sessions: sessionmaker[Session]) -> None:
    sub(sessions)
    confirm(sessions, PAGE, ANN, "")
    subscriber_id = only_id(sessions)
    assert unsubscribe(sessions, PAGE, subscriber_id, ANN) is True
    [first] = subscribers(sessions)
    assert first.unsubscribed_at is not None
    assert states(sessions) == [("acme", ANN, "", "unsubscribed")]

    assert unsubscribe(sessions, PAGE, subscriber_id, ANN) is False
    [again] = subscribers(sessions)
    assert again.unsubscribed_at == first.unsubscribed_at


def test_a_pending_subscription_can_be_unsubscribed(sessions: sessionmaker[Session]) -> None:
    sub(sessions)
    assert unsubscribe(sessions, PAGE, only_id(sessions), ANN) is True
    assert states(sessions) == [("acme", ANN, "", "unsubscribed")]


def test_unsubscribe_needs_the_right_id_address_and_page(sessions: sessionmaker[Session]) -> None:
    sub(sessions)
    confirm(sessions, PAGE, ANN, "")
    subscriber_id = only_id(sessions)
    assert unsubscribe(sessions, PAGE, subscriber_id, "bob@example.com") is False
    assert unsubscribe(sessions, OTHER_PAGE, subscriber_id, ANN) is False
    assert unsubscribe(sessions, PAGE, subscriber_id + 1000, ANN) is False
    assert states(sessions) == [("acme", ANN, "", "confirmed")]


def test_subscribing_again_after_unsubscribing_mails_a_link_for_the_unsubscribed_state(
    sessions: sessionmaker[Session],
) -> None:
    sub(sessions)
    confirm(sessions, PAGE, ANN, "")
    unsubscribe(sessions, PAGE, only_id(sessions), ANN)
    [gone] = subscribers(sessions)
    assert gone.unsubscribed_at is not None

    assert sub(sessions) is True  # although a confirmation went out today
    # Still unsubscribed until the new link is used: subscribing alone never re-activates anything.
    assert states(sessions) == [("acme", ANN, "", "unsubscribed")]
    again = f":again{int(gone.unsubscribed_at.timestamp())}"
    assert [key for _, key in mails(sessions)] == [
        f"subscribe:default/acme:{ANN}::2026-11-24",
        f"subscribe:default/acme:{ANN}::2026-11-24{again}",
    ]
    stamp = unsubscribed_stamp(gone.unsubscribed_at)
    assert confirm(sessions, PAGE, ANN, "", unsubscribed=stamp) is Confirmation.CONFIRMED
    assert states(sessions) == [("acme", ANN, "", "confirmed")]


@pytest.mark.parametrize(
    ("link_made_for", "outcome"),
    [
        ("never unsubscribed", Confirmation.REFUSED),  # the first mail's link, used after the unsubscribe
        ("an earlier unsubscribe", Confirmation.REFUSED),
        ("a made-up time", Confirmation.REFUSED),
        ("this unsubscribe", Confirmation.CONFIRMED),  # the link mailed after it, on a new request
    ],
)
def test_a_confirm_link_acts_only_on_the_state_it_was_made_for(
    sessions: sessionmaker[Session], link_made_for: str, outcome: Confirmation
) -> None:
    sub(sessions)
    confirm(sessions, PAGE, ANN, "")
    unsubscribe(sessions, PAGE, only_id(sessions), ANN)
    [first_gone] = subscribers(sessions)
    confirm(sessions, PAGE, ANN, "", unsubscribed=unsubscribed_stamp(first_gone.unsubscribed_at))
    unsubscribe(sessions, PAGE, only_id(sessions), ANN)
    [gone] = subscribers(sessions)
    stamps = {
        "never unsubscribed": None,
        "an earlier unsubscribe": unsubscribed_stamp(first_gone.unsubscribed_at),
        "a made-up time": "2026-11-24T12:00:00.000000+00:00",
        "this unsubscribe": unsubscribed_stamp(gone.unsubscribed_at),
    }
    assert confirm(sessions, PAGE, ANN, "", unsubscribed=stamps[link_made_for]) is outcome
    expected = "confirmed" if outcome is Confirmation.CONFIRMED else "unsubscribed"
    assert states(sessions) == [("acme", ANN, "", expected)]


def test_a_confirm_link_for_a_subscription_that_is_gone_creates_nothing(sessions: sessionmaker[Session]) -> None:
    assert confirm(sessions, PAGE, ANN, "") is Confirmation.REFUSED
    assert subscribers(sessions) == []


def test_whole_page_component_and_other_page_subscriptions_are_separate(sessions: sessionmaker[Session]) -> None:
    assert sub(sessions) is True
    assert sub(sessions, component="API") is True
    assert sub(sessions, page=OTHER_PAGE) is True
    assert confirm(sessions, PAGE, ANN, "API") is Confirmation.CONFIRMED
    assert states(sessions) == [
        ("acme", ANN, "", "pending"),
        ("acme", ANN, "API", "confirmed"),
        ("other", ANN, "", "pending"),
    ]
    assert [key for _, key in mails(sessions)] == [
        f"subscribe:default/acme:{ANN}::2026-11-24",
        f"subscribe:default/acme:{ANN}:API:2026-11-24",
        f"subscribe:default/other:{ANN}::2026-11-24",
    ]


@sqlite_only
def test_case_variants_of_an_address_are_one_subscription(sessions: sessionmaker[Session]) -> None:
    assert sub(sessions, "Ann@Example.COM")
    confirm(sessions, PAGE, " ANN@example.com ", "")
    assert not sub(sessions, ANN)  # already confirmed: nothing is sent
    assert states(sessions) == [("acme", ANN, "", "confirmed")]
