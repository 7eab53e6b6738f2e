"""The shared dialect-aware upsert helper."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import Resource, upsert, upsert_statement
from spectra.store.upsert import UnsupportedDatabase

RESOURCES = Resource.__table__
KEY = ("kind", "namespace", "name")
T1, T2 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)


def row(name: str, generation: int, at: datetime, spec_hash: str = "h1") -> dict[str, object]:
    return {
        "kind": "Monitor",
        "namespace": "default",
        "name": name,
        "generation": generation,
        "spec": {"generation": generation},
        "labels": {},
        "spec_hash": spec_hash,
        "source": "cluster",
        "created_at": at,
        "updated_at": at,
    }


def stored(session: Session) -> dict[str, tuple[object, ...]]:
    rows = session.execute(
        sa.select(Resource.name, Resource.generation, Resource.spec, Resource.created_at, Resource.updated_at)
    )
    return {r.name: (r.generation, r.spec, r.created_at, r.updated_at) for r in rows}


def test_inserts_new_rows_and_updates_existing_ones(session: Session) -> None:
    upsert(session, RESOURCES, [row("a", 1, T1), row("b", 1, T1)], key=KEY)
    ids = {row.name: row.id for row in session.execute(sa.select(Resource.name, Resource.id))}
    update = ["generation", "spec", "spec_hash", "updated_at"]  # created_at keeps its first value

    upsert(session, RESOURCES, [row("b", 2, T2, "h2"), row("c", 1, T2)], key=KEY, update=update)

    assert stored(session) == {
        "a": (1, {"generation": 1}, T1, T1),
        "b": (2, {"generation": 2}, T1, T2),
        "c": (1, {"generation": 1}, T2, T2),
    }
    assert session.scalar(sa.select(Resource.id).where(Resource.name == "b")) == ids["b"]  # updated in place


def test_default_update_is_every_non_key_column(session: Session) -> None:
    upsert(session, RESOURCES, [row("a", 1, T1)], key=KEY)
    upsert(session, RESOURCES, [row("a", 5, T2)], key=KEY)
    assert stored(session) == {"a": (5, {"generation": 5}, T2, T2)}


def test_empty_update_keeps_the_existing_row(session: Session) -> None:
    upsert(session, RESOURCES, [row("a", 1, T1)], key=KEY)
    upsert(session, RESOURCES, [row("a", 9, T2), row("b", 1, T2)], key=KEY, update=[])
    assert stored(session) == {"a": (1, {"generation": 1}, T1, T1), "b": (1, {"generation": 1}, T2, T2)}


def test_no_rows_is_a_no_op(session: Session) -> None:
    upsert(session, RESOURCES, [], key=KEY)
    assert stored(session) == {}


def test_works_on_a_plain_connection(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        upsert(conn, RESOURCES, [row("a", 1, T1)], key=KEY)
        upsert(conn, RESOURCES, [row("a", 2, T2)], key=KEY)
    with engine.connect() as conn:
        assert conn.execute(sa.select(Resource.generation)).scalar_one() == 2


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(UnsupportedDatabase, match="not postgresql"):
        upsert_statement("postgresql", RESOURCES, key=KEY, update=["spec"])
