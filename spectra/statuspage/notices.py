"""Mail confirmed subscribers when a page incident opens, updates or resolves, and when maintenance starts.

`notify_subscribers` queues one email per confirmed, not unsubscribed address whose subscription covers
the event (the whole page, or a component the event affects; an event naming no component affects the
whole page), in the caller's transaction, through the outbox. Each mail carries List-Unsubscribe and
List-Unsubscribe-Post (RFC 8058 one-click) headers and an unsubscribe link in its text. Idempotency keys
are `page-incident:{id}:{update_or_state}:{subscriber_id}` (maintenance: `page-maintenance:...`), so
running it again for the same events sends nothing twice. Unconfirmed addresses get nothing.
"""

from __future__ import annotations

import html as html_lib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.notify.channel import ChannelName, Message
from spectra.notify.outbox import enqueue
from spectra.runtime.timefmt import utc_text
from spectra.statuspage.incidents import PageEvent
from spectra.statuspage.model import PageLike, PageSnapshot, accepts_subscriptions
from spectra.statuspage.render import TEMPLATES
from spectra.statuspage.subscription_mail import page_url, scope_text, short_key, unsubscribe_url
from spectra.store import PageIncidentUpdate
from spectra.store.subscribers import WHOLE_PAGE, Subscriber
from spectra.tokens import Tokens

log = logging.getLogger(__name__)

BODY_MAX: Final = 5000
MAINTENANCE_NOTICE_WINDOW: Final = timedelta(hours=1)


class NoticeKind(StrEnum):
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_UPDATED = "incident_updated"
    INCIDENT_RESOLVED = "incident_resolved"
    MAINTENANCE_STARTED = "maintenance_started"


_HEADLINES: Final = {
    NoticeKind.INCIDENT_OPENED: "New incident",
    NoticeKind.INCIDENT_UPDATED: "Incident update",
    NoticeKind.INCIDENT_RESOLVED: "Resolved",
    NoticeKind.MAINTENANCE_STARTED: "Maintenance started",
}


@dataclass(frozen=True)
class PageNotice:
    """One thing subscribers of a page hear about.

    `ref` is the page incident id (or the maintenance window's name); `step` names this event of it (an
    update id or the state), so each (ref, step) is mailed once per subscriber. `body` is plain text.
    """

    namespace: str
    name: str
    kind: NoticeKind
    ref: int | str
    step: str
    title: str
    state: str
    body: str
    components: tuple[str, ...]  # affected components; empty = the whole page
    at: datetime

    @property
    def page(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def is_maintenance(self) -> bool:
        return self.kind is NoticeKind.MAINTENANCE_STARTED


_TAGS = re.compile(r"<[^>]*>")
_BLOCK_END = re.compile(r"</(p|li|h[1-6]|pre|blockquote)>|<br\s*/?>", re.IGNORECASE)


def text_of_html(value: str) -> str:
    """Plain text of sanitized HTML (update bodies are stored rendered): tags dropped, entities decoded."""
    text = _TAGS.sub("", _BLOCK_END.sub("\n", value))
    return "\n".join(line.strip() for line in html_lib.unescape(text).strip().splitlines()).strip()


def _pages_by_key(snapshots: Mapping[str, PageLike] | Iterable[PageLike]) -> dict[str, PageLike]:
    pages = snapshots.values() if isinstance(snapshots, Mapping) else snapshots
    return {f"{page.namespace}/{page.name}": page for page in pages}


def _recipients(session: Session, notice: PageNotice) -> list[Subscriber]:
    """Confirmed, active subscriptions covering the notice: one row per address (whole page first)."""
    rows = session.scalars(
        select(Subscriber)
        .where(
            Subscriber.page_namespace == notice.namespace,
            Subscriber.page_name == notice.name,
            Subscriber.confirmed_at.is_not(None),
            Subscriber.unsubscribed_at.is_(None),
        )
        .order_by(Subscriber.id)
    ).all()
    covered = [
        row
        for row in rows
        if row.component == WHOLE_PAGE or not notice.components or row.component in notice.components
    ]
    chosen: dict[str, Subscriber] = {}
    for row in covered:
        current = chosen.get(row.email)
        if current is None or (row.component == WHOLE_PAGE and current.component != WHOLE_PAGE):
            chosen[row.email] = row
    return sorted(chosen.values(), key=lambda row: row.id)


def notice_message(
    notice: PageNotice, page: PageLike, subscriber: Subscriber, tokens: Tokens, public_url: str
) -> Message:
    headline = _HEADLINES[notice.kind]
    link = page_url(public_url, page.slug)
    unsubscribe = unsubscribe_url(tokens, public_url, page.slug, subscriber)
    subject = f"[{page.title}] {headline}: {notice.title}"
    at = utc_text(notice.at)
    body = notice.body[:BODY_MAX]
    lines = [f"{headline}: {notice.title}", f"State: {notice.state}"]
    if notice.components:
        lines.append(f"Affected: {', '.join(notice.components)}")
    lines.append(f"At: {at}")
    if body:
        lines += ["", body]
    lines += [
        "",
        f"Status page: {link}",
        "",
        f"You receive this because you subscribed to {scope_text(subscriber.component)} of {page.title}.",
        f"Unsubscribe: {unsubscribe}",
    ]
    html = TEMPLATES.get_template("subscribe_mail_notice.html").render(
        subject=subject,
        page_title=page.title,
        headline=headline,
        title=notice.title,
        components=notice.components,
        body=body,
        at=at,
        page_url=link,
        scope=scope_text(subscriber.component),
        unsubscribe_url=unsubscribe,
    )
    prefix = "page-maintenance" if notice.is_maintenance else "page-incident"
    key = short_key(f"{prefix}:{notice.ref}:{notice.step}:{subscriber.id}", prefix)
    return Message(
        channel=ChannelName.EMAIL,
        recipient=subscriber.email,
        subject=subject,
        text="\n".join(lines) + "\n",
        idempotency_key=key,
        html=html,
        facts={"kind": notice.kind.value, "page": notice.page},
        headers={"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )


def notify_subscribers(
    session: Session,
    events: Iterable[PageNotice | PageEvent],
    snapshots: Mapping[str, PageLike] | Iterable[PageLike],
    tokens: Tokens,
    public_url: str,
) -> int:
    """Queue the mails for `events` (incident PageEvents, or notices such as `maintenance_notices`); how many.

    `snapshots` are the current pages (by slug, as `build_all` returns them): they give the slug and
    title, and pages that are not public or do not take subscriptions mail nobody.
    """
    pages = _pages_by_key(snapshots)
    queued = 0
    for event in events:
        notice = event if isinstance(event, PageNotice) else notice_of(session, event)
        if notice is None:
            continue
        page = pages.get(notice.page)
        if page is None or not accepts_subscriptions(page):
            continue
        for subscriber in _recipients(session, notice):
            if enqueue(session, notice_message(notice, page, subscriber, tokens, public_url)):
                queued += 1
    if queued:
        log.info("queued %d subscriber notification(s)", queued)
    return queued


_INCIDENT_KINDS: Final = {
    "opened": NoticeKind.INCIDENT_OPENED,
    "updated": NoticeKind.INCIDENT_UPDATED,
    "resolved": NoticeKind.INCIDENT_RESOLVED,
}


def notice_of(session: Session, event: PageEvent) -> PageNotice | None:
    """A page event of spectra.statuspage.incidents as a notice; the body is its update's (markdown source)."""
    kind = _INCIDENT_KINDS.get(event.kind)
    if kind is None:
        return None
    update = session.get(PageIncidentUpdate, event.update_id)
    return PageNotice(
        namespace=event.page_namespace,
        name=event.page_name,
        kind=kind,
        ref=event.page_incident_id,
        step=f"u{event.update_id}",
        title=event.title,
        state=event.state,
        body=update.body.strip() if update is not None else "",
        components=event.components,
        at=event.at,
    )


def maintenance_notices(
    snapshots: Mapping[str, PageSnapshot] | Iterable[PageSnapshot],
    now: datetime,
    *,
    within: timedelta = MAINTENANCE_NOTICE_WINDOW,
) -> list[PageNotice]:
    """A "maintenance started" notice for each window that is active and began within `within` of `now`.

    Call it every cycle with the fresh snapshots: the idempotency key (window name and start) mails each
    occurrence once; `within` keeps someone who subscribes in the middle of a long window from being told
    it "started".
    """
    pages = snapshots.values() if isinstance(snapshots, Mapping) else snapshots
    notices = []
    for page in pages:
        for window in page.maintenance:
            if not window.active or not (now - within <= window.start <= now):
                continue
            notices.append(
                PageNotice(
                    namespace=page.namespace,
                    name=page.name,
                    kind=NoticeKind.MAINTENANCE_STARTED,
                    ref=f"{window.name}:{int(window.start.timestamp())}",
                    step="started",
                    title=window.name,
                    state=f"in progress until {utc_text(window.end)}",
                    body=text_of_html(window.message_html or ""),
                    components=window.components,
                    at=window.start,
                )
            )
    return notices
