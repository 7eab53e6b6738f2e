"""The fault tests' database proxy does what it says: forwards, cuts, freezes and restores."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from spectra.store import make_engine
from tests.support.db_proxy import DatabaseProxy


@pytest.fixture
def proxy() -> Iterator[DatabaseProxy]:
    proxy = DatabaseProxy()
    yield proxy
    proxy.close()


def _one(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT 1")).scalar_one())


def test_forwards_cuts_and_restores(proxy: DatabaseProxy, mariadb_url: str) -> None:
    engine = make_engine(proxy.url(mariadb_url), timeout_s=2)
    try:
        assert _one(engine) == 1
        proxy.cut()
        with pytest.raises(OperationalError):
            _one(engine)
        proxy.restore()
        assert _one(engine) == 1  # pool_pre_ping replaces the reset connection
    finally:
        engine.dispose()


def test_a_frozen_database_fails_a_query_after_the_driver_timeout(proxy: DatabaseProxy, mariadb_url: str) -> None:
    engine = make_engine(proxy.url(mariadb_url), timeout_s=1, pool_pre_ping=False)
    try:
        assert _one(engine) == 1
        proxy.freeze()
        failed = threading.Event()

        def query() -> None:
            try:
                _one(engine)
            except OperationalError:
                failed.set()

        worker = threading.Thread(target=query, daemon=True)
        worker.start()
        worker.join(timeout=30)  # without driver timeouts this thread would hang for ever
        assert failed.is_set()
        proxy.restore()
    finally:
        engine.dispose()
