"""Alerting fixtures on the shared migrated database (`sessions`): the alerter's world, and the site that
serves a paged incident. `world` and `site` are SQLite only (mark the test `@sqlite_only`); `any_world`
and `any_site` run on SQLite and MariaDB. The data comes from tests/factories/alerting.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.factories.alerting import Site, World, make_world, open_site


@pytest.fixture
def sqlite_sessions(request: pytest.FixtureRequest, sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """`sessions`, for the fixtures that promise SQLite only: a test using them must be `@sqlite_only`."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("database_url") != "sqlite":
        pytest.fail(f"{request.node.name} uses a SQLite-only fixture: mark it @sqlite_only or use the any_* one")
    return sessions


@pytest.fixture
def world(sqlite_sessions: sessionmaker[Session]) -> World:
    return make_world(sqlite_sessions)


@pytest.fixture
def any_world(sessions: sessionmaker[Session]) -> World:
    """The same world on SQLite and on MariaDB."""
    return make_world(sessions)


@pytest.fixture
async def site(sqlite_sessions: sessionmaker[Session]) -> AsyncIterator[Site]:
    async with open_site(sqlite_sessions) as value:
        yield value


@pytest.fixture
async def any_site(sessions: sessionmaker[Session]) -> AsyncIterator[Site]:
    """The same site on SQLite and on MariaDB."""
    async with open_site(sessions) as value:
        yield value
