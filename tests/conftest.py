"""Fixtures every test directory shares: real databases, the Kubernetes emulator, and the tiers.

Databases: `database_url` runs a test once on SQLite and once on MariaDB (127.0.0.1:3306);
`engine` -> `sessions` -> `session` is the one migrated database on it. Alembic migrates one template
per backend and session (the real path); each test gets a fresh copy of that schema (a file copy on
SQLite, the template's own CREATE TABLE statements on MariaDB), which is several times faster than
migrating per test. A test that needs only one backend says so with
`tests.support.databases.sqlite_only`; tests of the migrations themselves call `upgrade` directly.

Tiers (markers, set here from what a test uses; modules outside tests/e2e that start `spectra` or a
browser add theirs with `pytestmark`):
- `mariadb`: uses MariaDB;  `kube`: uses kubectl/helm or the API emulator;
- `e2e`: starts real spectra processes (tests/e2e, tests/test_cli.py, the bench smoke test);
- `browser`: drives Chromium (set in the module);
- `faults`: fault injection on real processes (tests/faults: database outages and freezes, provider
  errors and hangs, stopped processes, clock skew); also `e2e`;
- `fuzz`: property tests over hostile input and the bounded fuzzing run of `spectra validate`
  (tests/fuzz; the run starts the real command, so it is also `e2e`).
The inner loop is `pytest -m "not e2e"`; CI runs everything.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
import sqlalchemy as sa
from anyio.from_thread import BlockingPortal, start_blocking_portal
from sqlalchemy.orm import Session, sessionmaker

from spectra.store import make_engine, session_factory, upgrade
from tests.support.fake_dns import FakeDns
from tests.support.processes import Target
from tests.support.providers import Providers
from tests.support.services import MARIADB_HINT, MARIADB_URL, missing_service

if TYPE_CHECKING:
    from tests.support.kube import ClusterEmulator, KubeTools

TESTS = Path(__file__).resolve().parent
E2E = TESTS / "e2e"
FAULTS = TESTS / "faults"
FUZZ = TESTS / "fuzz"
_FIXTURE_MARKERS = {"mariadb_url": "mariadb", "mariadb_server": "mariadb", "kube_tools": "kube", "cluster": "kube"}


# Modules whose tests must all run on one xdist worker, by the name of their group: an expensive
# module-scoped fixture is then built once, not once per worker (the quick bench's report, the
# walkthrough's cluster); and the two saturation measurements (the quick bench's and the probe test's),
# which each pin a probe to core 0 and its target to core 1, never run at once: sharing the cores, neither
# would measure its own probe alone.
ONE_WORKER_MODULES: Final = {
    "tests/test_bench.py": "saturation",
    "tests/probe/test_saturation.py": "saturation",
    "tests/test_walkthrough.py": "walkthrough",
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`pytest -n 2 --dist load` (scripts/test): tests are handed out one at a time, except the modules of
    each ONE_WORKER_MODULES group, handed out together. Written here rather than with `xdist_group` marks
    and `--dist loadgroup`, which pytest-xdist 3.8 ignores under pytest 9.2 (pytest-dev/pytest-xdist#1386:
    the node-id suffix it groups by no longer takes). Other `--dist` modes are left to xdist."""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerModules(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return ONE_WORKER_MODULES.get(nodeid.split("::", 1)[0], nodeid)

    return OneWorkerModules(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            marker = _FIXTURE_MARKERS.get(fixture)
            if marker is not None:
                item.add_marker(marker)
        if item.path.is_relative_to(E2E):
            item.add_marker("e2e")
        if item.path.is_relative_to(FAULTS):
            item.add_marker("e2e")
            item.add_marker("faults")
        if item.path.is_relative_to(FUZZ):
            item.add_marker("fuzz")
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database_url") == "mariadb":
            item.add_marker("mariadb")


# --- databases ---------------------------------------------------------------------------------


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    """An event loop in a thread, for calling an app's async client from synchronous tests."""
    with start_blocking_portal() as running:
        yield running


@pytest.fixture(scope="session", autouse=True)
def _data_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`spectra run` without SPECTRA_SECRET_KEY keeps a key under XDG_DATA_HOME (spectra.runtime.kept_key):
    the processes tests start keep theirs in the test run's own place, never in the home directory."""
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data-home"))


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


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("migrated") / "spectra.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def migrated_mariadb(mariadb_server: str) -> tuple[tuple[str, ...], str]:
    """(CREATE TABLE statements, revision) of a database Alembic migrated to head (then dropped)."""
    name = f"spectra_template_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(mariadb_server)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        upgrade(f"{mariadb_server}{name}?charset=utf8mb4")
        with admin.connect() as conn:
            tables = [row[0] for row in conn.execute(sa.text(f"SHOW TABLES FROM `{name}`"))]
            statements = tuple(
                conn.execute(sa.text(f"SHOW CREATE TABLE `{name}`.`{table}`")).one()[1] for table in tables
            )
            revision = str(conn.execute(sa.text(f"SELECT version_num FROM `{name}`.alembic_version")).scalar_one())
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()
    return statements, revision


def _copy_schema(request: pytest.FixtureRequest, database_url: str) -> None:
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), url.database)
        return
    statements, revision = request.getfixturevalue("migrated_mariadb")
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
            for statement in statements:
                conn.exec_driver_sql(statement)  # as MariaDB wrote it: no bind-parameter parsing
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
            conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": revision})
    finally:
        engine.dispose()


@pytest.fixture
def engine(request: pytest.FixtureRequest, database_url: str) -> Iterator[sa.Engine]:
    """An engine on a fresh database with the schema at head (migrated through Alembic once per session)."""
    _copy_schema(request, database_url)
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


# --- what the end-to-end and fault tests drive -------------------------------------------------------------


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    """A real HTTP server in its own process (tests/support/processes.py), started; the test may stop it."""
    server = Target(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def providers() -> Iterator[Providers]:
    """The SendGrid and Twilio stand-ins on 127.0.0.1 (`providers.env()` points a spectra process at them)."""
    fakes = Providers()
    yield fakes
    fakes.close()


@pytest.fixture
async def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """A stub resolver on the running loop for this test (tests/support/fake_dns.py)."""
    loop = asyncio.get_running_loop()
    fake = FakeDns(loop.getaddrinfo)
    monkeypatch.setattr(loop, "getaddrinfo", fake.getaddrinfo)
    return fake
