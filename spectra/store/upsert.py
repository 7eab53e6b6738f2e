"""Dialect-aware INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from spectra.store.types import MYSQL_DIALECTS

Executor = Session | Connection


def connection_of(executor: Executor) -> Connection:
    """The Connection behind a Session (joining its transaction) or the Connection itself."""
    return executor.connection() if isinstance(executor, Session) else executor


class UnsupportedDatabase(ValueError):
    """The store runs on SQLite and MySQL/MariaDB only."""

    def __init__(self, dialect_name: str) -> None:
        super().__init__(f"SpectraMonitor stores data in SQLite or MySQL/MariaDB, not {dialect_name}")


def upsert_statement(dialect_name: str, table: Table, *, key: Sequence[str], update: Sequence[str]) -> Insert:
    """An INSERT that, when a row with the same ``key`` exists, overwrites the ``update`` columns.

    ``key`` names the primary key or unique constraint rows collide on (SQLite needs it as the
    conflict target). MySQL ignores it and reacts to a clash on *any* unique key, so only use this on
    tables where ``key`` is the only way two rows can collide. Empty ``update``: keep the old row.
    """
    if dialect_name == "sqlite":
        lite = sqlite.insert(table)
        if not update:
            return lite.on_conflict_do_nothing(index_elements=list(key))
        return lite.on_conflict_do_update(index_elements=list(key), set_={name: lite.excluded[name] for name in update})
    if dialect_name in MYSQL_DIALECTS:
        my = mysql.insert(table)
        if not update:
            # A self-assignment is MySQL's "do nothing" that still reports the clash as handled.
            return my.on_duplicate_key_update({key[0]: table.c[key[0]]})
        return my.on_duplicate_key_update({name: my.inserted[name] for name in update})
    raise UnsupportedDatabase(dialect_name)


def upsert(
    executor: Executor,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """Insert ``rows`` in one executemany, updating rows whose ``key`` already exists.

    ``update`` defaults to every column of the first row that is not part of ``key``; columns left out
    (e.g. ``created_at``) keep their stored value on update. All rows must have the same keys.
    """
    if not rows:
        return
    if update is None:
        update = [name for name in rows[0] if name not in key]
    conn = connection_of(executor)
    stmt = upsert_statement(conn.dialect.name, table, key=key, update=update)
    conn.execute(stmt, [dict(row) for row in rows])
