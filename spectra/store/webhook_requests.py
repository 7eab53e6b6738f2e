"""``webhook_requests``: the provider ids of webhook requests already handled, so a replay does not act again.

A signed Twilio request stays valid forever (the signature has no timestamp): whoever captured one could
send it again after the incident was resolved and reopened. The webhooks record each request's provider id
(MessageSid, CallSid) under a unique key *before* acting; a second insert of the same key fails, and that
request is answered without acting. Records are kept for :data:`KEEP` and pruned by housekeeping.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Index, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.types import BigIntPK, utcnow

# Long enough that an incident acknowledged by phone has been resolved for good long before its request
# is forgotten (a flap reopens an incident only within minutes of resolving it).
KEEP: Final = timedelta(days=90)
KEY_MAX: Final = 128


class WebhookRequest(Base):
    """One handled webhook request, by its provider's id (e.g. ``twilio:sms:SM...``)."""

    __tablename__ = "webhook_requests"
    __table_args__ = (Index(None, "expires_at"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    request_key: Mapped[str] = mapped_column(String(KEY_MAX), unique=True)
    received_at: Mapped[datetime]
    expires_at: Mapped[datetime]


def first_time(sessions: sessionmaker[Session], key: str, *, now: datetime | None = None) -> bool:
    """Record ``key``; True when it is new (act on the request), False for a replay (do not act)."""
    if not key or len(key) > KEY_MAX:
        raise ValueError(f"a webhook request key is 1 to {KEY_MAX} characters")
    at = now or utcnow()
    try:
        with sessions.begin() as session:
            session.add(WebhookRequest(request_key=key, received_at=at, expires_at=at + KEEP))
    except IntegrityError:
        return False
    return True


def forget(sessions: sessionmaker[Session], key: str) -> None:
    """Drop ``key`` again: handling its request failed, so the provider's retry must act."""
    with sessions.begin() as session:
        session.execute(delete(WebhookRequest).where(WebhookRequest.request_key == key))


def seen(session: Session, key: str) -> bool:
    return session.scalar(select(WebhookRequest.id).where(WebhookRequest.request_key == key)) is not None


def prune_webhook_requests(session: Session, now: datetime) -> int:
    """Delete the records that expired before ``now``; how many."""
    result = session.execute(delete(WebhookRequest).where(WebhookRequest.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)
