"""Helpers for probe tests that need a real store: migrated databases, monitors applied through the
real loader path (spectra.reconcile), and a plain TCP target on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.api import parse_object
from spectra.reconcile import MANIFEST_SOURCE, apply_set
from spectra.store import Monitor, make_engine, session_factory, upgrade


@dataclass
class Store:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def apply(self, specs: dict[str, dict[str, Any]], *, prune: bool = True) -> dict[str, int]:
        """Apply Monitors {name: spec} in namespace default; returns {name: monitor id}."""
        resources = [
            parse_object(
                {"apiVersion": "spectra.dev/v1alpha1", "kind": "Monitor", "metadata": {"name": name}, "spec": spec}
            )
            for name, spec in specs.items()
        ]
        with self.sessions.begin() as session:
            apply_set(session, resources, MANIFEST_SOURCE, prune=prune)
        return self.ids()

    def ids(self) -> dict[str, int]:
        with self.sessions() as session:
            return {row.name: row.resource_id for row in session.execute(select(Monitor.name, Monitor.resource_id))}


@contextlib.contextmanager
def migrated(url: str, **engine_options: Any) -> Iterator[Store]:
    upgrade(url)
    engine = make_engine(url, **engine_options)
    try:
        yield Store(url, engine, session_factory(engine))
    finally:
        engine.dispose()


def tcp_spec(port: int, *, interval: str = "1s", timeout: str = "200ms", **extra: Any) -> dict[str, Any]:
    return {
        "type": "tcp",
        "interval": interval,
        "timeout": timeout,
        "tcp": {"host": "127.0.0.1", "port": port},
        **extra,
    }


@contextlib.asynccontextmanager
async def tcp_target() -> AsyncIterator[int]:
    """A loopback TCP server that accepts and closes; yields its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def eventually(predicate: Any, *, timeout: float = 5.0, step: float = 0.05) -> None:
    """Wait until ``predicate()`` is true (it may be async); fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)
