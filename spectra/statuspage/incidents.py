"""Page incidents: opened and resolved automatically from monitors, updated by people.

:func:`sync_auto_incidents` runs periodically (in one process at a time, e.g. under the alerter's
leader lease). For each page with ``autoIncidents``, a component is *failing* when one of its
monitors (not in maintenance) has an open or acknowledged alerting incident or its combined state is
``down``. A failing component without an unresolved page incident naming it gets one: "Outage:
<component>", state ``investigating``, source ``auto``. An auto incident is resolved once its
component is ``operational`` again. Manual incidents are never resolved automatically, and a
component that a manual incident already names gets no auto incident on top.

People open incidents by hand (the console and its JSON twin): each affected component with its impact
(:data:`COMPONENT_IMPACTS`, shown as the component's state while the incident is unresolved), updates,
resolving, and a post-mortem once resolved (:func:`write_postmortem`).

Every change returns a :class:`PageEvent` so subscribers can be notified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.domain.components import MAINTENANCE, MAJOR_OUTAGE, OPERATIONAL, component_state
from spectra.statuspage.stored_pages import load_pages, pages_monitors
from spectra.store import (
    Incident,
    IncidentState,
    PageIncident,
    PageIncidentSource,
    PageIncidentState,
    PageIncidentUpdate,
    utcnow,
)

OPENED: Final = "opened"
UPDATED: Final = "updated"
RESOLVED: Final = "resolved"
IMPACTS: Final = ("none", "minor", "major", "critical", "maintenance")
STATES: Final = tuple(state.value for state in PageIncidentState)
# What a person says of each component an incident affects, and the incident's impact that follows.
COMPONENT_IMPACTS: Final = ("degraded", "partial_outage", "major_outage")
_INCIDENT_IMPACT: Final = {"degraded": "minor", "partial_outage": "major", "major_outage": "critical"}


@dataclass(frozen=True)
class PageEvent:
    """Something subscribers of a page may be told about.

    ``kind``: ``opened`` (a new incident), ``updated`` (a new update that does not resolve it) or
    ``resolved``. ``update_id`` is the update that caused the event (its body is the message);
    ``components`` are the incident's components (for component subscriptions).
    """

    kind: str
    page_namespace: str
    page_name: str
    page_incident_id: int
    update_id: int
    title: str
    state: str
    impact: str
    components: tuple[str, ...]
    at: datetime


class PageIncidentError(ValueError):
    """A request the incident cannot take (unknown incident, bad state or impact)."""


def _event(kind: str, incident: PageIncident, update: PageIncidentUpdate) -> PageEvent:
    return PageEvent(
        kind=kind,
        page_namespace=incident.page_namespace,
        page_name=incident.page_name,
        page_incident_id=incident.id,
        update_id=update.id,
        title=incident.title,
        state=incident.state,
        impact=incident.impact,
        components=tuple(incident.components or ()),
        at=update.at,
    )


def open_incident(
    session: Session,
    page_namespace: str,
    page_name: str,
    *,
    title: str,
    impact: str,
    components: Sequence[str],
    body: str,
    author: str | None = None,
    state: str = PageIncidentState.INVESTIGATING.value,
    source: str = PageIncidentSource.MANUAL.value,
    monitor_incident_id: int | None = None,
    component_impacts: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> PageEvent:
    """Open a page incident with its first update (the console's "new incident"); flushes.

    `component_impacts` (a person's: component name -> one of COMPONENT_IMPACTS) are shown as those
    components' states while the incident is unresolved."""
    if component_impacts is not None and any(v not in COMPONENT_IMPACTS for v in component_impacts.values()):
        raise PageIncidentError(f"a component's impact must be one of {', '.join(COMPONENT_IMPACTS)}")
    if impact not in IMPACTS:
        raise PageIncidentError(f"impact must be one of {', '.join(IMPACTS)}")
    if state not in STATES or state == PageIncidentState.RESOLVED:
        raise PageIncidentError("a new incident starts investigating, identified or monitoring")
    now = now or utcnow()
    incident = PageIncident(
        page_namespace=page_namespace,
        page_name=page_name,
        title=title,
        state=state,
        impact=impact,
        components=list(components),
        source=source,
        monitor_incident_id=monitor_incident_id,
        started_at=now,
        component_impacts=dict(component_impacts) if component_impacts is not None else None,
    )
    update = PageIncidentUpdate(at=now, state=state, body=body, author=author)
    incident.updates.append(update)
    session.add(incident)
    session.flush()
    return _event(OPENED, incident, update)


def add_update(
    session: Session,
    page_incident_id: int,
    state: str,
    body: str,
    author: str | None,
    *,
    now: datetime | None = None,
) -> PageEvent:
    """Post an update; the incident takes its state (``resolved`` resolves it, anything else reopens it)."""
    if state not in STATES:
        raise PageIncidentError(f"state must be one of {', '.join(STATES)}")
    incident = session.get(PageIncident, page_incident_id, with_for_update=True)
    if incident is None:
        raise PageIncidentError(f"no page incident {page_incident_id}")
    now = now or utcnow()
    update = PageIncidentUpdate(at=now, state=state, body=body, author=author)
    incident.updates.append(update)
    incident.state = state
    resolved = state == PageIncidentState.RESOLVED
    incident.resolved_at = (incident.resolved_at or now) if resolved else None
    session.flush()
    return _event(RESOLVED if resolved else UPDATED, incident, update)


def incident_impact(component_impacts: Mapping[str, str]) -> str:
    """The incident's impact (IMPACTS) from its components' (the worst: degraded is minor, a partial
    outage major, a major outage critical)."""
    ranked = [_INCIDENT_IMPACT[impact] for impact in component_impacts.values() if impact in _INCIDENT_IMPACT]
    return max(ranked, key=IMPACTS.index, default="none")


def write_postmortem(session: Session, page_incident_id: int, text: str, *, now: datetime | None = None) -> None:
    """Set (or replace) the post-mortem of a resolved incident (markdown; empty removes it); flushes."""
    incident = session.get(PageIncident, page_incident_id, with_for_update=True)
    if incident is None:
        raise PageIncidentError(f"no page incident {page_incident_id}")
    if incident.resolved_at is None:
        raise PageIncidentError("a post-mortem is written once the incident is resolved")
    incident.postmortem = text or None
    incident.postmortem_at = (now or utcnow()) if text else None
    session.flush()


def sync_auto_incidents(session: Session, now: datetime) -> list[PageEvent]:
    """Open and resolve the automatic page incidents of every page with ``autoIncidents``; flushes."""
    pages = [page for page in load_pages(session) if page.spec.auto_incidents]
    if not pages:
        return []
    found = pages_monitors(session, pages, now)
    states = found.states
    alerting: dict[int | None, int] = {
        row.monitor_id: row.id
        for row in session.execute(
            select(Incident.monitor_id, Incident.id)
            .where(Incident.state.in_((IncidentState.OPEN.value, IncidentState.ACKNOWLEDGED.value)))
            .order_by(Incident.id)
        )
    }
    unresolved = list(
        session.scalars(select(PageIncident).where(PageIncident.resolved_at.is_(None)).order_by(PageIncident.id))
    )
    events: list[PageEvent] = []
    for page in pages:
        open_here = [i for i in unresolved if (i.page_namespace, i.page_name) == (page.namespace, page.name)]
        for group in page.spec.groups:
            for component in group.components:
                refs = found.of(page, component)
                live = [m for m in refs if states.get(m.id) != MAINTENANCE]
                failing = [m for m in live if m.id in alerting or states.get(m.id) == "down"]
                state = component_state(states.get(m.id) for m in refs)
                naming = [i for i in open_here if component.name in (i.components or [])]
                if failing and not naming:
                    event = open_incident(
                        session,
                        page.namespace,
                        page.name,
                        title=f"Outage: {component.name}",
                        impact="major" if state == MAJOR_OUTAGE else "minor",
                        components=[component.name],
                        body=f"We are investigating issues with {component.name}.",
                        source=PageIncidentSource.AUTO.value,
                        monitor_incident_id=next((alerting[m.id] for m in failing if m.id in alerting), None),
                        now=now,
                    )
                    events.append(event)
                    opened = session.get(PageIncident, event.page_incident_id)
                    assert opened is not None
                    open_here.append(opened)
                elif not failing and state == OPERATIONAL:
                    for incident in naming:
                        if incident.source == PageIncidentSource.AUTO:
                            events.append(
                                add_update(
                                    session,
                                    incident.id,
                                    PageIncidentState.RESOLVED.value,
                                    f"{component.name} is operating normally again. This incident has been resolved.",
                                    None,
                                    now=now,
                                )
                            )
                            open_here.remove(incident)
    return events
