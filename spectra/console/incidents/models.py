"""The JSON API's shapes for incidents: the list's query, the bodies of the actions, the answers.

Field for field what `api.py` answers (nullability included): the OpenAPI document is generated from these.
Every field is camelCase on the wire (`openedAt`, `acknowledgedBy`, ...), as the rest of /api/v1: answers
are dumped `by_alias`, bodies accept only the camelCase names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr
from pydantic.alias_generators import to_camel

from spectra.alerting.incidents import NOTE_MAX

from .service import (
    PAGE_DEFAULT,
    PAGE_MAX,
    Escalation,
    IncidentDetail,
    IncidentItem,
    MonitorInfo,
    Page,
    TimelineEntry,
)

State = Literal["open", "acknowledged", "resolved"]


class _Strict(BaseModel):
    """A request body: camelCase names only (a snake_case one is an unknown field, refused)."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", strict=True, frozen=True)


class _Answer(BaseModel):
    """An answer: built by field name, dumped (and read back by clients) by its camelCase alias."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class IncidentQuery(BaseModel):
    """GET /api/v1/incidents: filters (each optional) and the page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: State | None = Field(default=None, description="Only incidents in this state.")
    namespace: str | None = Field(default=None, max_length=253, description="Only this namespace's incidents.")
    monitor: str | None = Field(default=None, max_length=253, description="Only this monitor's (by name).")
    code: str | None = Field(default=None, max_length=16, description="The incident with this short code.")
    since: AwareDatetime | None = Field(default=None, description="Only incidents opened at or after this time.")
    limit: int = Field(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX)
    cursor: str | None = Field(default=None, max_length=400, description="`next` of the previous page.")


class NoteBody(_Strict):
    text: StrictStr = Field(max_length=NOTE_MAX, description="The note, plain text.")


class ReassignBody(_Strict):
    contact: StrictStr = Field(max_length=600, description="namespace/name of a Contact to page now.")


class IncidentModel(_Answer):
    id: int
    code: str
    title: str
    namespace: str
    monitor: str
    severity: str
    state: State
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None

    @classmethod
    def of(cls, item: IncidentItem) -> IncidentModel:
        return cls.model_validate(item, from_attributes=True)


class Counts(_Answer):
    open: int
    acknowledged: int
    resolved: int


class IncidentList(_Answer):
    items: list[IncidentModel]
    next: str | None = Field(description="The next page's URL (relative), or null on the last page.")
    counts: Counts = Field(description="Incidents per state within the filters other than state.")


class TimelineModel(_Answer):
    at: datetime
    type: str
    message: str
    actor: str | None
    channel: str | None

    @classmethod
    def of(cls, entry: TimelineEntry) -> TimelineModel:
        return cls.model_validate(entry, from_attributes=True)


class AttemptModel(_Answer):
    at: datetime
    outcome: str
    status_code: int | None
    error: str | None


class NotificationModel(_Answer):
    id: int
    created_at: datetime
    channel: str
    recipient: str
    kind: str
    status: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None
    tries: list[AttemptModel]

    @classmethod
    def of(cls, page: Page) -> NotificationModel:
        return cls.model_validate(page, from_attributes=True)


class EscalationModel(_Answer):
    status: str
    step: int
    repeat: int
    next_step_at: datetime | None
    steps: int
    policy: str | None

    @classmethod
    def of(cls, escalation: Escalation) -> EscalationModel:
        return cls.model_validate(escalation, from_attributes=True)


class LocationModel(_Answer):
    location: str
    state: str
    last_check_at: datetime | None
    reason: str


class MonitorModel(_Answer):
    namespace: str
    name: str
    exists: bool
    paused: bool
    locations: list[LocationModel]

    @classmethod
    def of(cls, monitor: MonitorInfo) -> MonitorModel:
        return cls.model_validate(monitor, from_attributes=True)


class IncidentDetailModel(IncidentModel):
    timeline: list[TimelineModel]
    notifications: list[NotificationModel]
    escalation: EscalationModel | None
    monitor_state: MonitorModel

    @classmethod
    def of_detail(cls, detail: IncidentDetail) -> IncidentDetailModel:
        return cls(
            **IncidentModel.of(detail.incident).model_dump(),
            timeline=[TimelineModel.of(entry) for entry in detail.timeline],
            notifications=[NotificationModel.of(page) for page in detail.pages],
            escalation=None if detail.escalation is None else EscalationModel.of(detail.escalation),
            monitor_state=MonitorModel.of(detail.monitor),
        )
