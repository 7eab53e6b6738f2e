"""Store fixtures: a migrated database (SQLite and MariaDB), sessions, and a monitor factory."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from spectra.store import Monitor, MonitorLocation, Resource

_names = itertools.count(1)


MonitorFactory = Callable[..., Monitor]


@pytest.fixture
def make_monitor(session: Session) -> MonitorFactory:
    """Adds a Monitor resource with its hot-path row and locations; returns the flushed Monitor."""

    def make(name: str | None = None, *, namespace: str = "default", locations: tuple[str, ...] = ()) -> Monitor:
        name = name or f"monitor-{next(_names)}"
        resource = Resource(
            kind="Monitor",
            namespace=namespace,
            name=name,
            spec={"type": "http", "http": {"url": f"https://{name}.example"}},
            spec_hash="0" * 64,
            source="files:/srv/monitors",
        )
        monitor = Monitor(
            namespace=namespace,
            name=name,
            type="http",
            target=f"https://{name}.example",
            interval_ms=30_000,
            timeout_ms=10_000,
            severity="critical",
            locations=[MonitorLocation(location=loc) for loc in locations],
        )
        resource.monitor = monitor
        session.add(resource)
        session.flush()
        return monitor

    return make
