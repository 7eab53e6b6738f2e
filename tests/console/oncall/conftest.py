"""The on-call area's tests share two tenants (tests/factories/oncall.py) on a real database."""

from __future__ import annotations

import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth.identity import Principal
from tests.factories.oncall import oncall_tenants
from tests.support.console import ConsoleSite


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> dict[str, Principal]:
    with sessions.begin() as session:
        return oncall_tenants(session)


@pytest.fixture
def site(sessions: sessionmaker[Session], portal: BlockingPortal, people: dict[str, Principal]) -> ConsoleSite:
    return ConsoleSite.make(sessions, portal)
