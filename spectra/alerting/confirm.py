"""Which monitors are confirmed down or up, from the combined state the probes keep.

The probe side already applies failureThreshold / successThreshold per location and the quorum over
the locations that report (a location that stopped reporting is left out); this module joins that
combined state with the columns the alerter needs.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.store import Monitor, down_monitors, monitor_overview
from spectra.store.batches import whole_or_by_ids


@dataclass(frozen=True)
class MonitorView:
    monitor_id: int
    namespace: str
    name: str
    paused: bool
    severity: str
    escalation_policy: str | None
    state: str  # up | down | degraded | pending | paused
    reason: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def confirmed_down(self) -> bool:
        return not self.paused and self.state == "down"

    @property
    def confirmed_up(self) -> bool:
        return self.state == "up"


def candidate_monitors(session: Session, open_incident_monitors: Collection[int]) -> set[int]:
    """The monitors a pass must look at: those a location judges down (maybe confirmed down) and those
    with an open incident (maybe confirmed up, or escalating). Every other monitor needs nothing, so a
    pass costs what is wrong, not how many monitors there are."""
    return down_monitors(session) | set(open_incident_monitors)


def monitor_views(session: Session, now: datetime, monitor_ids: Collection[int] | None = None) -> list[MonitorView]:
    """Every monitor (or those of ``monitor_ids``) with its combined state at ``now``."""
    overview = {(o.namespace, o.name): o for o in monitor_overview(session, now, monitor_ids)}
    columns = select(
        Monitor.resource_id,
        Monitor.namespace,
        Monitor.name,
        Monitor.paused,
        Monitor.severity,
        Monitor.escalation_policy,
        Monitor.labels,
    ).order_by(Monitor.namespace, Monitor.name)
    out: list[MonitorView] = []
    statements = whole_or_by_ids(columns, Monitor.resource_id, monitor_ids)
    for row in (row for statement in statements for row in session.execute(statement)):
        o = overview.get((row.namespace, row.name))
        paused = bool(row.paused)
        out.append(
            MonitorView(
                monitor_id=row.resource_id,
                namespace=row.namespace,
                name=row.name,
                paused=paused,
                severity=row.severity,
                escalation_policy=row.escalation_policy,
                state="paused" if paused else (o.state if o is not None else "pending"),
                reason=o.reason if o is not None else "",
                labels=dict(row.labels or {}),
            )
        )
    if monitor_ids is not None:  # the chunks are by id: back to the order of one statement
        out.sort(key=lambda view: (view.namespace, view.name))
    return out
