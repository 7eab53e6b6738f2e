"""Ids for IN (...) in slices of at most CHUNK: distinct, sorted, none lost."""

from __future__ import annotations

import pytest

from spectra.store.batches import CHUNK, id_chunks


def test_no_ids_no_chunks() -> None:
    assert list(id_chunks([])) == []


def test_ids_come_distinct_and_sorted() -> None:
    assert list(id_chunks([5, 3, 5, 1, 3])) == [[1, 3, 5]]
    assert list(id_chunks(iter({9, 2}))) == [[2, 9]]  # any iterable, consumed once


@pytest.mark.parametrize(
    ("count", "sizes"), [(CHUNK, [CHUNK]), (CHUNK + 1, [CHUNK, 1]), (2 * CHUNK + 7, [CHUNK, CHUNK, 7])]
)
def test_chunks_hold_at_most_chunk_ids_and_lose_none(count: int, sizes: list[int]) -> None:
    ids = list(range(count, 0, -1))
    chunks = list(id_chunks(ids))
    assert [len(chunk) for chunk in chunks] == sizes
    assert [i for chunk in chunks for i in chunk] == sorted(ids)


def test_a_chunk_fits_in_sqlite_s_oldest_parameter_limit() -> None:
    assert CHUNK < 999  # SQLITE_MAX_VARIABLE_NUMBER before 3.32, with room for the other parameters
