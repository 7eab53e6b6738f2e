"""Schema migrations through Alembic, configured in code (no alembic.ini)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine

from spectra.store.engine import database_url, make_engine

SCRIPT_LOCATION: Final = "spectra.store:migrations"

# A URL, an engine, or a connection to share (e.g. a test's); None means database_url(None).
Target = str | URL | Engine | Connection | None


def alembic_config(connection: Connection | None = None, url: str | URL | None = None) -> Config:
    """An Alembic Config for our migrations; env.py uses ``connection`` if given, else ``url``."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    # Via attributes, not set_main_option: configparser would choke on '%' in passwords.
    if connection is not None:
        config.attributes["connection"] = connection
    if url is not None:
        config.attributes["url"] = url
    return config


def upgrade(url: Target = None, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (default: the newest)."""
    with _connect(url) as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(url: Target, revision: str) -> None:
    """Migrate the database down to ``revision`` ("-1" for one step, "base" for empty)."""
    with _connect(url) as connection:
        command.downgrade(alembic_config(connection), revision)


def upgrade_sql(url: str | URL, revision: str = "head") -> str:
    """The SQL :func:`upgrade` would run from an empty database, for DBAs who apply it by hand."""
    config = alembic_config(url=url)
    config.output_buffer = io.StringIO()
    command.upgrade(config, revision, sql=True)
    return config.output_buffer.getvalue()


def current_revision(url: Target = None) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    with _connect(url) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision shipped with this version of SpectraMonitor."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {SCRIPT_LOCATION}")
    return head


@contextmanager
def _connect(target: Target) -> Iterator[Connection]:
    if isinstance(target, Connection):
        yield target
        return
    engine = target if isinstance(target, Engine) else make_engine(database_url(None) if target is None else target)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        if engine is not target:
            engine.dispose()
