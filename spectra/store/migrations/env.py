"""Alembic environment: runs our migrations on a shared connection or on a URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from spectra.store import Base  # the package imports every model module, filling Base.metadata
from spectra.store.engine import database_url, make_engine, normalize_url, set_sqlite_foreign_keys

config = context.config


def _url() -> str:
    explicit = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    return normalize_url(database_url(explicit)).render_as_string(hide_password=False)


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    # Batch mode rebuilds SQLite tables (copy, drop, rename); with foreign keys on, dropping the
    # old table would fire ON DELETE CASCADE into child tables. Only possible outside a transaction.
    toggle_fks = sqlite and not connection.in_transaction()
    if toggle_fks:
        set_sqlite_foreign_keys(connection, False)
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            # Our engine emits BEGIN itself (see engine.py), so SQLite DDL is transactional: the
            # whole upgrade commits or rolls back as one.
            transactional_ddl=True if sqlite else None,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows violating foreign keys: {broken[:5]}")
    finally:
        if toggle_fks:
            if connection.in_transaction():  # only reads are left open (e.g. by autogenerate)
                connection.rollback()
            set_sqlite_foreign_keys(connection, True)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=Base.metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    shared = config.attributes.get("connection")
    if isinstance(shared, Connection):
        _run(shared)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
