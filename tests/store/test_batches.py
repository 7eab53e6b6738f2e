"""Ids for IN (...) in slices of at most CHUNK: distinct, sorted, none lost."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from spectra.store.batches import CHUNK, id_chunks, whole_or_by_ids


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


def test_whole_or_by_ids_reads_every_row_once_or_only_the_ids_given() -> None:
    engine = sa.create_engine("sqlite://")
    table = sa.Table("things", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i} for i in range(1, 2 * CHUNK + 8)])
        statement = sa.select(table.c.id).order_by(table.c.id.desc())

        [whole] = whole_or_by_ids(statement, table.c.id, None)
        wanted = [*range(2 * CHUNK + 7, 3, -2), 5_000_000]  # one id no row has
        chunks = whole_or_by_ids(statement, table.c.id, wanted)

        assert [row.id for row in conn.execute(whole)] == list(range(2 * CHUNK + 7, 0, -1))
        assert len(chunks) == 2
        got = [row.id for chunk in chunks for row in conn.execute(chunk)]
    assert sorted(got) == sorted(wanted[:-1])
    assert len(got) == len(set(got))
    assert whole_or_by_ids(statement, table.c.id, []) == []
