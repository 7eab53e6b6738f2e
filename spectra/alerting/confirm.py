"""Which monitors are confirmed down or up, from the combined state the probes keep.

The probe side already applies failureThreshold / successThreshold per location and the quorum over
the locations that report (a location that stopped reporting is left out); this module joins that
combined state with the columns the alerter needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.store import Monitor, monitor_overview


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


def monitor_views(session: Session, now: datetime) -> list[MonitorView]:
    """Every monitor with its combined state at ``now``."""
    overview = {(o.namespace, o.name): o for o in monitor_overview(session, now)}
    rows = session.execute(
        select(
            Monitor.resource_id,
            Monitor.namespace,
            Monitor.name,
            Monitor.paused,
            Monitor.severity,
            Monitor.escalation_policy,
            Monitor.labels,
        )
    )
    out: list[MonitorView] = []
    for row in rows:
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
    return out
