"""Two organizations with monitors (acme: namespaces acme and acme-ops; globex: globex), their members,
and the console site, for the monitors area's tests; on SQLite and MariaDB."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth.identity import Principal
from spectra.store import Role, User, utcnow
from tests.factories.accounts import member, organization_resource
from tests.factories.console_monitors import (
    apply_monitors,
    heartbeat_spec,
    monitor,
    secret_header_spec,
    secrets_for,
    set_state,
)
from tests.support.console import ConsoleSite
from tests.support.web import good_hash

ADA, UMA, GUS, ROOT = "ada@acme.example", "uma@acme.example", "gus@globex.example", "root@example.com"


@dataclass
class World:
    sessions: sessionmaker[Session]
    ids: dict[str, int]
    ada: Principal
    uma: Principal
    gus: Principal


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    now = utcnow()
    with sessions.begin() as session:
        organization_resource(session, "acme", ["acme", "acme-ops"])
        organization_resource(session, "globex", ["globex"])
        ada = member(session, ADA, "acme", Role.ADMIN)
        uma = member(session, UMA, "acme", Role.USER)
        gus = member(session, GUS, "globex", Role.USER)
        member(session, ROOT, None, None, platform_admin=True)
        for user in session.scalars(select(User)):
            user.password_hash = good_hash()
        apply_monitors(
            session,
            [
                monitor("api", "acme", labels={"team": "web"}, spec=secret_header_spec("api"), locations=("eu", "us")),
                monitor("shop", "acme", labels={"team": "web"}),
                monitor("db", "acme-ops", labels={"team": "data"}),
            ],
            secrets=secrets_for("acme"),
        )
        apply_monitors(session, [monitor("cron", "acme-ops", spec=heartbeat_spec())], secrets=secrets_for("acme-ops"))
        ids = apply_monitors(session, [monitor("portal", "globex", labels={"team": "web"})])
        set_state(session, ids["acme/api"], "eu", "down", at=now)
        set_state(session, ids["acme/api"], "us", "down", at=now)
        set_state(session, ids["acme/shop"], "eu", "up", at=now)
        set_state(session, ids["acme-ops/db"], "eu", "up", at=now)
        set_state(session, ids["globex/portal"], "eu", "down", at=now)
    return World(sessions, ids, ada, uma, gus)


@pytest.fixture
def site(world: World, portal: BlockingPortal) -> ConsoleSite:
    return ConsoleSite.make(world.sessions, portal)
