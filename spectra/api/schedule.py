"""Schedule: on-call rotations with restrictions and overrides, in one time zone."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from spectra.api.base import (
    AGE_COLUMN,
    DNS_SUBDOMAIN,
    READY_COLUMN,
    ApiModel,
    AwareDateTime,
    ClockTime,
    FieldError,
    KindInfo,
    PrinterColumn,
    Resource,
    StatusBase,
    TimeZoneName,
)
from spectra.api.durations import LongDuration


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


class Restriction(ApiModel):
    """A layer is on call only inside these times (in the schedule's time zone)."""

    days: list[Weekday] = Field(
        default_factory=lambda: list(Weekday),
        description="Weekdays the window starts on. Default: every day.",
    )
    from_: ClockTime = Field(alias="from", description="Start of the window, HH:MM.")
    to: ClockTime = Field(description="End of the window, HH:MM; earlier than from means it ends the next day.")

    @model_validator(mode="after")
    def _not_empty(self) -> Restriction:
        if self.from_ == self.to:
            raise FieldError("to", "from and to are equal: the window would be empty")
        return self


class Layer(ApiModel):
    name: str = Field(description="Layer name, unique in the schedule.", min_length=1, max_length=63)
    participants: list[str] = Field(description="Contact names in rotation order.", min_length=1, max_length=100)
    start: date = Field(description="Date (in the schedule's zone) the first participant's turn begins.")
    rotation: LongDuration = Field(default=timedelta(weeks=1), description="Length of one turn, e.g. 1d or 1w.")
    handoff_time: ClockTime = Field(default="09:00", description="Wall-clock time turns change, HH:MM.")
    restrictions: list[Restriction] = Field(
        default_factory=list, description="Times the layer is on call. Default: always.", max_length=14
    )

    @field_validator("participants")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(DNS_SUBDOMAIN, name):
                raise ValueError(f"{name!r} is not a Contact name")
        return value

    @field_validator("rotation")
    @classmethod
    def _rotation(cls, value: timedelta) -> timedelta:
        if value < timedelta(hours=1):
            raise ValueError("a turn must last at least 1h")
        return value


class Override(ApiModel):
    contact: str = Field(description="Contact on call instead, during start..end.", pattern=DNS_SUBDOMAIN)
    start: AwareDateTime = Field(description="Start (RFC 3339, with offset).")
    end: AwareDateTime = Field(description="End (RFC 3339, with offset).")

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if self.end <= self.start:
            raise FieldError("end", "end must be after start")
        return self


class ScheduleSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.layers.all(a, self.layers.exists_one(b, a.name == b.name))",
                    "message": "layer names must be unique",
                }
            ]
        }
    )

    description: str | None = Field(default=None, description="What this rotation covers.", max_length=1024)
    time_zone: TimeZoneName = Field(default="UTC", description="IANA zone for handoffs and restrictions (DST-aware).")
    layers: list[Layer] = Field(
        description="Rotation layers; a later layer wins where it has someone on call.",
        min_length=1,
        max_length=10,
    )
    overrides: list[Override] = Field(
        default_factory=list, description="Temporary replacements; they win over every layer.", max_length=500
    )

    @field_validator("layers")
    @classmethod
    def _unique_layers(cls, layers: list[Layer]) -> list[Layer]:
        names = [layer.name for layer in layers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"layer name {name!r} is used twice")
        return layers


class ScheduleStatus(StatusBase):
    on_call_now: list[str] = Field(default_factory=list, description="Contacts on call right now.")
    next_handoff: datetime | None = Field(default=None, description="When the on-call person next changes.")


class Schedule(Resource):
    """Who is on call when."""

    info: ClassVar[KindInfo] = KindInfo(
        plural="schedules",
        short_names=("sched",),
        columns=(
            PrinterColumn("Zone", ".spec.timeZone"),
            PrinterColumn("On Call", ".status.onCallNow[*]", description="Who is on call now"),
            # Text, not `date`: a `date` column shows ages and prints a future time as <invalid>.
            PrinterColumn("Next Handoff", ".status.nextHandoff", description="When on call next changes (UTC)"),
            READY_COLUMN,
            AGE_COLUMN,
        ),
    )
    kind: Literal["Schedule"] = Field(description="Schedule.")
    spec: ScheduleSpec = Field(description="Layers and overrides.")
    status: ScheduleStatus | None = Field(default=None, description="Written by the operator.")
