"""Dialect-aware INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from spectra.store.types import MYSQL_DIALECTS

Executor = Session | Connection
# A column set from an expression on a clash: given the incoming row's columns (SQLite's ``excluded``,
# MySQL's ``VALUES()``), it may also read the stored row's (``table.c``).
Computed = Callable[[Any], ColumnElement[Any]]


def connection_of(executor: Executor) -> Connection:
    """The Connection behind a Session (joining its transaction) or the Connection itself."""
    return executor.connection() if isinstance(executor, Session) else executor


class UnsupportedDatabase(ValueError):
    """The store runs on SQLite and MySQL/MariaDB only."""

    def __init__(self, dialect_name: str) -> None:
        super().__init__(f"SpectraMonitor stores data in SQLite or MySQL/MariaDB, not {dialect_name}")


def upsert_statement(
    dialect_name: str,
    table: Table,
    *,
    key: Sequence[str],
    update: Sequence[str],
    computed: Mapping[str, Computed] | None = None,
) -> Insert:
    """An INSERT that, when a row with the same ``key`` exists, overwrites the ``update`` columns and sets
    the ``computed`` ones from their expressions.

    ``key`` names the primary key or unique constraint rows collide on (SQLite needs it as the
    conflict target). MySQL ignores it and reacts to a clash on *any* unique key, so only use this on
    tables where ``key`` is the only way two rows can collide. Empty ``update`` and ``computed``: keep the
    old row. Computed columns are assigned first: MySQL evaluates its assignments in order, so an
    expression reading a stored column sees its value from before the update, as SQLite's always do.
    """
    computed = computed or {}
    if dialect_name == "sqlite":
        lite = sqlite.insert(table)
        if not update and not computed:
            return lite.on_conflict_do_nothing(index_elements=list(key))
        set_ = {name: expression(lite.excluded) for name, expression in computed.items()}
        set_.update({name: lite.excluded[name] for name in update})
        return lite.on_conflict_do_update(index_elements=list(key), set_=set_)
    if dialect_name in MYSQL_DIALECTS:
        my = mysql.insert(table)
        if not update and not computed:
            # A self-assignment is MySQL's "do nothing" that still reports the clash as handled.
            return my.on_duplicate_key_update({key[0]: table.c[key[0]]})
        ordered = [(name, expression(my.inserted)) for name, expression in computed.items()]
        ordered.extend((name, my.inserted[name]) for name in update)
        return my.on_duplicate_key_update(ordered)
    raise UnsupportedDatabase(dialect_name)


def upsert(
    executor: Executor,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
    update: Sequence[str] | None = None,
    computed: Mapping[str, Computed] | None = None,
) -> None:
    """Insert ``rows`` in one executemany, updating rows whose ``key`` already exists.

    ``update`` defaults to every column of the first row that is not part of ``key`` or ``computed``;
    columns left out (e.g. ``created_at``) keep their stored value on update. All rows must have the same
    keys. ``computed``: see :func:`upsert_statement`.
    """
    if not rows:
        return
    computed = computed or {}
    if update is None:
        update = [name for name in rows[0] if name not in key and name not in computed]
    conn = connection_of(executor)
    stmt = upsert_statement(conn.dialect.name, table, key=key, update=update, computed=computed)
    conn.execute(stmt, [dict(row) for row in rows])
