"""Mails about accounts and tenants (invitations, resets, impersonation notices, trial reminders), queued in
the notification outbox in the caller's transaction, as the alerter's pages are; the outbox's sender
delivers them. One row per recipient and idempotency key: a mail asked for twice is queued once.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spectra.store.notifications import Notification, NotificationStatus


@dataclass(frozen=True)
class Mail:
    """One email: `key` is its idempotency key (at most 255 characters), `link` the button's address,
    `kind` what it is about (in the payload's facts, for logs and tests)."""

    key: str
    recipient: str
    subject: str
    text: str
    link: str
    button: str
    kind: str


def mail_exists(session: Session, key: str) -> bool:
    return session.scalar(select(Notification.id).where(Notification.idempotency_key == key)) is not None


def queue_mail(session: Session, mail: Mail, *, rehearse: bool = False) -> bool:
    """Queue an email in the outbox in the caller's transaction, as spectra.notify.outbox.enqueue does
    (this floor may not import it): same row, same payload shape, same idempotency; False when queued
    already. `rehearse`: do all of it, then roll the insert back (the same work, nothing sent)."""
    if mail_exists(session, mail.key):
        return False
    paragraphs = "".join(
        f"<p>{html.escape(part)}</p>" for part in mail.text.split("\n\n") if part and mail.link not in part
    )
    body = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(mail.subject)}</title></head>'
        f'<body style="font-family: sans-serif; color: #1a1a1a">{paragraphs}'
        f'<p><a href="{html.escape(mail.link, quote=True)}" style="display:inline-block;padding:10px 18px;'
        f'background:#1565c0;color:#fff;text-decoration:none;border-radius:4px">{html.escape(mail.button)}</a></p>'
        f"<p>{html.escape(mail.link)}</p></body></html>"
    )
    now = datetime.now(UTC)
    row = Notification(
        idempotency_key=mail.key,
        channel="email",
        recipient=mail.recipient,
        subject=mail.subject[:500],
        payload={"text": mail.text, "html": body, "facts": {"kind": mail.kind}, "headers": {}, "subject": mail.subject},
        status=NotificationStatus.PENDING.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    try:
        with session.begin_nested() as savepoint:
            session.add(row)
            if rehearse:
                session.flush()
                savepoint.rollback()
    except IntegrityError:  # a concurrent writer queued the same key first
        return False
    return not rehearse
