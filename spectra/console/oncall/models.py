"""The on-call JSON API's queries, bodies and answers (pydantic), field for field what it answers.

Field names are camelCase on the wire, as the rest of /api/v1 (`timeZone`, `onCall`, `takenBy`, ...):
answers are built in Python by field name and dumped by alias; bodies accept the camelCase names only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from pydantic.alias_generators import to_camel

from spectra.store.oncall_overrides import OVERRIDE_REASON_LEN

from .service import (
    TIMELINE_DAYS,
    TIMELINE_DAYS_MAX,
    MyShift,
    OverrideView,
    Person,
    ScheduleNow,
    ShiftView,
    Timeline,
)

PAGE_MAX = 500
PAGE_DEFAULT = 50


class _Answer(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True, frozen=True
    )


class PersonOut(_Answer):
    name: str = Field(description="The Contact's name.")
    display_name: str | None = Field(description="The Contact's display name; null when no such Contact exists.")

    @classmethod
    def of(cls, person: Person) -> PersonOut:
        return cls(name=person.name, display_name=person.display_name)


class OverrideOut(_Answer):
    id: int
    contact: PersonOut
    start: datetime
    end: datetime = Field(description="When it expires.")
    taken_by: str = Field(description="E-mail of the user who took it.")
    reason: str | None
    created_at: datetime
    cancellable: bool = Field(description="Whether the caller may cancel it.")

    @classmethod
    def of(cls, override: OverrideView) -> OverrideOut:
        return cls(
            id=override.id,
            contact=PersonOut.of(override.contact),
            start=override.start,
            end=override.end,
            taken_by=override.taken_by,
            reason=override.reason,
            created_at=override.created_at,
            cancellable=override.cancellable,
        )


class ScheduleOut(_Answer):
    namespace: str
    name: str
    time_zone: str
    description: str | None
    source: str = Field(description="Where the Schedule comes from (files:PATH or cluster).")
    on_call: list[PersonOut] = Field(description="Who is on call now (empty: nobody).")
    next_handoff: datetime | None = Field(description="When that next changes; null: not within 5 weeks.")
    overrides: list[OverrideOut] = Field(description="Overrides taken in the console or the API, current or to come.")

    @classmethod
    def of(cls, schedule: ScheduleNow) -> ScheduleOut:
        return cls(
            namespace=schedule.namespace,
            name=schedule.name,
            time_zone=schedule.time_zone,
            description=schedule.description,
            source=schedule.source,
            on_call=[PersonOut.of(person) for person in schedule.on_call],
            next_handoff=schedule.next_handoff,
            overrides=[OverrideOut.of(override) for override in schedule.overrides],
        )


class ScheduleList(_Answer):
    items: list[ScheduleOut]
    next: str | None = Field(description="The next page's relative URL; null on the last page.")


class ShiftOut(_Answer):
    start: datetime
    end: datetime
    contact: PersonOut | None = Field(description="Who is on call; null: nobody.")
    override: Literal["spec", "stored"] | None = Field(
        description="Decided by an override of the manifest (spec) or taken in the console or the API (stored)."
    )
    override_id: int | None = Field(description="The stored override's id.")
    mine: bool = Field(description="Whether the caller is the one on call.")

    @classmethod
    def of(cls, shift: ShiftView) -> ShiftOut:
        return cls(
            start=shift.start,
            end=shift.end,
            contact=PersonOut.of(shift.contact) if shift.contact is not None else None,
            override=shift.override,
            override_id=shift.override_id,
            mine=shift.mine,
        )


class TimelineOut(_Answer):
    schedule: ScheduleOut
    start: datetime
    end: datetime
    shifts: list[ShiftOut]

    @classmethod
    def of(cls, found: Timeline) -> TimelineOut:
        return cls(
            schedule=ScheduleOut.of(found.schedule),
            start=found.start,
            end=found.end,
            shifts=[ShiftOut.of(shift) for shift in found.shifts],
        )


class MyShiftOut(_Answer):
    namespace: str
    schedule: str
    start: datetime
    end: datetime
    contact: str
    override: Literal["spec", "stored"] | None

    @classmethod
    def of(cls, shift: MyShift) -> MyShiftOut:
        return cls(
            namespace=shift.namespace,
            schedule=shift.schedule,
            start=shift.start,
            end=shift.end,
            contact=shift.contact,
            override=shift.override,
        )


class MyShiftList(_Answer):
    items: list[MyShiftOut]
    next: str | None = Field(description="The next page's relative URL; null on the last page.")
    calendar: str = Field(description="Relative URL of the caller's iCalendar feed (signed; no sign-in needed).")


class OverrideTaken(_Answer):
    override: OverrideOut


class OverrideCancelled(_Answer):
    id: int
    cancelled_at: datetime


# --- queries and bodies --------------------------------------------------------------------------------


class PageQuery(BaseModel):
    limit: int = Field(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX)
    cursor: str | None = Field(default=None, description="The previous page's `next` cursor.")


class TimelineQuery(BaseModel):
    days: int = Field(default=TIMELINE_DAYS, ge=1, le=TIMELINE_DAYS_MAX)
    at: datetime | None = Field(default=None, description="Where the timeline starts (with an offset); default now.")


class MyShiftsQuery(PageQuery):
    days: int = Field(default=TIMELINE_DAYS, ge=1, le=TIMELINE_DAYS_MAX)


class OverrideBody(BaseModel):
    # By alias only, so a snake_case spelling of a camelCase field is an unknown field, not a silent twin.
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=False, validate_by_alias=True, extra="forbid", strict=True,
        frozen=True,
    )  # fmt: skip

    until: StrictStr = Field(
        description="When it ends: a time of day in the schedule's zone (18:00), a duration (90m, 2h, 1d) or a "
        "time with an offset (2026-03-02T18:00+01:00); at most 31 days ahead.",
        max_length=64,
    )
    contact: StrictStr | None = Field(default=None, description="Who takes it; default: the caller's own Contact.")
    reason: StrictStr | None = Field(default=None, max_length=OVERRIDE_REASON_LEN)
