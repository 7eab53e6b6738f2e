"""A monitor as status-page components, maintenance windows and uptime figures see it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.store import Monitor


@dataclass(frozen=True)
class MonitorRef:
    id: int
    namespace: str
    name: str
    labels: Mapping[str, str]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def load_monitors(session: Session) -> dict[str, list[MonitorRef]]:
    """Every monitor, by namespace."""
    out: dict[str, list[MonitorRef]] = {}
    rows = session.execute(select(Monitor.resource_id, Monitor.namespace, Monitor.name, Monitor.labels))
    for row in rows:
        out.setdefault(row.namespace, []).append(MonitorRef(row.resource_id, row.namespace, row.name, row.labels or {}))
    return out


def matches(labels: Mapping[str, str], match_labels: Mapping[str, str]) -> bool:
    """Whether `labels` hold every pair of a selector's matchLabels (an empty selector matches all)."""
    return all(labels.get(key) == value for key, value in match_labels.items())
