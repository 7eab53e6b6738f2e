"""What a refusal may change in the store: a snapshot of tables before and after, compared row by row,
with the changes the refusal is supposed to make named (an audit record of the failure, a throttle
count, a session revoked for reuse). Every other difference is reported.

    before = snapshot(sessions)
    ... the refused request ...
    assert unexpected_changes(before, snapshot(sessions), [Added("audit_log", {"action": "x"})]) == []

Rows are keyed by their primary key and compared column by column (values as the database returns
them), so a changed timestamp is as visible as a changed status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.store.base import Base

# Every table of people, sessions and the platform's switches, plus the two a refusal may add to.
ACCOUNT_TABLES: Final = (
    "users",
    "memberships",
    "sessions",
    "refresh_tokens",
    "api_tokens",
    "recovery_codes",
    "impersonations",
    "used_links",
    "global_maintenance",
    "organization_settings",
    "throttles",
    "audit_log",
)

Row = dict[str, Any]
Snapshot = dict[str, dict[tuple[Any, ...], Row]]


def snapshot(sessions: sessionmaker[Session], tables: Sequence[str] = ACCOUNT_TABLES) -> Snapshot:
    """Every row of `tables`, by table and primary key."""
    taken: Snapshot = {}
    with sessions() as session:
        for name in tables:
            table = Base.metadata.tables[name]
            key = [column.name for column in table.primary_key.columns]
            taken[name] = {
                tuple(row[column] for column in key): dict(row) for row in session.execute(select(table)).mappings()
            }
    return taken


@dataclass(frozen=True)
class Added:
    """One row added to `table` whose columns hold `values` (it must be there)."""

    table: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Updated:
    """Rows of `table` whose `columns` (only those) changed, holding `values` afterwards; at least one."""

    table: str
    columns: frozenset[str]
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AnyChange:
    """`table` may change in any way (a throttle's counts, for instance)."""

    table: str


Change = Added | Updated | AnyChange


def unexpected_changes(before: Snapshot, after: Snapshot, allowed: Sequence[Change] = ()) -> list[str]:
    """Every difference between the snapshots that `allowed` does not name, and every allowed Added or
    Updated that did not happen; [] when the store changed exactly as allowed."""
    problems: list[str] = []
    for table in before:
        if AnyChange(table) in allowed:
            continue
        old, new = before[table], after[table]
        problems += [f"{table}: row {key} removed: {old[key]}" for key in old.keys() - new.keys()]
        expected = [change for change in allowed if isinstance(change, Added) and change.table == table]
        for key in sorted(new.keys() - old.keys(), key=repr):
            row = new[key]
            match = next((added for added in expected if _holds(row, added.values)), None)
            if match is None:
                problems.append(f"{table}: row added: {row}")
            else:
                expected.remove(match)
        problems += [f"{table}: no row added with {dict(added.values)}" for added in expected]
        updates = [change for change in allowed if isinstance(change, Updated) and change.table == table]
        seen: set[int] = set()
        for key in sorted(old.keys() & new.keys(), key=repr):
            differ = {column for column in old[key] if old[key][column] != new[key][column]}
            if not differ:
                continue
            index = next(
                (i for i, update in enumerate(updates) if differ <= update.columns and _holds(new[key], update.values)),
                None,
            )
            if index is None:
                changed = {column: (old[key][column], new[key][column]) for column in sorted(differ)}
                problems.append(f"{table}: row {key} changed: {changed}")
            else:
                seen.add(index)
        problems += [f"{table}: no row changed as {update}" for i, update in enumerate(updates) if i not in seen]
    return problems


def _holds(row: Row, values: Mapping[str, Any]) -> bool:
    return all(row.get(column) == value for column, value in values.items())
