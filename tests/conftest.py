"""Fixtures every test directory shares: real databases, the Kubernetes emulator, and the tiers.

Databases: `database_url` runs a test once on SQLite and once on MariaDB (127.0.0.1:3306);
`engine` -> `sessions` -> `session` is the one migrated database (Alembic, the real path) on it.
A test that needs only one backend says so with `tests.support.databases.sqlite_only`.

Tiers (markers, set here from what a test uses, so none can be forgotten):
- `mariadb`: uses MariaDB;  `kube`: uses kubectl/helm or the API emulator;
- `e2e`: starts real spectra processes (everything under tests/e2e, and the bench smoke test);
- `browser`: drives Chromium (set in the module).
The inner loop is `pytest -m "not e2e"`; CI runs everything.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.store import make_engine, session_factory, upgrade
from tests.support.services import MARIADB_HINT, MARIADB_URL, missing_service

if TYPE_CHECKING:
    from tests.support.kube import ClusterEmulator, KubeTools

TESTS = Path(__file__).resolve().parent
E2E = TESTS / "e2e"
_FIXTURE_MARKERS = {"mariadb_url": "mariadb", "mariadb_server": "mariadb", "kube_tools": "kube", "cluster": "kube"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            marker = _FIXTURE_MARKERS.get(fixture)
            if marker is not None:
                item.add_marker(marker)
        if item.path.is_relative_to(E2E):
            item.add_marker("e2e")
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database_url") == "mariadb":
            item.add_marker("mariadb")


# --- databases ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mariadb_server() -> str:
    engine = sa.create_engine(MARIADB_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        missing_service(f"{MARIADB_HINT}: {exc.orig}")
    finally:
        engine.dispose()
    return MARIADB_URL


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
    """Runs a test once on SQLite and once on MariaDB (`sqlite_only` narrows it)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "mariadb_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on a fresh database migrated to head through Alembic (the real path)."""
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


# --- Kubernetes: the real kubectl/helm and an in-memory API server (tests/support/kube.py) --------
# Imported when used, so that runs without these fixtures do not load kmock.


@pytest.fixture(scope="session")
def kube_tools() -> KubeTools:
    from tests.support.kube import ensure_kube_tools

    return ensure_kube_tools()


@pytest.fixture
def cluster(kube_tools: KubeTools, tmp_path: Path) -> Iterator[ClusterEmulator]:
    """A started Kubernetes API emulator with the CRDs, a `default` namespace and a kubeconfig."""
    from tests.support.kube import ClusterEmulator

    with ClusterEmulator(kube_tools, tmp_path / "cluster") as emulator:
        yield emulator
