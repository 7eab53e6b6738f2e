"""Lists of ids go into IN (...) in slices: SQLite caps the bound parameters of one statement."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from typing import Final, TypeVarTuple

from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import InstrumentedAttribute

CHUNK: Final = 900

Columns = TypeVarTuple("Columns")


def id_chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    """The distinct ids, sorted, in lists of at most CHUNK."""
    items = sorted(set(ids))
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def whole_or_by_ids(
    statement: Select[*Columns], column: InstrumentedAttribute[int] | ColumnElement[int], ids: Collection[int] | None
) -> list[Select[*Columns]]:
    """``statement`` alone when ``ids`` is None (every row), else one copy per chunk of ``ids`` limited to
    them. Each statement keeps its ORDER BY, but rows come chunk after chunk: sort across them if it matters."""
    if ids is None:
        return [statement]
    return [statement.where(column.in_(chunk)) for chunk in id_chunks(ids)]
