"""Store fixtures: a migrated database (SQLite and MariaDB), sessions, and a monitor factory."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from spectra.store import Monitor, MonitorLocation, Resource, make_engine, session_factory, upgrade

_names = itertools.count(1)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database migrated to head through Alembic (the real path)."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


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
