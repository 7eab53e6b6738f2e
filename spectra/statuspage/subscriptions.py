"""Subscriptions' lifecycle with double opt-in: subscribe (queue a confirmation mail), confirm, unsubscribe.

A confirmed, active subscription is never touched by a new subscribe; a pending or unsubscribed one gets
a new mail (one a day at most, by the outbox's idempotency key). An unsubscribed one stays unsubscribed
until its owner confirms again: a confirm link acts only on the state it was made for (a subscription
never unsubscribed, or one unsubscribed at the time the link carries), so a link mailed before an
unsubscribe cannot undo it. Every change runs in one transaction; a concurrent creator of the same row
wins and its row is used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from spectra.notify.outbox import enqueue
from spectra.statuspage.model import PageLike
from spectra.statuspage.subscription_mail import confirmation_message, unsubscribed_stamp
from spectra.store.subscribers import Subscriber
from spectra.tokens import Tokens


def _find(session: Session, namespace: str, name: str, email: str, component: str) -> Subscriber | None:
    email = email.strip().lower()  # as the model stores it: case variants are one subscription
    return session.scalar(
        select(Subscriber).where(
            Subscriber.page_namespace == namespace,
            Subscriber.page_name == name,
            Subscriber.email == email,
            Subscriber.component == component,
        )
    )


def _row(session: Session, namespace: str, name: str, email: str, component: str) -> Subscriber:
    """The subscriber row, created when missing (a concurrent creator wins and its row is used)."""
    row = _find(session, namespace, name, email, component)
    if row is not None:
        return row
    row = Subscriber(page_namespace=namespace, page_name=name, email=email, component=component)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        found = _find(session, namespace, name, email, component)
        if found is None:
            raise
        return found
    return row


def subscribe(
    factory: sessionmaker[Session],
    tokens: Tokens,
    public_url: str,
    page: PageLike,
    *,
    email: str,
    component: str,
    now: datetime | None = None,
) -> bool:
    """Record an unconfirmed subscription and queue its confirmation mail; True when a mail was queued.

    A confirmed, active subscription is left alone (nothing is sent); a pending or unsubscribed one gets a
    new mail (one a day at most, by the idempotency key), whose link is bound to its current state.
    """
    now = now or datetime.now(UTC)
    with factory.begin() as session:
        row = _row(session, page.namespace, page.name, email, component)
        if row.confirmed_at is not None and row.unsubscribed_at is None:
            return False
        # Back after unsubscribing: a fresh mail even if one went out today.
        again = f":again{int(row.unsubscribed_at.timestamp())}" if row.unsubscribed_at is not None else ""
        message = confirmation_message(
            tokens,
            public_url,
            page,
            email=email,
            component=component,
            now=now,
            suffix=again,
            unsubscribed_at=row.unsubscribed_at,
        )
        return enqueue(session, message)


class Confirmation(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already confirmed"
    REFUSED = "refused"  # no such subscription, or the link was made for an earlier state of it


def confirmation_of(
    factory: sessionmaker[Session], page: PageLike, email: str, component: str, *, unsubscribed: str | None = None
) -> Confirmation:
    """What the confirm link would do now, changing nothing (the page a GET of the link shows)."""
    with factory() as session:
        return _confirmation(_find(session, page.namespace, page.name, email, component), unsubscribed)


def confirm(
    factory: sessionmaker[Session], page: PageLike, email: str, component: str, *, unsubscribed: str | None = None
) -> Confirmation:
    """Confirm (or re-activate) the subscription a confirm link was made for.

    ``unsubscribed`` is the link's stamp (:func:`unsubscribed_stamp`): the link acts only while the
    subscription is in that state, never-unsubscribed (None) or unsubscribed at that time.
    """
    with factory.begin() as session:
        row = _find(session, page.namespace, page.name, email, component)
        outcome = _confirmation(row, unsubscribed)
        if row is not None and outcome is Confirmation.CONFIRMED:
            row.confirmed_at = datetime.now(UTC)
            row.unsubscribed_at = None
        return outcome


def _confirmation(row: Subscriber | None, unsubscribed: str | None) -> Confirmation:
    """The one rule of confirm links, for the GET page and the POST alike."""
    if row is None:
        return Confirmation.REFUSED
    if row.confirmed_at is not None and row.unsubscribed_at is None:
        return Confirmation.ALREADY_CONFIRMED
    if unsubscribed_stamp(row.unsubscribed_at) != unsubscribed:
        return Confirmation.REFUSED
    return Confirmation.CONFIRMED


def unsubscribe(factory: sessionmaker[Session], page: PageLike, subscriber_id: int, email: str) -> bool:
    """Mark the subscription unsubscribed; True when it changed (unknown or already gone: False)."""
    with factory.begin() as session:
        row = session.get(Subscriber, subscriber_id)
        if row is None or row.email != email or (row.page_namespace, row.page_name) != (page.namespace, page.name):
            return False
        if row.unsubscribed_at is not None:
            return False
        row.unsubscribed_at = datetime.now(UTC)
        return True
