"""Migrations create exactly the models' schema, on SQLite and MariaDB, and undo it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session, sessionmaker

from spectra.store import (
    Base,
    CheckResult,
    current_revision,
    downgrade,
    head_revision,
    insert_results,
    make_engine,
    upgrade,
)
from spectra.store.migrate import alembic_config, upgrade_sql
from tests.factories.store import NOW

MODEL_TABLES = set(Base.metadata.tables)


def schema_diff(url: str, metadata: sa.MetaData = Base.metadata) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def previous_revision(revision: str) -> str | None:
    script = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    assert script is not None
    down = script.down_revision
    assert down is None or isinstance(down, str)
    return down


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_matches_models_and_downgrade_undoes_it(database_url: str) -> None:
    assert current_revision(database_url) is None

    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    assert table_names(database_url) == MODEL_TABLES | {"alembic_version"}
    assert schema_diff(database_url) == []

    downgrade(database_url, "-1")
    assert current_revision(database_url) == previous_revision(head_revision())
    downgrade(database_url, "base")
    assert current_revision(database_url) is None
    assert table_names(database_url) == {"alembic_version"}

    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    assert schema_diff(database_url) == []


def test_comparison_would_catch_a_drifted_model(database_url: str) -> None:
    """Negative control: the empty diff above means something only if drift shows up."""
    upgrade(database_url)
    drifted = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["monitors"].c.severity.type = sa.String(64)
    drifted.tables["check_results"].append_constraint(sa.Index("ix_check_results_location", "location"))

    kinds = {_kind(entry) for entry in schema_diff(database_url, drifted)}

    assert kinds == {"modify_type", "add_index"}


def _kind(entry: object) -> str:
    # compare_metadata yields tuples, or lists of tuples for column modifications.
    first = entry[0] if isinstance(entry, list) else entry
    assert isinstance(first, tuple)
    return str(first[0])


def test_upgrade_on_a_shared_engine_and_connection(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            upgrade(conn)
            assert current_revision(conn) == head_revision()
        assert current_revision(engine) == head_revision()
        if engine.dialect.name == "sqlite":
            # The migration switches SQLite FK enforcement off for batch rebuilds; it must come back.
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    assert schema_diff(database_url) == []


def test_downgrade_keeps_monitors_and_results(engine: sa.Engine, sessions: sessionmaker[Session]) -> None:
    """0002's downgrade rebuilds tables on SQLite: the rows of 0001's tables must survive it."""
    with sessions.begin() as session:
        session.execute(
            sa.text(
                "INSERT INTO resources (id, kind, namespace, name, generation, spec, labels, spec_hash, source,"
                " created_at, updated_at) VALUES (7, 'Monitor', 'default', 'm', 1, '{}', '{}', 'h', 's',"
                " '2024-05-01 12:00:00', '2024-05-01 12:00:00')"
            )
        )
        session.execute(
            sa.text(
                "INSERT INTO monitors (resource_id, namespace, name, type, target, interval_ms, timeout_ms, paused,"
                " quorum, failure_threshold, success_threshold, severity, labels, push_token_hash)"
                " VALUES (7, 'default', 'm', 'tcp', 'h:1', 1000, 500, 0, 1, 1, 1, 'critical', '{}', 'abc')"
            )
        )
        insert_results(
            session, [{"monitor_id": 7, "location": "eu", "checked_at": NOW, "status": "up", "scheduled_at": NOW}]
        )
    downgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM monitors")).scalars().all() == ["m"]
        assert conn.execute(sa.text("SELECT count(*) FROM check_results")).scalar() == 1
        assert "scheduled_at" not in {c["name"] for c in sa.inspect(conn).get_columns("check_results")}
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with sessions() as session:
        assert session.scalars(sa.select(CheckResult.scheduled_at)).all() == [None]


def test_mariadb_driverless_url_and_table_options(mariadb_url: str) -> None:
    """``mariadb://`` works like ``mysql://``; every table is InnoDB utf8mb4 with binary collation."""
    url = sa.make_url(mariadb_url).set(drivername="mariadb").render_as_string(hide_password=False)
    upgrade(url)
    assert schema_diff(url) == []
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT table_name, engine, table_collation FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name <> 'alembic_version'"
                )
            ).all()
    finally:
        engine.dispose()
    assert {row[0] for row in rows} == MODEL_TABLES
    assert {(row[1], row[2]) for row in rows} == {("InnoDB", "utf8mb4_bin")}


def test_constraint_names_follow_the_convention_and_fit_mysql() -> None:
    names: list[str] = []
    for table in Base.metadata.tables.values():
        names += [str(index.name) for index in table.indexes]
        names += [str(constraint.name) for constraint in table.constraints]
    assert all(len(name) <= 64 for name in names), [n for n in names if len(n) > 64]
    assert all(name.split("_", 1)[0] in {"ix", "uq", "ck", "fk", "pk"} for name in names)
    assert "uq_notifications_idempotency_key" in names
    assert "fk_check_results_monitor_id_monitors" in names


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://spectra:pw@db/spectra", ["DATETIME(6)", "ENGINE=InnoDB", "COLLATE utf8mb4_bin"]),
        ("sqlite:///offline.db", ["CREATE TABLE check_results", "CREATE INDEX ix_check_results_checked_at"]),
    ],
)
def test_offline_sql(url: str, expected: list[str]) -> None:
    sql = upgrade_sql(url)
    for fragment in expected:
        assert fragment in sql
    # + alembic_version; 0007 replaced the placeholder users and sessions tables of 0001
    assert sql.count("CREATE TABLE") - sql.count("DROP TABLE") == len(MODEL_TABLES) + 1


def test_migrations_ship_as_package_files() -> None:
    """A wheel only carries .py files of packages: migrations/ and versions/ must be packages."""
    setuptools = pytest.importorskip("setuptools")
    repo = Path(str(resources.files("spectra"))).parent
    packages = setuptools.find_packages(where=str(repo), include=["spectra*"])
    assert "spectra.store.migrations" in packages
    assert "spectra.store.migrations.versions" in packages
    migrations = resources.files("spectra.store.migrations")
    assert migrations.joinpath("env.py").is_file()
    assert migrations.joinpath("script.py.mako").is_file()
    assert migrations.joinpath("versions", "0001_initial.py").is_file()
    assert any(path.name.startswith(f"{head_revision()}_") for path in migrations.joinpath("versions").iterdir())
