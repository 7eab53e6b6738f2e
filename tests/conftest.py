"""Shared fixtures: real databases (SQLite file, MariaDB on 127.0.0.1:3306)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.store import make_engine, session_factory, upgrade

if TYPE_CHECKING:
    from kube_harness import ClusterEmulator, KubeTools

REPO = Path(__file__).resolve().parent.parent
MARIADB_SERVER_URL = os.environ.get("SPECTRA_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
MARIADB_HINT = (
    "MariaDB is not reachable on 127.0.0.1:3306; start it with "
    "`start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` "
    "(scripts/test does this for you)"
)


def _missing_service(message: str) -> None:
    """In CI a missing service is a failure, locally a skip that says how to start it."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mariadb_server() -> str:
    engine = sa.create_engine(MARIADB_SERVER_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        _missing_service(f"{MARIADB_HINT}: {exc.orig}")
    finally:
        engine.dispose()
    return MARIADB_SERVER_URL


@pytest.fixture
def mariadb_url(mariadb_server: str) -> Iterator[str]:
    """A fresh, empty database per test, dropped afterwards."""
    name = f"spectra_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(mariadb_server)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    try:
        yield f"{mariadb_server}{name}?charset=utf8mb4"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'spectra.db'}"


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite and once on MariaDB."""
    fixture = "sqlite_url" if request.param == "sqlite" else "mariadb_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on a fresh database migrated to head through Alembic (the real path), on both backends."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sessions(engine: sa.Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


# Kubernetes: the real kubectl/helm and an in-memory API server (tests/kube_harness.py). Imported
# lazily so that runs without these fixtures do not load kmock.
@pytest.fixture(scope="session")
def kube_tools() -> KubeTools:
    from kube_harness import ensure_kube_tools

    return ensure_kube_tools()


@pytest.fixture
def cluster(kube_tools: KubeTools, tmp_path: Path) -> Iterator[ClusterEmulator]:
    """A started Kubernetes API emulator with the CRDs, a `default` namespace and a kubeconfig."""
    from kube_harness import ClusterEmulator

    with ClusterEmulator(kube_tools, tmp_path / "cluster") as emulator:
        yield emulator
