"""The shared status-page view model (read-only snapshots rendered by the public pages)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol


@dataclass(frozen=True)
class DayBar:  # one day of a component's uptime bar (in UTC days)
    day: date
    uptime: float | None  # 0..100; None = no data that day
    down_minutes: int  # weighted outage minutes (partial outage = degraded counts half)
    maintenance: bool  # some of the day was in maintenance (excluded from uptime)


@dataclass(frozen=True)
class ComponentView:
    name: str
    description_html: str | None  # sanitized
    state: str  # operational | degraded | partial_outage | major_outage | maintenance | unknown
    uptime_percent: float | None  # over the history window
    days: tuple[DayBar, ...]  # oldest first, historyDays long
    monitors: tuple[str, ...]  # "ns/name" — internal use only, never rendered


@dataclass(frozen=True)
class GroupView:
    name: str
    components: tuple[ComponentView, ...]


@dataclass(frozen=True)
class IncidentUpdateView:
    at: datetime
    state: str  # investigating|identified|monitoring|resolved
    body_html: str


@dataclass(frozen=True)
class PageIncidentView:
    id: int
    title: str
    state: str
    impact: str
    components: tuple[str, ...]
    started_at: datetime
    resolved_at: datetime | None
    updates: tuple[IncidentUpdateView, ...]
    postmortem_html: str | None = None  # sanitized; written after it was resolved


@dataclass(frozen=True)
class MaintenanceView:
    name: str
    message_html: str | None
    start: datetime
    end: datetime
    active: bool
    components: tuple[str, ...]


@dataclass(frozen=True)
class PlatformNotice:
    """Global maintenance's message, shown on every public page while it is in effect (plain text)."""

    message: str
    until: datetime | None


@dataclass(frozen=True)
class PageSnapshot:
    namespace: str
    name: str
    slug: str
    title: str
    description_html: str | None
    public: bool
    hostnames: tuple[str, ...]
    accent_color: str | None
    logo_url: str | None
    subscriptions_enabled: bool
    overall: str  # operational | degraded | partial_outage | major_outage | maintenance
    groups: tuple[GroupView, ...]
    active_incidents: tuple[PageIncidentView, ...]
    maintenance: tuple[MaintenanceView, ...]  # active and upcoming (next 14 days)
    past_incidents: tuple[tuple[date, tuple[PageIncidentView, ...]], ...]  # last 14 days, newest first, all days
    generated_at: datetime  # when the data was read
    stale: bool = False  # True when served from the last good snapshot because the database failed
    version: str = ""  # content hash: the ETag
    notice: PlatformNotice | None = None  # global maintenance's banner, when it asks to be shown


# --- what subscriptions and notices need of a page (PageSnapshot fits; tests pass smaller objects) ------


class _ComponentLike(Protocol):
    @property
    def name(self) -> str: ...


class _GroupLike(Protocol):
    @property
    def components(self) -> Sequence[_ComponentLike]: ...


class PageLike(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def public(self) -> bool: ...
    @property
    def subscriptions_enabled(self) -> bool: ...
    @property
    def accent_color(self) -> str | None: ...
    @property
    def groups(self) -> Sequence[_GroupLike]: ...


class PageSource(Protocol):
    def get(self, slug: str) -> PageLike | None: ...


def page_key(page: PageLike) -> str:
    return f"{page.namespace}/{page.name}"


def component_names(page: PageLike) -> list[str]:
    return [component.name for group in page.groups for component in group.components]


def accepts_subscriptions(page: PageLike | None) -> bool:
    return page is not None and page.public and page.subscriptions_enabled
