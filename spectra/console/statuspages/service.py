"""What people do with their organization's status pages: queries and actions, no HTTP (blocking: run
each in a worker thread, inside one transaction).

Every function asks spectra.auth.policy first (a page in another tenant's namespace, or no such page, is
`policy.NotFound`), changes the store through spectra.statuspage (incidents) and the `page_maintenance`
table (read by spectra.domain.maintenance as maintenance windows, so paging is held by the one mechanism
that holds it for MaintenanceWindows), records the action in the audit log, and returns plain values.

Subscriber mails are queued in the same transaction (`Publisher.publish`, what the status pages'
page-events loop does with its own events); the caller calls `Publisher.changed` once it committed, so
the public page, its feeds and the mails show the change at once, not at the next pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.alerting import escalation
from spectra.auth import audit, policy
from spectra.auth.identity import Actor, Principal
from spectra.auth.policy import Action
from spectra.domain.components import component_monitors
from spectra.domain.global_maintenance import GlobalMaintenanceRefused, parse_until
from spectra.domain.monitors import load_monitors
from spectra.runtime.public_url import configured_public_url
from spectra.statuspage import incidents
from spectra.statuspage.incidents import PageEvent, PageIncidentError
from spectra.statuspage.markdown import render_markdown
from spectra.statuspage.model import PageSnapshot
from spectra.statuspage.notices import notify_subscribers
from spectra.statuspage.site import serving
from spectra.statuspage.snapshots import build_all, build_pages
from spectra.statuspage.stored_pages import PageDef, load_pages
from spectra.store import (
    PageIncident,
    PageIncidentState,
    PageMaintenance,
)
from spectra.store.statuspages import MAINTENANCE_TITLE_LEN
from spectra.tokens import Tokens

TITLE_MAX: Final = 200
MESSAGE_MAX: Final = 10_000
INCIDENTS_SHOWN: Final = 50  # on the console page: the latest
OPEN_STATES: Final = ("investigating", "identified", "monitoring")
TARGET_KIND: Final = "StatusPage"

NO_TITLE: Final = "Give the incident a title."
LONG_TITLE: Final = f"The title is longer than {TITLE_MAX} characters."
NO_COMPONENT: Final = "Name at least one affected component."
BAD_IMPACT: Final = "A component's impact is degraded, partial_outage or major_outage."
BAD_STATUS: Final = "The status is investigating, identified or monitoring."
NO_MESSAGE: Final = "Write a message."
LONG_MESSAGE: Final = f"The message is longer than {MESSAGE_MAX} characters."
RESOLVED_ALREADY: Final = "This incident is resolved: write its post-mortem instead."
NOT_RESOLVED: Final = "A post-mortem is written once the incident is resolved."
LONG_POSTMORTEM: Final = f"The post-mortem is longer than {MESSAGE_MAX} characters."
NO_MAINTENANCE_TITLE: Final = "Give the maintenance a title."
LONG_MAINTENANCE_TITLE: Final = f"The maintenance title is longer than {MAINTENANCE_TITLE_LEN} characters."
NO_MAINTENANCE_COMPONENT: Final = "Name at least one component under maintenance."
NO_UNTIL: Final = "Say until when (a time with its offset, or a duration such as 90m or 2h)."
ENDED_ALREADY: Final = "This maintenance is over already."


class Refused(ValueError):
    """What was asked cannot be done as asked; the sentence says why (400)."""


def unknown_component(name: str) -> str:
    return f"The page has no component named {name!r}."


def no_monitors(name: str) -> str:
    return f"The component {name!r} has no monitors: maintenance holds the paging of monitors."


# --- what the console shows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentInfo:
    name: str
    group: str
    state: str  # as the public page shows it


@dataclass(frozen=True)
class PageInfo:
    namespace: str
    name: str
    slug: str
    title: str
    public: bool
    overall: str
    components: tuple[ComponentInfo, ...]
    active_incidents: int
    maintenance_now: int  # maintenance in effect now (windows and ad-hoc)

    @property
    def public_path(self) -> str:
        return f"/s/{self.slug}"


@dataclass(frozen=True)
class UpdateInfo:
    id: int
    at: datetime
    state: str
    message: str  # markdown as written
    message_html: str  # as the public page shows it
    author: str | None


@dataclass(frozen=True)
class IncidentInfo:
    id: int
    title: str
    state: str
    impact: str
    source: str  # manual | auto
    components: tuple[str, ...]
    component_impacts: Mapping[str, str] | None
    started_at: datetime
    resolved_at: datetime | None
    updates: tuple[UpdateInfo, ...]  # oldest first
    postmortem: str | None
    postmortem_html: str | None
    postmortem_at: datetime | None

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None


@dataclass(frozen=True)
class MaintenanceInfo:
    id: int
    title: str
    message: str | None
    components: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None
    started_by: str
    ended_by: str | None
    active: bool  # in effect now


@dataclass(frozen=True)
class PageDetail:
    page: PageInfo
    incidents: tuple[IncidentInfo, ...]  # unresolved first, then the latest resolved
    maintenance: tuple[MaintenanceInfo, ...]  # in effect or ahead
    past_maintenance: tuple[MaintenanceInfo, ...]  # ended, latest first (a few)


# --- forms as asked -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewIncident:
    title: str
    impacts: Mapping[str, str]  # component -> degraded | partial_outage | major_outage
    status: str
    message: str
    notify: bool


@dataclass(frozen=True)
class NewMaintenance:
    title: str
    components: Sequence[str]
    until: str  # a time with its offset, or a duration (90m, 2h)
    message: str


# --- publishing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Publisher:
    """Queues subscriber mails and tells this process's status pages that a page changed."""

    tokens: Tokens

    def publish(self, session: Session, events: Sequence[PageEvent], now: datetime) -> int:
        pages = serving()
        if pages is not None:
            return pages.publish(session, events, now)
        if not events:
            return 0
        base = configured_public_url() or ""
        return notify_subscribers(session, events, build_all(session, now), self.tokens, base)

    @staticmethod
    def changed() -> None:
        pages = serving()
        if pages is not None:
            pages.changed()


@dataclass(frozen=True)
class Acting:
    """Who acts: the principal the policy asks about, the actor the audit log names, and how the change is
    published (subscriber mails, the pages of this process)."""

    principal: Principal
    actor: Actor
    publisher: Publisher


# --- reading ------------------------------------------------------------------------------------------


def _page_info(snapshot: PageSnapshot) -> PageInfo:
    return PageInfo(
        namespace=snapshot.namespace,
        name=snapshot.name,
        slug=snapshot.slug,
        title=snapshot.title,
        public=snapshot.public,
        overall=snapshot.overall,
        components=tuple(ComponentInfo(c.name, g.name, c.state) for g in snapshot.groups for c in g.components),
        active_incidents=len(snapshot.active_incidents),
        maintenance_now=sum(1 for m in snapshot.maintenance if m.active),
    )


def visible_pages(session: Session, principal: Principal, now: datetime) -> list[PageInfo]:
    """The status pages of the principal's organization, by namespace and name."""
    policy.require(principal, Action.STATUSPAGES_READ, organization=principal.organization)
    namespaces = policy.visible_namespaces(session, principal)
    pages = [page for page in load_pages(session) if page.namespace in namespaces]
    return [_page_info(snapshot) for snapshot in build_pages(session, pages, now)]


def _page(session: Session, principal: Principal, action: Action, namespace: str, name: str) -> PageDef:
    policy.require_in(session, principal, action, namespace=namespace)
    for page in load_pages(session):
        if (page.namespace, page.name) == (namespace, name):
            return page
    raise policy.NotFound()


def _incident_info(incident: PageIncident) -> IncidentInfo:
    return IncidentInfo(
        id=incident.id,
        title=incident.title,
        state=incident.state,
        impact=incident.impact,
        source=incident.source,
        components=tuple(incident.components or ()),
        component_impacts=dict(incident.component_impacts) if incident.component_impacts is not None else None,
        started_at=incident.started_at,
        resolved_at=incident.resolved_at,
        updates=tuple(
            UpdateInfo(u.id, u.at, u.state, u.body, render_markdown(u.body), u.author) for u in incident.updates
        ),
        postmortem=incident.postmortem,
        postmortem_html=render_markdown(incident.postmortem) if incident.postmortem else None,
        postmortem_at=incident.postmortem_at,
    )


def _maintenance_info(row: PageMaintenance, now: datetime) -> MaintenanceInfo:
    return MaintenanceInfo(
        id=row.id,
        title=row.title,
        message=row.message,
        components=tuple(row.components or ()),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        ended_at=row.ended_at,
        started_by=row.started_by,
        ended_by=row.ended_by,
        active=row.starts_at <= now < row.until,
    )


def page_detail(session: Session, principal: Principal, namespace: str, name: str, now: datetime) -> PageDetail:
    page = _page(session, principal, Action.STATUSPAGES_READ, namespace, name)
    [snapshot] = build_pages(session, [page], now)
    rows = session.scalars(
        select(PageIncident)
        .where(PageIncident.page_namespace == namespace, PageIncident.page_name == name)
        .order_by(PageIncident.resolved_at.is_not(None), PageIncident.started_at.desc(), PageIncident.id.desc())
        .limit(INCIDENTS_SHOWN)
    )
    maintenance = [
        _maintenance_info(row, now)
        for row in session.scalars(
            select(PageMaintenance)
            .where(PageMaintenance.page_namespace == namespace, PageMaintenance.page_name == name)
            .order_by(PageMaintenance.starts_at.desc(), PageMaintenance.id.desc())
            .limit(INCIDENTS_SHOWN)
        )
    ]
    current = tuple(m for m in maintenance if m.ended_at is None and m.ends_at > now)
    return PageDetail(
        page=_page_info(snapshot),
        incidents=tuple(_incident_info(row) for row in rows),
        maintenance=current,
        past_maintenance=tuple(m for m in maintenance if m not in current)[:10],
    )


def page_incidents(
    session: Session, principal: Principal, namespace: str, name: str, *, before: int | None, limit: int
) -> list[IncidentInfo]:
    """The page's incidents, newest first (ids below `before`), `limit` of them."""
    _page(session, principal, Action.STATUSPAGES_READ, namespace, name)
    query = select(PageIncident).where(PageIncident.page_namespace == namespace, PageIncident.page_name == name)
    if before is not None:
        query = query.where(PageIncident.id < before)
    return [_incident_info(row) for row in session.scalars(query.order_by(PageIncident.id.desc()).limit(limit))]


def component_names(page: PageDef) -> list[str]:
    return [component.name for group in page.spec.groups for component in group.components]


# --- incidents ----------------------------------------------------------------------------------------


def _text(value: str, missing: str, too_long: str, limit: int) -> str:
    text = value.strip()
    if not text:
        raise Refused(missing)
    if len(text) > limit:
        raise Refused(too_long)
    return text


def _message(value: str) -> str:
    return _text(value, NO_MESSAGE, LONG_MESSAGE, MESSAGE_MAX)


def check_incident(page: PageDef, asked: NewIncident) -> NewIncident:
    """The incident as asked, checked (the first problem is refused with its sentence)."""
    title = _text(asked.title, NO_TITLE, LONG_TITLE, TITLE_MAX)
    known = component_names(page)
    impacts = {name: impact for name, impact in asked.impacts.items() if impact}
    for name, impact in impacts.items():
        if name not in known:
            raise Refused(unknown_component(name))
        if impact not in incidents.COMPONENT_IMPACTS:
            raise Refused(BAD_IMPACT)
    if not impacts:
        raise Refused(NO_COMPONENT)
    if asked.status not in OPEN_STATES:
        raise Refused(BAD_STATUS)
    ordered = {name: impacts[name] for name in known if name in impacts}
    return NewIncident(title, ordered, asked.status, _message(asked.message), asked.notify)


def preview(session: Session, principal: Principal, namespace: str, name: str, message: str) -> str:
    """`message` as the public page would show it (sanitized markdown); changes nothing."""
    _page(session, principal, Action.STATUSPAGES_READ, namespace, name)
    return render_markdown(message[:MESSAGE_MAX])


def _audit(
    session: Session, actor: Actor, action: str, page: PageDef, *, now: datetime, details: Mapping[str, object]
) -> None:
    audit.record(
        session, actor, action, now=now, target=(TARGET_KIND, page.namespace, page.name), details=dict(details)
    )


def open_incident(
    session: Session, who: Acting, namespace: str, name: str, asked: NewIncident, *, now: datetime
) -> IncidentInfo:
    principal, actor, publisher = who.principal, who.actor, who.publisher
    page = _page(session, principal, Action.STATUSPAGES_WRITE, namespace, name)
    checked = check_incident(page, asked)
    event = incidents.open_incident(
        session,
        namespace,
        name,
        title=checked.title,
        impact=incidents.incident_impact(checked.impacts),
        components=list(checked.impacts),
        component_impacts=checked.impacts,
        body=checked.message,
        author=principal.email,
        state=checked.status,
        now=now,
    )
    queued = publisher.publish(session, [event], now) if checked.notify else 0
    _audit(
        session,
        actor,
        "statuspage.incident.open",
        page,
        now=now,
        details={"incident": event.page_incident_id, "title": checked.title, "notify": checked.notify, "mails": queued},
    )
    return _incident_info(_incident(session, page, event.page_incident_id))


def _incident(session: Session, page: PageDef, incident_id: int) -> PageIncident:
    incident = session.get(PageIncident, incident_id)
    if incident is None or (incident.page_namespace, incident.page_name) != (page.namespace, page.name):
        raise policy.NotFound()
    return incident


def post_update(
    session: Session,
    who: Acting,
    target: tuple[str, str, int],
    status: str,
    message: str,
    *,
    notify: bool,
    now: datetime,
) -> IncidentInfo:
    """An update of an unresolved incident; `status` resolved resolves it."""
    principal, actor, publisher = who.principal, who.actor, who.publisher
    namespace, name, incident_id = target
    page = _page(session, principal, Action.STATUSPAGES_WRITE, namespace, name)
    incident = _incident(session, page, incident_id)
    if incident.resolved_at is not None:
        raise Refused(RESOLVED_ALREADY)
    if status not in (*OPEN_STATES, PageIncidentState.RESOLVED.value):
        raise Refused(BAD_STATUS)
    text = _message(message)
    try:
        event = incidents.add_update(session, incident_id, status, text, principal.email, now=now)
    except PageIncidentError as refused:  # not expected once checked above
        raise Refused(str(refused)) from None
    queued = publisher.publish(session, [event], now) if notify else 0
    action = "statuspage.incident.resolve" if event.kind == incidents.RESOLVED else "statuspage.incident.update"
    _audit(
        session,
        actor,
        action,
        page,
        now=now,
        details={"incident": incident_id, "status": status, "notify": notify, "mails": queued},
    )
    return _incident_info(incident)


def write_postmortem(
    session: Session, who: Acting, target: tuple[str, str, int], text: str, *, now: datetime
) -> IncidentInfo:
    principal, actor = who.principal, who.actor
    namespace, name, incident_id = target
    page = _page(session, principal, Action.STATUSPAGES_WRITE, namespace, name)
    incident = _incident(session, page, incident_id)
    if incident.resolved_at is None:
        raise Refused(NOT_RESOLVED)
    body = text.strip()
    if len(body) > MESSAGE_MAX:
        raise Refused(LONG_POSTMORTEM)
    incidents.write_postmortem(session, incident_id, body, now=now)
    _audit(
        session,
        actor,
        "statuspage.incident.postmortem",
        page,
        now=now,
        details={"incident": incident_id, "length": len(body)},
    )
    return _incident_info(incident)


# --- ad-hoc maintenance -------------------------------------------------------------------------------


def start_maintenance(
    session: Session, who: Acting, namespace: str, name: str, asked: NewMaintenance, *, now: datetime
) -> MaintenanceInfo:
    """Maintenance of some components of a page from now until `asked.until`: their monitors' paging is
    held as by a MaintenanceWindow, and the page shows it."""
    principal, actor = who.principal, who.actor
    page = _page(session, principal, Action.STATUSPAGES_WRITE, namespace, name)
    title = _text(asked.title, NO_MAINTENANCE_TITLE, LONG_MAINTENANCE_TITLE, MAINTENANCE_TITLE_LEN)
    known = component_names(page)
    wanted = [c for c in dict.fromkeys(asked.components) if c]
    for component in wanted:
        if component not in known:
            raise Refused(unknown_component(component))
    if not wanted:
        raise Refused(NO_MAINTENANCE_COMPONENT)
    if not asked.until.strip():
        raise Refused(NO_UNTIL)
    try:
        until = parse_until(asked.until, now=now)
    except GlobalMaintenanceRefused as refused:
        raise Refused(f"{str(refused)[:1].upper()}{str(refused)[1:]}.") from None
    message = asked.message.strip()
    if len(message) > MESSAGE_MAX:
        raise Refused(LONG_MESSAGE)
    monitors = load_monitors(session)
    by_name = {c.name: c for group in page.spec.groups for c in group.components}
    names: list[str] = []
    for component in wanted:
        found = component_monitors(page.namespace, by_name[component], monitors, page=page.name)
        if not found:
            raise Refused(no_monitors(component))
        names += [m.name for m in found if m.name not in names]
    row = PageMaintenance(
        page_namespace=namespace,
        page_name=name,
        title=title,
        message=message or None,
        components=[c for c in known if c in wanted],
        monitors=names,
        starts_at=now,
        ends_at=until,
        started_by=principal.email,
    )
    session.add(row)
    session.flush()
    _audit(
        session,
        actor,
        "statuspage.maintenance.start",
        page,
        now=now,
        details={"maintenance": row.id, "title": title, "components": row.components, "until": until.isoformat()},
    )
    return _maintenance_info(row, now)


def end_maintenance(session: Session, who: Acting, target: tuple[str, str, int], *, now: datetime) -> MaintenanceInfo:
    """End ad-hoc maintenance now: paging held by it falls due at once."""
    principal, actor = who.principal, who.actor
    namespace, name, maintenance_id = target
    page = _page(session, principal, Action.STATUSPAGES_WRITE, namespace, name)
    row = session.get(PageMaintenance, maintenance_id, with_for_update=True)
    if row is None or (row.page_namespace, row.page_name) != (namespace, name):
        raise policy.NotFound()
    if row.ended_at is not None or row.ends_at <= now:
        raise Refused(ENDED_ALREADY)
    row.ended_at = max(now, row.starts_at)
    row.ended_by = principal.email
    released = escalation.release_deferred(session, row.page_namespace, row.monitors or (), row.ends_at, now)
    session.flush()
    details = {"maintenance": row.id, "title": row.title, "released": released}
    _audit(session, actor, "statuspage.maintenance.end", page, now=now, details=details)
    return _maintenance_info(row, now)
