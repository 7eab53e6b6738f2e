"""Rows in the shared migrated database (the `engine` / `sessions` / `session` fixtures of tests/conftest.py).

- `monitor_factory(session)`: Monitor rows added directly (resource, hot-path row, locations), flushed;
  the `make_monitor` fixture of tests/store/conftest.py is one. For the store's own tests.
- `state_row(...)`: one `monitor_states` row as `save_states` takes it, as of `NOW`.
- `RefusingSessions(store)`: its sessions, or a refused connection while `down` (a database outage).
- `Store(engine, sessions)`: Monitors applied through the real loader path (`spectra.reconcile.apply_set`,
  as `spectra run` and the operator do), for tests of what reads them (probe workers, the web).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.api import API_VERSION, parse_object
from spectra.api.secrets import NoSecrets, SecretResolver
from spectra.reconcile import MANIFEST_SOURCE, apply_set
from spectra.store import Monitor, MonitorLocation, Resource, push_token_hash

NOW: Final = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# --- rows added directly ----------------------------------------------------------------------------

_names = itertools.count(1)


class MonitorFactory(Protocol):
    def __call__(
        self,
        name: str | None = None,
        *,
        namespace: str = "default",
        locations: tuple[str, ...] = (),
        push_token: str | None = None,
    ) -> Monitor: ...


def monitor_factory(session: Session) -> MonitorFactory:
    """Adds an http Monitor (`https://<name>.example`, every 30 s, quorum 1) with its locations; flushes."""

    def make(
        name: str | None = None,
        *,
        namespace: str = "default",
        locations: tuple[str, ...] = (),
        push_token: str | None = None,
    ) -> Monitor:
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
            push_token_hash=push_token_hash(push_token) if push_token is not None else None,
        )
        resource.monitor = monitor
        session.add(resource)
        session.flush()
        return monitor

    return make


def state_row(monitor_id: int, location: str, state: str, *, at: datetime = NOW, **extra: Any) -> dict[str, Any]:
    """A `monitor_states` row: checked and changed `at`, 12.5 ms, reason "<state> in <location>"."""
    return {
        "monitor_id": monitor_id,
        "location": location,
        "state": state,
        "last_status": {"pending": None, "paused": None}.get(state, "down" if state == "down" else "up"),
        "consecutive_failures": 0,
        "consecutive_successes": 0,
        "last_check_at": at,
        "last_latency_ms": 12.5,
        "last_reason": f"{state} in {location}",
        "changed_at": at,
        "facts": None,
        **extra,
    }


# --- monitors through the loader ----------------------------------------------------------------------


class SecretTable:
    """Secrets by (namespace, name, key), as `kind: Secret` manifests would give them to the loader."""

    def __init__(self, values: Mapping[tuple[str, str, str], str]) -> None:
        self.values = dict(values)

    def get(self, namespace: str, name: str, key: str) -> str | None:
        return self.values.get((namespace, name, key))


def monitor_body(name: str, spec: Mapping[str, Any], *, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Monitor",
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }


@dataclass
class Store:
    """The shared migrated database, with Monitors applied as the loader applies manifests."""

    engine: sa.Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def apply(
        self,
        specs: Mapping[str, Mapping[str, Any]],
        *,
        prune: bool = True,
        secrets: SecretResolver | None = None,
    ) -> dict[str, int]:
        """Apply Monitors {name: spec} in namespace default as one set; returns {name: monitor id} of all.

        With `prune` (the default) monitors of earlier calls that `specs` leaves out are deleted.
        """
        resources = [parse_object(monitor_body(name, spec)) for name, spec in specs.items()]
        with self.sessions.begin() as session:
            apply_set(session, resources, MANIFEST_SOURCE, prune=prune, secrets=secrets or NoSecrets())
        return self.ids()

    def ids(self) -> dict[str, int]:
        with self.sessions() as session:
            return {row.name: row.resource_id for row in session.execute(sa.select(Monitor.name, Monitor.resource_id))}


class RefusingSessions:
    """A `Store`'s sessions, or a refused connection while `down` (the database is away); counts the refusals."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False
        self.refused = 0

    def __call__(self) -> Session:
        if self.down:
            self.refused += 1
            raise sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "Connection refused"))
        return self.store.sessions()
