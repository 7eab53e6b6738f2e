"""Shared probe-test fixtures: a test CA, local aiohttp.web app servers on 127.0.0.1, a check context,
and the shared migrated database (SQLite and MariaDB) with Monitors applied through the loader.

Plain helpers (request builders, TLS contexts, raw TCP/UDP servers, dnsmasq) live in servers.py;
monitor specs in tests/factories/monitors.py.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
import trustme
from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from spectra.probe.context import CheckContext
from tests.factories.store import Store

from .servers import ServeApp, check_context


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A CA for the session; trust it with servers.client_context(tls_ca), issue with servers.leaf."""
    return trustme.CA()


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """Start aiohttp.web apps: `await serve_app(app, ssl_context=None, host="127.0.0.1")` -> base URL.

    Port 0 picks a free port. Handlers are cancelled when the client hangs up, so a deliberately slow
    handler does not hold up teardown.
    """
    runners: list[web.AppRunner] = []

    async def serve(app: web.Application, *, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> str:
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        scheme = "https" if ssl_context is not None else "http"
        return f"{scheme}://{host}:{port}"

    yield serve
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def ctx() -> AsyncIterator[CheckContext]:
    """A check context with the standalone egress policy (loopback targets allowed), closed afterwards.

    Modules that need another context (a CA, secrets, a browser) define their own `ctx`.
    """
    async with check_context() as context:
        yield context


@pytest.fixture
def store(engine: sa.Engine, sessions: sessionmaker[Session]) -> Store:
    """The shared migrated database (tests/conftest.py: SQLite and MariaDB); `store.apply` adds Monitors."""
    return Store(engine, sessions)
