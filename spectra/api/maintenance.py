"""MaintenanceWindow: planned work; alerts are suppressed, uptime excludes it, pages show it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import ClassVar, Literal

from dateutil.rrule import rrulestr
from pydantic import ConfigDict, Field, field_validator, model_validator

from spectra.api.base import (
    AGE_COLUMN,
    DNS_SUBDOMAIN,
    READY_COLUMN,
    ApiModel,
    AwareDateTime,
    FieldError,
    KindInfo,
    LabelSelector,
    PrinterColumn,
    Resource,
    StatusBase,
    TimeZoneName,
)
from spectra.api.durations import LongDuration

# A fixed DTSTART only to check that the rule parses; occurrences are computed from `start`.
_PARSE_ANCHOR = datetime(2026, 1, 1)


def parse_rrule_text(text: str) -> str:
    """Check an RFC 5545 RRULE (with or without the `RRULE:` prefix); return it without the prefix."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if "\n" in body or "DTSTART" in body.upper():
        raise ValueError("give only the RRULE (start and time zone are separate fields)")
    freq = re.search(r"(?:^|;)FREQ=([A-Z]+)", body.upper())
    if freq is None:
        raise ValueError("an RRULE needs FREQ=, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2")
    if freq.group(1) in ("SECONDLY", "MINUTELY"):
        raise ValueError(f"FREQ={freq.group(1)} is too frequent for maintenance; use HOURLY or longer")
    try:
        rrulestr(body, dtstart=_PARSE_ANCHOR)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid RFC 5545 RRULE: {exc}") from None
    return body


class Recurrence(ApiModel):
    rrule: str = Field(
        description="RFC 5545 recurrence rule, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0.",
        min_length=1,
        max_length=1024,
    )
    duration: LongDuration = Field(
        description="Length of each occurrence, e.g. 2h: elapsed time, also on the nights the clocks change."
    )
    time_zone: TimeZoneName = Field(default="UTC", description="IANA zone the rule's hours are in (DST-aware).")
    start: AwareDateTime | None = Field(
        default=None,
        description="First possible occurrence (RRULE DTSTART). Default: when the window was applied.",
    )
    until: AwareDateTime | None = Field(default=None, description="No occurrences after this.")

    @field_validator("rrule")
    @classmethod
    def _rrule(cls, value: str) -> str:
        return parse_rrule_text(value)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("duration must be positive")
        return value


class MaintenanceWindowSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.recurrence) != (has(self.start) && has(self.end))",
                    "message": "give start and end for a one-off window, or recurrence, not both",
                },
                {
                    "rule": "!(has(self.start) && has(self.end)) || timestamp(self.start) < timestamp(self.end)",
                    "message": "end must be after start",
                    "fieldPath": ".end",
                },
            ]
        }
    )

    message: str | None = Field(
        default=None, description="What happens, shown on pages (markdown, sanitized).", max_length=8192
    )
    start: AwareDateTime | None = Field(default=None, description="Start of a one-off window (RFC 3339).")
    end: AwareDateTime | None = Field(default=None, description="End of a one-off window (RFC 3339).")
    recurrence: Recurrence | None = Field(default=None, description="Or: a repeating window.")
    monitors: list[str] = Field(
        default_factory=list, description="Monitors (same namespace) under maintenance.", max_length=500
    )
    monitor_selector: LabelSelector | None = Field(default=None, description="Or also: monitors with these labels.")
    status_pages: list[str] = Field(
        default_factory=list, description="StatusPages that announce the window.", max_length=50
    )
    notify_subscribers: bool = Field(default=False, description="Email page subscribers when the window starts.")

    @field_validator("monitors", "status_pages")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(DNS_SUBDOMAIN, name):
                raise ValueError(f"{name!r} is not an object name")
        return value

    @model_validator(mode="after")
    def _when_and_what(self) -> MaintenanceWindowSpec:
        one_off = self.start is not None or self.end is not None
        if one_off and self.recurrence is not None:
            raise FieldError("recurrence", "give start and end for a one-off window, or recurrence, not both")
        if not one_off and self.recurrence is None:
            raise FieldError("start", "give start and end, or a recurrence")
        if one_off and (self.start is None or self.end is None):
            raise FieldError("end" if self.end is None else "start", "a one-off window needs both start and end")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise FieldError("end", "end must be after start")
        if not self.monitors and self.monitor_selector is None and not self.status_pages:
            raise FieldError(
                "monitors", "name monitors, a monitorSelector or statusPages, or the window covers nothing"
            )
        return self


class MaintenanceWindowStatus(StatusBase):
    active: bool | None = Field(default=None, description="Whether the window is in effect now.")
    next_start: datetime | None = Field(default=None, description="Start of the next (or current) occurrence.")
    next_end: datetime | None = Field(default=None, description="End of that occurrence.")


class MaintenanceWindow(Resource):
    """Planned maintenance."""

    info: ClassVar[KindInfo] = KindInfo(
        plural="maintenancewindows",
        short_names=("mw", "maint"),
        columns=(
            PrinterColumn("Active", ".status.active", type="boolean"),
            # Text, not `date`: a `date` column shows ages and prints a future time as <invalid>.
            PrinterColumn("Start", ".status.nextStart", description="Start of the current or next occurrence (UTC)"),
            PrinterColumn("End", ".status.nextEnd", description="End of the current or next occurrence (UTC)"),
            READY_COLUMN,
            AGE_COLUMN,
        ),
    )
    kind: Literal["MaintenanceWindow"] = Field(description="MaintenanceWindow.")
    spec: MaintenanceWindowSpec = Field(description="When, what, and who is told.")
    status: MaintenanceWindowStatus | None = Field(default=None, description="Written by the operator.")
