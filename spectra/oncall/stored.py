"""Overrides taken at runtime (in the console or the API) and kept in the store, beside a Schedule's
`spec.overrides`.

They join the spec's overrides in the one resolution (`on_call`, `next_handoff`, `timeline`): listed
after them, so on a tie of start times a stored override wins. One counts from its start until its end
(its expiry) unless cancelled; an expired or cancelled one decides nothing. Whoever resolves a Schedule
for paging, status or display merges them with `with_stored` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.api.schedule import Override, ScheduleSpec
from spectra.oncall.localtime import require_aware
from spectra.store import OncallOverride

ScheduleKey = tuple[str, str]  # (namespace, name)


class StoredOverride(Override):
    """An override of the store: the spec's fields plus where it came from."""

    id: int = Field(description="The stored override's id.")
    taken_by: str = Field(description="E-mail of the user who took it.")
    reason: str | None = Field(default=None, description="Why, as given.")

    @classmethod
    def of(cls, row: OncallOverride) -> StoredOverride:
        fields: dict[str, Any] = {
            "contact": row.contact_name,
            "start": row.starts_at,
            "end": row.ends_at,
            "id": row.id,
            "takenBy": row.taken_by,
            "reason": row.reason,
        }
        return cls.model_validate(fields)


def _counting(after: datetime) -> Any:
    return (OncallOverride.cancelled_at.is_(None)) & (OncallOverride.ends_at > require_aware(after, "after"))


def stored_overrides(session: Session, namespace: str, name: str, *, after: datetime) -> list[StoredOverride]:
    """The schedule's uncancelled overrides that end after `after`, oldest first."""
    rows = session.scalars(
        select(OncallOverride)
        .where(
            OncallOverride.schedule_namespace == namespace,
            OncallOverride.schedule_name == name,
            _counting(after),
        )
        .order_by(OncallOverride.starts_at, OncallOverride.id)
    )
    return [StoredOverride.of(row) for row in rows]


def every_stored_override(session: Session, *, after: datetime) -> dict[ScheduleKey, list[StoredOverride]]:
    """`stored_overrides` of every schedule at once (one query), by (namespace, name)."""
    found: dict[ScheduleKey, list[StoredOverride]] = {}
    rows = session.scalars(
        select(OncallOverride).where(_counting(after)).order_by(OncallOverride.starts_at, OncallOverride.id)
    )
    for row in rows:
        found.setdefault((row.schedule_namespace, row.schedule_name), []).append(StoredOverride.of(row))
    return found


def with_stored(schedule: ScheduleSpec, stored: Sequence[Override]) -> ScheduleSpec:
    """`schedule` with `stored` overrides after its own (unchanged when there are none)."""
    if not stored:
        return schedule
    return schedule.model_copy(update={"overrides": [*schedule.overrides, *stored]})


def resolved(session: Session, namespace: str, name: str, schedule: ScheduleSpec, *, after: datetime) -> ScheduleSpec:
    """The schedule `namespace/name` as it decides from `after` on: its spec and its stored overrides."""
    return with_stored(schedule, stored_overrides(session, namespace, name, after=after))


def stored_of(overrides: Iterable[Override]) -> list[StoredOverride]:
    """The stored ones among `overrides`."""
    return [override for override in overrides if isinstance(override, StoredOverride)]
