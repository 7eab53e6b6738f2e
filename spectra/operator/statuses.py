"""The live facts the operator writes into each custom resource's ``.status``, read from the store.

:func:`collect` reads every kind at once in a fixed number of queries (never one per object) and
answers, per ``(kind, namespace, name)``, JSON-ready camelCase dicts shaped like the kind's status
model in :mod:`spectra.api` (``conditions`` and ``observedGeneration`` are the caller's). Keys whose
value is unknown are present with ``None`` so a merge patch clears what an earlier cycle wrote.
Times are RFC 3339 in UTC with ``Z``, whole seconds, so equal facts compare equal between cycles.

Facts are split in two: ``major`` facts should be published as soon as they change (state, open
incident, who is on call, ...); ``minor`` ones may be refreshed lazily (last check, uptime, ...).

Uptime uses the status pages' weighting (:class:`spectra.domain.uptime.Counts`: a degraded
check counts as half an outage), summed over locations. ``uptime24h`` reads the hourly rollups of the
current UTC hour and the 23 before it; ``uptime30d`` the daily rollups of today and the 29 days
before. A bucket (hour or day) that a maintenance window covering the monitor overlaps is left out,
as status pages leave out days. Housekeeping refreshes the current buckets every minute.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.api.escalation import EscalationPolicySpec
from spectra.api.organization import OrganizationSpec
from spectra.api.schedule import ScheduleSpec
from spectra.api.statuspage import StatusPageSpec
from spectra.domain.components import MAINTENANCE, component_monitors, component_state, overall_state
from spectra.domain.maintenance import WindowDef, in_maintenance, load_windows, window_occurrences
from spectra.domain.monitors import MonitorRef
from spectra.domain.uptime import Counts, counts_outside_maintenance, uptime_text
from spectra.oncall import StoredOverride, every_stored_override, next_handoff, on_call, with_stored
from spectra.runtime.timefmt import rfc3339
from spectra.store import (
    OPEN_STATES,
    DailyRollup,
    HourlyRollup,
    Incident,
    Monitor,
    MonitorOverview,
    Resource,
    monitor_overview,
)
from spectra.store import MonitorState as StateRow

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name); namespace "" for Organization
UPTIME_KEYS: Final = ("uptime24h", "uptime30d")

HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)
# How far ahead the next occurrence of a maintenance window is looked for (widening: rules are cheap
# over short spans, and a frequent rule finds its next occurrence in the first).
_NEXT_OCCURRENCE_HORIZONS: Final = (timedelta(days=2), timedelta(days=60), timedelta(days=800))
_SPEC_KINDS: Final = ("Schedule", "EscalationPolicy", "StatusPage", "MaintenanceWindow", "Organization")


@dataclass(frozen=True)
class Facts:
    """One object's status facts: ``major`` ones to publish promptly, ``minor`` ones lazily."""

    major: dict[str, Any]
    minor: dict[str, Any]

    def merged(self) -> dict[str, Any]:
        return {**self.major, **self.minor}


@dataclass(frozen=True)
class _MonitorRow:
    ref: MonitorRef
    target: str
    source: str


@dataclass(frozen=True)
class _SpecRow:
    kind: str
    namespace: str
    name: str
    source: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class _OpenIncident:
    monitor_id: int | None
    namespace: str
    policy: str | None
    code: str


def collect(
    session: Session,
    now: datetime,
    *,
    public_url: str | None = None,
    source: str | None = "cluster",
    uptime: bool = True,
) -> dict[Key, Facts]:
    """The facts of every stored object of ``source`` (None: of every source), by (kind, namespace, name).

    ``public_url`` is where the web serves status pages (``https://status.example.com``); without it
    a page without hostnames has no ``url``. Monitors and pages of other sources still count where
    they matter (page components, organization usage, maintenance). ``uptime=False`` leaves the
    monitors' UPTIME_KEYS out: their two aggregations are half the cost, and they move slowly.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    now = now.astimezone(UTC)

    def wanted(row_source: str) -> bool:
        return source is None or row_source == source

    monitors = _load_monitors(session)
    overview = {(o.namespace, o.name): o for o in monitor_overview(session, now)}
    windows = load_windows(session)
    rows = _load_spec_rows(session)
    incidents = _open_incidents(session)
    overrides = every_stored_override(session, after=now)

    maintained = {m.ref.id for m in monitors if in_maintenance(windows, m.ref, now)}
    # What page components see: "maintenance" wins over every state, as on the status pages.
    page_states: dict[int, str] = {}
    for m in monitors:
        combined = overview.get((m.ref.namespace, m.ref.name))
        if m.ref.id in maintained:
            page_states[m.ref.id] = MAINTENANCE
        elif combined is not None:
            page_states[m.ref.id] = combined.state

    out: dict[Key, Facts] = {}
    selected = [m for m in monitors if wanted(m.source)]
    if selected:
        out.update(
            _monitor_facts(
                session,
                now,
                monitors=selected,
                overview=overview,
                maintained=maintained,
                incidents=incidents,
                windows=windows,
                uptime=uptime,
            )
        )

    by_namespace: dict[str, list[MonitorRef]] = {}
    for m in monitors:
        by_namespace.setdefault(m.ref.namespace, []).append(m.ref)
    context = _Context(
        now=now,
        public_url=public_url,
        monitors=by_namespace,
        page_states=page_states,
        windows={(w.namespace, w.name): w for w in windows},
        policy_incidents=Counter((i.namespace, i.policy) for i in incidents if i.policy is not None),
        monitor_counts=Counter(m.ref.namespace for m in monitors),
        page_counts=Counter(row.namespace for row in rows if row.kind == "StatusPage"),
        overrides=overrides,
    )
    for row in rows:
        if not wanted(row.source):
            continue
        try:
            facts = _spec_facts(row, context)
        except (ValidationError, ValueError) as exc:
            log.warning("%s %s/%s: stored spec is not usable: %s", row.kind, row.namespace, row.name, exc)
            continue
        if facts is not None:
            out[(row.kind, row.namespace, row.name)] = facts
    return out


@dataclass(frozen=True)
class _Context:
    """What the kinds other than Monitor read, loaded once per :func:`collect`."""

    now: datetime
    public_url: str | None
    monitors: Mapping[str, Sequence[MonitorRef]]  # every monitor, by namespace
    page_states: Mapping[int, str]  # monitor id -> state as page components see it
    windows: Mapping[tuple[str, str], WindowDef]
    policy_incidents: Counter[tuple[str, str | None]]  # unresolved incidents by (namespace, policy)
    monitor_counts: Counter[str]  # by namespace, every source
    page_counts: Counter[str]
    overrides: Mapping[tuple[str, str], list[StoredOverride]]  # taken in the console or the API, by schedule


def _spec_facts(row: _SpecRow, context: _Context) -> Facts | None:
    """The facts of one non-Monitor object; raises ValidationError when its stored spec does not validate."""
    if row.kind == "Schedule":
        spec = with_stored(ScheduleSpec.model_validate(row.spec), context.overrides.get((row.namespace, row.name), []))
        handoff = next_handoff(spec, context.now)
        return Facts({"onCallNow": on_call(spec, context.now)}, {"nextHandoff": rfc3339(handoff)})
    if row.kind == "EscalationPolicy":
        steps = len(EscalationPolicySpec.model_validate(row.spec).steps)  # `kubectl get` shows the count
        return Facts({"steps": steps, "openIncidents": context.policy_incidents.get((row.namespace, row.name), 0)}, {})
    if row.kind == "StatusPage":
        return _page_facts(row.namespace, StatusPageSpec.model_validate(row.spec), context)
    if row.kind == "MaintenanceWindow":
        window = context.windows.get((row.namespace, row.name))
        return _window_facts(window, context.now) if window is not None else None  # load_windows logged why
    if row.kind == "Organization":
        namespaces = set(OrganizationSpec.model_validate(row.spec).namespaces)
        usage = {
            "monitors": sum(context.monitor_counts[ns] for ns in namespaces),
            "statusPages": sum(context.page_counts[ns] for ns in namespaces),
        }
        return Facts({"usage": usage}, {})
    return None


# --- reads -------------------------------------------------------------------------------------


def _load_monitors(session: Session) -> list[_MonitorRow]:
    stmt = select(
        Monitor.resource_id, Monitor.namespace, Monitor.name, Monitor.labels, Monitor.target, Resource.source
    ).join(Resource, Resource.id == Monitor.resource_id)
    return [
        _MonitorRow(MonitorRef(row.resource_id, row.namespace, row.name, row.labels or {}), row.target, row.source)
        for row in session.execute(stmt)
    ]


def _load_spec_rows(session: Session) -> list[_SpecRow]:
    stmt = (
        select(Resource.kind, Resource.namespace, Resource.name, Resource.source, Resource.spec)
        .where(Resource.kind.in_(_SPEC_KINDS))
        .order_by(Resource.kind, Resource.namespace, Resource.name)
    )
    return [_SpecRow(row.kind, row.namespace, row.name, row.source, row.spec or {}) for row in session.execute(stmt)]


def _open_incidents(session: Session) -> list[_OpenIncident]:
    """Unresolved (open or acknowledged) incidents, oldest first."""
    i = Incident
    stmt = select(i.monitor_id, i.namespace, i.escalation_policy, i.code).where(i.state.in_(OPEN_STATES)).order_by(i.id)
    return [
        _OpenIncident(row.monitor_id, row.namespace, row.escalation_policy, row.code) for row in session.execute(stmt)
    ]


def _certificates(session: Session) -> dict[int, tuple[int | None, datetime | None]]:
    """(days left, expiry) of the newest check that reported a certificate, per monitor."""
    s = StateRow
    expires = s.facts["certificate_expires_at"].as_string()
    stmt = select(s.monitor_id, s.last_check_at, s.facts["certificate_days_left"].as_integer(), expires).where(
        expires.is_not(None)
    )
    newest: dict[int, tuple[datetime | None, int | None, datetime | None]] = {}
    for monitor_id, checked, days, expiry_text in session.execute(stmt):
        try:
            expiry = datetime.fromisoformat(expiry_text)
        except (TypeError, ValueError):
            expiry = None
        if expiry is not None and expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        seen = newest.get(monitor_id)
        if seen is None or (checked is not None and (seen[0] is None or checked > seen[0])):
            newest[monitor_id] = (checked, None if days is None else int(days), expiry)
    return {monitor_id: (days, expiry) for monitor_id, (_, days, expiry) in newest.items()}


# --- per kind ----------------------------------------------------------------------------------


def _monitor_facts(
    session: Session,
    now: datetime,
    *,
    monitors: Sequence[_MonitorRow],
    overview: Mapping[tuple[str, str], MonitorOverview],
    maintained: set[int],
    incidents: Sequence[_OpenIncident],
    windows: Sequence[WindowDef],
    uptime: bool,
) -> dict[Key, Facts]:
    refs = [m.ref for m in monitors]
    hour = now.replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    day_counts: Mapping[int, Counts] = {}
    month_counts: Mapping[int, Counts] = {}
    if uptime:
        day_counts = counts_outside_maintenance(
            session, model=HourlyRollup, start=hour - 23 * HOUR, step=HOUR, count=24, monitors=refs, windows=windows
        )
        month_counts = counts_outside_maintenance(
            session, model=DailyRollup, start=day - 29 * DAY, step=DAY, count=30, monitors=refs, windows=windows
        )
    certificates = _certificates(session)
    codes = {i.monitor_id: i.code for i in incidents if i.monitor_id is not None}  # the newest wins
    out: dict[Key, Facts] = {}
    for m in monitors:
        ref = m.ref
        combined = overview.get((ref.namespace, ref.name))
        state = combined.state if combined is not None else "pending"
        if state != "paused" and ref.id in maintained:
            state = MAINTENANCE
        latency = combined.last_latency_ms if combined is not None else None
        days_left, expiry = certificates.get(ref.id, (None, None))
        major = {
            "state": state,
            "target": combined.target if combined is not None else m.target,
            "openIncident": codes.get(ref.id),
            "certificateDaysLeft": days_left,
        }
        minor = {
            "lastCheck": rfc3339(combined.last_check_at if combined is not None else None),
            "lastLatencyMs": None if latency is None else round(latency, 1),
            "certificateExpiry": rfc3339(expiry),
        }
        if uptime:
            minor["uptime24h"] = uptime_text(day_counts.get(ref.id))
            minor["uptime30d"] = uptime_text(month_counts.get(ref.id))
        out[("Monitor", ref.namespace, ref.name)] = Facts(major, minor)
    return out


def _page_facts(namespace: str, spec: StatusPageSpec, context: _Context) -> Facts:
    monitors, states, public_url = context.monitors, context.page_states, context.public_url
    components = [
        {
            "name": component.name,
            "state": component_state(states.get(m.id) for m in component_monitors(namespace, component, monitors)),
        }
        for group in spec.groups
        for component in group.components
    ]
    if spec.hostnames:
        url: str | None = f"https://{spec.hostnames[0]}/"
    elif public_url:
        url = f"{public_url.rstrip('/')}/s/{spec.slug}"
    else:
        url = None
    overall = overall_state(c["state"] for c in components)
    return Facts({"url": url, "overall": overall, "components": components}, {})


def _window_facts(window: WindowDef, now: datetime) -> Facts:
    current = window.occurrence_at(now)
    span: tuple[datetime, datetime] | None = (current.start, current.end) if current is not None else None
    for horizon in _NEXT_OCCURRENCE_HORIZONS:
        if span is not None:
            break
        upcoming = [occ for occ in window_occurrences(window, now, now + horizon) if occ[0] >= now]
        span = upcoming[0] if upcoming else None
    return Facts(
        {"active": current is not None},
        {"nextStart": rfc3339(span[0] if span else None), "nextEnd": rfc3339(span[1] if span else None)},
    )
