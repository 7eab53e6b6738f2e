"""Fixtures of the end-to-end tests that drive `spectra operator` (tests/e2e/test_operator.py, test_discovery.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from spectra.store import upgrade


@pytest.fixture
def database(mariadb_url: str) -> str:
    """The operator's own MariaDB database, migrated once, here (the operator refuses an empty one)."""
    engine = sa.create_engine(mariadb_url)
    upgrade(engine)
    engine.dispose()
    return mariadb_url
