"""The StatusPages in the store and the monitors of their components, read once for all pages.

How a component's state follows from its monitors' lives in :mod:`spectra.domain.components` (the
operator writes the same states into `.status`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.api.statuspage import Component, StatusPageSpec
from spectra.domain.components import component_monitors, monitor_states
from spectra.domain.maintenance import WindowDef, load_windows
from spectra.domain.monitors import MonitorRef, load_monitors
from spectra.store import Resource

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class PagesMonitors:
    """The monitors of every component of some pages, and their states now (one read for all pages)."""

    by_component: dict[tuple[str, str, str], tuple[MonitorRef, ...]]  # (namespace, page, component)
    used: dict[int, MonitorRef]  # every monitor of any component, by id
    states: dict[int, str]  # see `spectra.domain.components.monitor_states`
    windows: list[WindowDef]

    def of(self, page: PageDef, component: Component) -> tuple[MonitorRef, ...]:
        return self.by_component[(page.namespace, page.name, component.name)]


def pages_monitors(session: Session, pages: Sequence[PageDef], now: datetime) -> PagesMonitors:
    monitors = load_monitors(session)
    windows = load_windows(session)
    by_component = {
        (page.namespace, page.name, component.name): component_monitors(
            page.namespace, component, monitors, page=page.name
        )
        for page in pages
        for group in page.spec.groups
        for component in group.components
    }
    used = {m.id: m for refs in by_component.values() for m in refs}
    return PagesMonitors(by_component, used, monitor_states(session, used.values(), windows, now), windows)
