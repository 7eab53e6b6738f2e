"""Which monitors make each component, and the component and page states from theirs.

A component's state comes from the combined states of its monitors (``monitor_overview``):

- monitors in an active maintenance window are set aside; if every monitor is, ``maintenance``;
- paused and pending monitors (and monitors that no longer exist) carry no data;
- of the rest: all ``down`` => ``major_outage``; some ``down`` => ``partial_outage``;
  any ``degraded`` => ``degraded``; all ``up`` => ``operational`` (``maintenance`` instead when
  some monitors were set aside for maintenance);
- nothing with data => ``unknown``: never a made-up ``operational``.

The page's overall state is the worst component state, in the order of :data:`SEVERITY`. ``unknown``
ranks above ``operational`` and ``maintenance`` (a page whose components report nothing does not
claim to be operational); a page with no known component at all is ``unknown``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.alerting.maintenance import WindowDef, load_windows
from spectra.api.statuspage import Component, StatusPageSpec
from spectra.store import Monitor, Resource, monitor_overview

log = logging.getLogger(__name__)

OPERATIONAL: Final = "operational"
DEGRADED: Final = "degraded"
PARTIAL_OUTAGE: Final = "partial_outage"
MAJOR_OUTAGE: Final = "major_outage"
MAINTENANCE: Final = "maintenance"
UNKNOWN: Final = "unknown"
# Worst last.
SEVERITY: Final = (OPERATIONAL, MAINTENANCE, UNKNOWN, DEGRADED, PARTIAL_OUTAGE, MAJOR_OUTAGE)
_RANK: Final = {state: rank for rank, state in enumerate(SEVERITY)}


@dataclass(frozen=True)
class MonitorRef:
    id: int
    namespace: str
    name: str
    labels: Mapping[str, str]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PageDef:
    namespace: str
    name: str
    spec: StatusPageSpec


def load_pages(session: Session) -> list[PageDef]:
    """Every StatusPage in the store (an unreadable spec is logged and left out), by namespace and name."""
    rows = session.execute(
        select(Resource.namespace, Resource.name, Resource.spec)
        .where(Resource.kind == "StatusPage")
        .order_by(Resource.namespace, Resource.name)
    )
    pages: list[PageDef] = []
    for row in rows:
        try:
            pages.append(PageDef(row.namespace, row.name, StatusPageSpec.model_validate(row.spec)))
        except (ValidationError, ValueError) as exc:
            log.warning("status page %s/%s is not usable: %s", row.namespace, row.name, exc)
    return pages


def load_monitors(session: Session) -> dict[str, list[MonitorRef]]:
    """Every monitor, by namespace."""
    out: dict[str, list[MonitorRef]] = {}
    rows = session.execute(select(Monitor.resource_id, Monitor.namespace, Monitor.name, Monitor.labels))
    for row in rows:
        out.setdefault(row.namespace, []).append(MonitorRef(row.resource_id, row.namespace, row.name, row.labels or {}))
    return out


def component_monitors(
    namespace: str, component: Component, monitors: Mapping[str, Sequence[MonitorRef]]
) -> tuple[MonitorRef, ...]:
    """The monitors of one component: named ones (same namespace) or those matching its selector."""
    candidates = monitors.get(namespace, ())
    if component.monitors is not None:
        by_name = {monitor.name: monitor for monitor in candidates}
        return tuple(by_name[name] for name in component.monitors if name in by_name)
    selector = component.monitor_selector
    if selector is None:
        return ()
    wanted = selector.match_labels.items()
    return tuple(
        sorted(
            (m for m in candidates if all(m.labels.get(k) == v for k, v in wanted)),
            key=lambda m: m.name,
        )
    )


def component_state(monitor_states: Iterable[str | None]) -> str:
    """One component state from its monitors' combined states.

    Each item is a monitor's combined state (``up``, ``degraded``, ``down``, ``pending``, ``paused``),
    ``"maintenance"`` for a monitor in an active maintenance window, or None for no data.
    """
    states = list(monitor_states)
    maintenance = sum(1 for state in states if state == MAINTENANCE)
    data = [state for state in states if state in ("up", "degraded", "down")]
    if not data:
        return MAINTENANCE if maintenance else UNKNOWN
    down = sum(1 for state in data if state == "down")
    if down == len(data):
        return MAJOR_OUTAGE
    if down:
        return PARTIAL_OUTAGE
    if DEGRADED in data:
        return DEGRADED
    return MAINTENANCE if maintenance else OPERATIONAL


def overall_state(component_states: Iterable[str]) -> str:
    """The worst of the component states (``unknown`` when there are none)."""
    return max(component_states, key=lambda state: _RANK.get(state, _RANK[UNKNOWN]), default=UNKNOWN)


def in_maintenance(windows: Sequence[WindowDef], monitor: MonitorRef, now: datetime) -> bool:
    return any(
        window.covers(monitor.namespace, monitor.name, monitor.labels) and window.occurrence_at(now) is not None
        for window in windows
    )


def monitor_states(
    session: Session, monitors: Iterable[MonitorRef], windows: Sequence[WindowDef], now: datetime
) -> dict[int, str]:
    """Each monitor's combined state, or ``"maintenance"`` when a window is in effect for it (one query)."""
    combined = {(row.namespace, row.name): row.state for row in monitor_overview(session, now)}
    out: dict[int, str] = {}
    for monitor in monitors:
        if in_maintenance(windows, monitor, now):
            out[monitor.id] = MAINTENANCE
        elif (state := combined.get((monitor.namespace, monitor.name))) is not None:
            out[monitor.id] = state
    return out


@dataclass(frozen=True)
class PagesMonitors:
    """The monitors of every component of some pages, and their states now (one read for all pages)."""

    by_component: dict[tuple[str, str, str], tuple[MonitorRef, ...]]  # (namespace, page, component)
    used: dict[int, MonitorRef]  # every monitor of any component, by id
    states: dict[int, str]  # see `monitor_states`
    windows: list[WindowDef]

    def of(self, page: PageDef, component: Component) -> tuple[MonitorRef, ...]:
        return self.by_component[(page.namespace, page.name, component.name)]


def pages_monitors(session: Session, pages: Sequence[PageDef], now: datetime) -> PagesMonitors:
    monitors = load_monitors(session)
    windows = load_windows(session)
    by_component = {
        (page.namespace, page.name, component.name): component_monitors(page.namespace, component, monitors)
        for page in pages
        for group in page.spec.groups
        for component in group.components
    }
    used = {m.id: m for refs in by_component.values() for m in refs}
    return PagesMonitors(by_component, used, monitor_states(session, used.values(), windows, now), windows)
