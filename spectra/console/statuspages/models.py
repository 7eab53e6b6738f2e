"""The JSON API's bodies, queries and answers for status pages (`/api/v1/status-pages...`).

Every field is camelCase on the wire (`startedAt`, `messageHtml`, ...), as the rest of /api/v1 (the public
page's JSON, spectra.console.web_api, included): answers are dumped `by_alias`, bodies accept only the
camelCase names. Keys inside values (a component's name in `componentImpacts`) are data and stay as named.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from pydantic.alias_generators import to_camel

from spectra.store.statuspages import MAINTENANCE_TITLE_LEN

from . import service
from .service import IncidentInfo, MaintenanceInfo, PageInfo

Impact = Literal["degraded", "partial_outage", "major_outage"]
OpenStatus = Literal["investigating", "identified", "monitoring"]


class _Body(BaseModel):
    """A request body: camelCase names only (a snake_case one is an unknown field, refused)."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", strict=True, frozen=True)


class _Answer(BaseModel):
    """An answer: built by field name, dumped (and read back by clients) by its camelCase alias."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


# --- queries ----------------------------------------------------------------------------------------------


class ListQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=500, description="How many items (1..500).")
    cursor: str | None = Field(default=None, description="The previous page's `next` cursor (opaque).")


# --- bodies -----------------------------------------------------------------------------------------------


class IncidentBody(_Body):
    title: StrictStr = Field(max_length=service.TITLE_MAX)
    components: dict[StrictStr, Impact] = Field(description="Each affected component and its impact.")
    status: OpenStatus = "investigating"
    message: StrictStr = Field(max_length=service.MESSAGE_MAX, description="Markdown (sanitized on the page).")
    notify: StrictBool = Field(default=True, description="Email the page's subscribers.")


class UpdateBody(_Body):
    status: OpenStatus
    message: StrictStr = Field(max_length=service.MESSAGE_MAX)
    notify: StrictBool = True


class ResolveBody(_Body):
    message: StrictStr = Field(max_length=service.MESSAGE_MAX)
    notify: StrictBool = True


class PostmortemBody(_Body):
    postmortem: StrictStr = Field(max_length=service.MESSAGE_MAX, description="Markdown; empty removes it.")


class MaintenanceBody(_Body):
    title: StrictStr = Field(max_length=MAINTENANCE_TITLE_LEN)
    components: list[StrictStr] = Field(max_length=500)
    until: StrictStr = Field(description="A time with its offset (RFC 3339) or a duration from now: 90m, 2h, 1d.")
    message: StrictStr = Field(default="", max_length=service.MESSAGE_MAX)


# --- answers ----------------------------------------------------------------------------------------------


class ComponentOut(_Answer):
    name: str
    group: str
    state: str


class PageOut(_Answer):
    namespace: str
    name: str
    slug: str
    title: str
    public: bool
    overall: str
    url: str = Field(description="The public page (relative to this server).")
    components: list[ComponentOut]
    active_incidents: int
    maintenance_now: int

    @classmethod
    def of(cls, page: PageInfo) -> PageOut:
        return cls(
            namespace=page.namespace,
            name=page.name,
            slug=page.slug,
            title=page.title,
            public=page.public,
            overall=page.overall,
            url=page.public_path,
            components=[ComponentOut(name=c.name, group=c.group, state=c.state) for c in page.components],
            active_incidents=page.active_incidents,
            maintenance_now=page.maintenance_now,
        )


class PageList(_Answer):
    items: list[PageOut]
    next: str | None


class UpdateOut(_Answer):
    id: int
    at: datetime
    status: str
    message: str
    message_html: str
    author: str | None


class IncidentOut(_Answer):
    id: int
    title: str
    status: str
    impact: str
    source: str
    components: list[str]
    component_impacts: dict[str, str] | None
    started_at: datetime
    resolved_at: datetime | None
    updates: list[UpdateOut]
    postmortem: str | None
    postmortem_html: str | None
    postmortem_at: datetime | None

    @classmethod
    def of(cls, incident: IncidentInfo) -> IncidentOut:
        return cls(
            id=incident.id,
            title=incident.title,
            status=incident.state,
            impact=incident.impact,
            source=incident.source,
            components=list(incident.components),
            component_impacts=dict(incident.component_impacts) if incident.component_impacts is not None else None,
            started_at=incident.started_at,
            resolved_at=incident.resolved_at,
            updates=[
                UpdateOut(
                    id=u.id, at=u.at, status=u.state, message=u.message, message_html=u.message_html, author=u.author
                )
                for u in incident.updates
            ],
            postmortem=incident.postmortem,
            postmortem_html=incident.postmortem_html,
            postmortem_at=incident.postmortem_at,
        )


class IncidentList(_Answer):
    items: list[IncidentOut]
    next: str | None


class MaintenanceOut(_Answer):
    id: int
    title: str
    message: str | None
    components: list[str]
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None
    started_by: str
    ended_by: str | None
    active: bool

    @classmethod
    def of(cls, found: MaintenanceInfo) -> MaintenanceOut:
        return cls(
            id=found.id,
            title=found.title,
            message=found.message,
            components=list(found.components),
            starts_at=found.starts_at,
            ends_at=found.ends_at,
            ended_at=found.ended_at,
            started_by=found.started_by,
            ended_by=found.ended_by,
            active=found.active,
        )
