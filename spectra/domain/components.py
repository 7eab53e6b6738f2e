"""Which monitors make a status-page component, and the component and page states from theirs.

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

Status pages render these states; the operator writes them into a StatusPage's `.status`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from spectra.api.discovery import COMPONENT_LABEL, STATUS_PAGE_LABEL, component_label
from spectra.api.statuspage import Component
from spectra.domain.maintenance import WindowDef, in_maintenance
from spectra.domain.monitors import MonitorRef, matches
from spectra.store import monitor_overview

OPERATIONAL: Final = "operational"
DEGRADED: Final = "degraded"
PARTIAL_OUTAGE: Final = "partial_outage"
MAJOR_OUTAGE: Final = "major_outage"
MAINTENANCE: Final = "maintenance"
UNKNOWN: Final = "unknown"
# Worst last.
SEVERITY: Final = (OPERATIONAL, MAINTENANCE, UNKNOWN, DEGRADED, PARTIAL_OUTAGE, MAJOR_OUTAGE)
_RANK: Final = {state: rank for rank, state in enumerate(SEVERITY)}


def component_monitors(
    namespace: str, component: Component, monitors: Mapping[str, Sequence[MonitorRef]], *, page: str | None = None
) -> tuple[MonitorRef, ...]:
    """The monitors of one component of `page` (same namespace): the named ones or those matching its
    selector, and those that join it by label (`spectra.dev/status-page: <page>` with
    `spectra.dev/component: <component name as a label>`, as discovered monitors do)."""
    candidates = monitors.get(namespace, ())
    joined = [m for m in candidates if page is not None and joins(m.labels, page, component.name)]
    if component.monitors is not None:
        by_name = {monitor.name: monitor for monitor in candidates}
        named = [by_name[name] for name in component.monitors if name in by_name]
        return tuple(named + [m for m in sorted(joined, key=lambda m: m.name) if m not in named])
    selector = component.monitor_selector
    chosen = {m.id: m for m in joined}
    if selector is not None:
        chosen.update({m.id: m for m in candidates if matches(m.labels, selector.match_labels)})
    return tuple(sorted(chosen.values(), key=lambda m: m.name))


def joins(labels: Mapping[str, str], page: str, component: str) -> bool:
    """Whether a monitor's labels ask to join `component` of `page`."""
    return labels.get(STATUS_PAGE_LABEL) == page and labels.get(COMPONENT_LABEL) == component_label(component)


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


def worst_state(states: Iterable[str]) -> str:
    """The worst of some component states (an unknown name ranks as ``unknown``)."""
    return overall_state(states)


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
