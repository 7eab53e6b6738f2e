"""Page snapshots: everything a status page shows, read in a handful of queries and cached.

:func:`build_all` reads, for every page at once: the StatusPage resources, the monitors, the
maintenance windows, the monitors' current states (``monitor_overview``), the daily rollups of the
longest history window (one grouped query), and the page incidents with their updates (two
queries). Nothing is queried per component or per day.

:class:`SnapshotCache` is what the web pages use: it rebuilds every page at most once per ``ttl_s``,
in one thread at a time (requests that arrive while the first build runs wait for it, and then
serve it), and when the database fails it keeps serving the last good snapshots with
``stale=True`` (and no snapshot at all before the first success): never an error page, never an
"operational" it did not read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Final

from sqlalchemy import or_, select, tuple_
from sqlalchemy.orm import Session, selectinload, sessionmaker

from spectra.domain import global_maintenance
from spectra.domain.components import component_state, overall_state, worst_state
from spectra.domain.maintenance import WindowDef, window_occurrences
from spectra.domain.monitors import MonitorRef
from spectra.domain.uptime import day_start
from spectra.runtime.loop import FailureLog
from spectra.statuspage.markdown import render_markdown
from spectra.statuspage.model import (
    ComponentView,
    GroupView,
    IncidentUpdateView,
    MaintenanceView,
    PageIncidentView,
    PageSnapshot,
    PlatformNotice,
)
from spectra.statuspage.stored_pages import PageDef, load_pages, pages_monitors
from spectra.statuspage.uptime import component_days, history_days, load_daily_counts, maintenance_days
from spectra.store import PageIncident
from spectra.store.clock import database_now

log = logging.getLogger(__name__)

PAST_INCIDENT_DAYS: Final = 14
UPCOMING_MAINTENANCE: Final = timedelta(days=14)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=4096)
def _markdown(text: str) -> str:
    return render_markdown(text)


def _markdown_or_none(text: str | None) -> str | None:
    return _markdown(text) if text else None


def build_snapshot(session: Session, namespace: str, name: str, now: datetime) -> PageSnapshot:
    """The snapshot of one page; LookupError when there is no such (usable) page."""
    pages = [page for page in load_pages(session) if (page.namespace, page.name) == (namespace, name)]
    if not pages:
        raise LookupError(f"no status page {namespace}/{name}")
    return _build(session, pages, now)[0]


def build_all(session: Session, now: datetime) -> dict[str, PageSnapshot]:
    """Every page's snapshot, by slug (on a duplicate slug the first page by namespace/name wins)."""
    out: dict[str, PageSnapshot] = {}
    for snapshot in _build(session, load_pages(session), now):
        if snapshot.slug in out:
            log.warning("status page %s/%s: slug %r is taken", snapshot.namespace, snapshot.name, snapshot.slug)
            continue
        out[snapshot.slug] = snapshot
    return out


def build_pages(session: Session, pages: Sequence[PageDef], now: datetime) -> list[PageSnapshot]:
    """The snapshots of `pages` (from `load_pages`), in their order."""
    return _build(session, pages, now)


def _build(session: Session, pages: Sequence[PageDef], now: datetime) -> list[PageSnapshot]:
    if not pages:
        return []
    now = now.astimezone(UTC)
    found = pages_monitors(session, pages, now)
    used, states, windows = found.used, found.states, found.windows
    longest = max(page.spec.history_days for page in pages)
    all_days = history_days(now, longest)
    counts = load_daily_counts(session, used, all_days[0], all_days[-1])
    maintenance = maintenance_days(windows, used.values(), all_days[0], all_days[-1])
    incidents = _load_incidents(session, pages, now)
    # One read per build: snapshots are themselves cached (SnapshotCache), so no cache is needed here.
    platform = global_maintenance.current(session, now=now)
    notice = PlatformNotice(platform.message, platform.until) if platform.banner is not None else None
    snapshots: list[PageSnapshot] = []
    for page in pages:
        days = all_days[-page.spec.history_days :]
        groups: list[GroupView] = []
        for group in page.spec.groups:
            views: list[ComponentView] = []
            for component in group.components:
                refs = found.of(page, component)
                ids = [m.id for m in refs]
                bars, uptime = component_days(ids, days, counts, maintenance, now)
                views.append(
                    ComponentView(
                        name=component.name,
                        description_html=_markdown_or_none(component.description),
                        state=component_state(states.get(i) for i in ids),
                        uptime_percent=uptime,
                        days=bars,
                        monitors=tuple(m.ref for m in refs),
                    )
                )
            groups.append(GroupView(group.name, tuple(views)))
        refs_by_component = [
            (component.name, found.of(page, component)) for group in page.spec.groups for component in group.components
        ]
        page_incidents = incidents.get((page.namespace, page.name), [])
        groups = _with_posted_impacts(groups, page_incidents)
        snapshots.append(
            _page_snapshot(
                page,
                groups=groups,
                refs_by_component=refs_by_component,
                incidents=page_incidents,
                windows=windows,
                notice=notice,
                now=now,
            )
        )
    return snapshots


def _page_snapshot(
    page: PageDef,
    *,
    groups: list[GroupView],
    refs_by_component: Sequence[tuple[str, Sequence[MonitorRef]]],
    incidents: list[PageIncident],
    windows: Sequence[WindowDef],
    notice: PlatformNotice | None,
    now: datetime,
) -> PageSnapshot:
    spec = page.spec
    active = tuple(_incident_view(i) for i in incidents if i.resolved_at is None)
    today = now.date()
    past_days = [today - timedelta(days=offset) for offset in range(PAST_INCIDENT_DAYS)]
    by_day: dict[date, list[PageIncidentView]] = {day: [] for day in past_days}
    for incident in sorted(incidents, key=lambda i: (i.started_at, i.id), reverse=True):
        if incident.resolved_at is not None:
            day = incident.started_at.astimezone(UTC).date()
            if day in by_day:
                by_day[day].append(_incident_view(incident))
    components = [c for g in groups for c in g.components]
    snapshot = PageSnapshot(
        namespace=page.namespace,
        name=page.name,
        slug=spec.slug,
        title=spec.title,
        description_html=_markdown_or_none(spec.description),
        public=spec.public,
        hostnames=tuple(spec.hostnames),
        accent_color=spec.branding.accent_color,
        logo_url=spec.branding.logo_url,
        subscriptions_enabled=spec.subscriptions.enabled,
        overall=overall_state(c.state for c in components),
        groups=tuple(groups),
        active_incidents=active,
        maintenance=_maintenance_views(page, refs_by_component, windows, now),
        past_incidents=tuple((day, tuple(by_day[day])) for day in past_days),
        generated_at=now,
        notice=notice,
    )
    return dataclasses.replace(snapshot, version=snapshot_version(snapshot))


def snapshot_version(snapshot: PageSnapshot) -> str:
    """A hash of what the page shows (not of when it was read): the ETag."""
    groups = tuple(
        (
            group.name,
            tuple(
                (
                    c.name,
                    c.description_html,
                    c.state,
                    c.uptime_percent,
                    c.monitors,
                    tuple((bar.day.toordinal(), bar.uptime, bar.down_minutes, bar.maintenance) for bar in c.days),
                )
                for c in group.components
            ),
        )
        for group in snapshot.groups
    )
    rest = dataclasses.replace(snapshot, groups=(), generated_at=_EPOCH, stale=False, version="")
    return hashlib.sha256(repr((groups, rest)).encode()).hexdigest()[:32]


def _load_incidents(
    session: Session, pages: Sequence[PageDef], now: datetime
) -> dict[tuple[str, str], list[PageIncident]]:
    """Unresolved incidents and those started in the last PAST_INCIDENT_DAYS days, with their updates."""
    since = day_start(now.date() - timedelta(days=PAST_INCIDENT_DAYS - 1))
    keys = [(page.namespace, page.name) for page in pages]
    stmt = (
        select(PageIncident)
        .where(or_(PageIncident.resolved_at.is_(None), PageIncident.started_at >= since))
        .options(selectinload(PageIncident.updates))
        .order_by(PageIncident.started_at.desc(), PageIncident.id.desc())
    )
    if len(keys) == 1:
        stmt = stmt.where(PageIncident.page_namespace == keys[0][0], PageIncident.page_name == keys[0][1])
    elif len(keys) <= 100:
        stmt = stmt.where(tuple_(PageIncident.page_namespace, PageIncident.page_name).in_(keys))
    wanted = set(keys)
    out: dict[tuple[str, str], list[PageIncident]] = {}
    for incident in session.scalars(stmt):
        key = (incident.page_namespace, incident.page_name)
        if key in wanted:
            out.setdefault(key, []).append(incident)
    return out


def _with_posted_impacts(groups: list[GroupView], incidents: Sequence[PageIncident]) -> list[GroupView]:
    """Components that an unresolved incident posted by hand says are impacted show that impact when it is
    worse than what their monitors measure (a person knows of an outage no monitor sees)."""
    posted: dict[str, str] = {}
    for incident in incidents:
        if incident.resolved_at is None:
            for name, impact in (incident.component_impacts or {}).items():
                posted[name] = worst_state((posted.get(name, impact), impact))
    if not posted:
        return groups
    return [
        dataclasses.replace(
            group,
            components=tuple(
                dataclasses.replace(c, state=worst_state((c.state, posted[c.name]))) if c.name in posted else c
                for c in group.components
            ),
        )
        for group in groups
    ]


def _incident_view(incident: PageIncident) -> PageIncidentView:
    """The view of an incident; updates newest first."""
    updates = sorted(incident.updates, key=lambda u: (u.at, u.id), reverse=True)
    return PageIncidentView(
        id=incident.id,
        title=incident.title,
        state=incident.state,
        impact=incident.impact,
        components=tuple(incident.components or ()),
        started_at=incident.started_at,
        resolved_at=incident.resolved_at,
        updates=tuple(IncidentUpdateView(u.at, u.state, _markdown(u.body)) for u in updates),
        postmortem_html=_markdown_or_none(incident.postmortem) if incident.resolved_at is not None else None,
    )


def _maintenance_views(
    page: PageDef,
    refs_by_component: Sequence[tuple[str, Sequence[MonitorRef]]],
    windows: Sequence[WindowDef],
    now: datetime,
) -> tuple[MaintenanceView, ...]:
    """Occurrences of the windows that list this page, active now or starting in the next 14 days."""
    views: list[MaintenanceView] = []
    for window in windows:
        if window.namespace != page.namespace or page.name not in window.spec.status_pages:
            continue
        covered = tuple(
            name for name, refs in refs_by_component if any(window.covers(m.namespace, m.name, m.labels) for m in refs)
        )
        for start, end in window_occurrences(window, now, now + UPCOMING_MAINTENANCE):
            views.append(
                MaintenanceView(
                    name=window.name,
                    message_html=_markdown_or_none(window.spec.message),
                    start=start,
                    end=end,
                    active=start <= now < end,
                    components=covered,
                )
            )
    return tuple(sorted(views, key=lambda v: (v.start, v.name)))


class SnapshotCache:
    """Snapshots of every page, rebuilt at most every ``ttl_s`` seconds; stale ones when the database fails."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        ttl_s: float = 5,
        *,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = session_factory
        self._ttl = ttl_s
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._by_slug: dict[str, PageSnapshot] = {}
        self._by_host: dict[str, PageSnapshot] = {}
        self._loaded = False
        self._checked_at: float | None = None
        self._failures = FailureLog("status pages: reading the database (serving the last snapshots as stale)", log)

    def get(self, slug: str) -> PageSnapshot | None:
        self._refresh_if_due()
        return self._by_slug.get(slug)

    def by_host(self, host: str) -> PageSnapshot | None:
        """The page that lists ``host`` (a Host header: any port and trailing dot are ignored)."""
        self._refresh_if_due()
        name = host.strip().lower()
        if name.startswith("["):
            return None
        name = name.rsplit(":", 1)[0] if ":" in name else name
        return self._by_host.get(name.rstrip("."))

    def all(self) -> dict[str, PageSnapshot]:
        self._refresh_if_due()
        return dict(self._by_slug)

    def invalidate(self) -> None:
        """Rebuild on the next read (e.g. after an incident update in this process)."""
        self._checked_at = None

    def refresh(self) -> bool:
        """Rebuild now; False (and the last snapshots marked stale) when the database failed."""
        with self._lock:
            return self._refresh()

    def _refresh_if_due(self) -> None:
        if not self._loaded:
            # Nothing to serve yet: wait for a build in progress (the first one starts as the process does)
            # rather than answer 404 for a page that exists; build when none has been tried within the TTL.
            with self._lock:
                if not self._loaded and self._due():
                    self._refresh()
            return
        if not self._due():
            return
        # Only one thread rebuilds; the others serve what there is meanwhile.
        if self._lock.acquire(blocking=False):
            try:
                if self._due():
                    self._refresh()
            finally:
                self._lock.release()

    def _due(self) -> bool:
        return self._checked_at is None or self._monotonic() - self._checked_at >= self._ttl

    def _refresh(self) -> bool:
        self._checked_at = self._monotonic()
        try:
            with self._sessions() as session:
                # The database's clock by default: "still reporting" compares with times the probes stored.
                snapshots = build_all(session, self._clock() if self._clock is not None else database_now(session))
                session.rollback()
        except Exception as error:
            self._failures.failed(error)
            self._set({slug: dataclasses.replace(s, stale=True) for slug, s in self._by_slug.items()})
            return False
        self._failures.succeeded()
        self._set(snapshots)
        self._loaded = True
        return True

    def _set(self, snapshots: dict[str, PageSnapshot]) -> None:
        by_host = {host: s for s in snapshots.values() for host in s.hostnames}
        self._by_slug, self._by_host = snapshots, by_host
