"""Lists of ids go into IN (...) in slices: SQLite caps the bound parameters of one statement."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

CHUNK: Final = 900


def id_chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    """The distinct ids, sorted, in lists of at most CHUNK."""
    items = sorted(set(ids))
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
