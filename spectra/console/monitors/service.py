"""What the overview and the monitor page show, read from the store (blocking: run in worker threads).

The caller proves who asks (`Principal`); only `spectra.auth.policy` decides what they may see: the
overview lists the monitors of `policy.visible_namespaces`, a monitor of another tenant is
`policy.NotFound`, like one that does not exist.

Latency per hour comes from the hourly rollups, which keep the count, sum and maximum of each hour's
latencies and their histogram: the chart shows p50 and p95 per hour and location, estimated from the
histogram (`spectra.domain.latency`), and the maximum; the mean stays as an extra. Hours rolled up before
the histograms existed have no percentiles (None: unknown, shown as such).
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Final, NamedTuple

import yaml
from sqlalchemy import String, and_, case, false, func, literal, or_, select, type_coerce
from sqlalchemy.orm import Session

from spectra.api import API_VERSION
from spectra.auth import policy
from spectra.auth.identity import Principal
from spectra.auth.policy import Action
from spectra.domain.latency import EMPTY, P50, P95, Histogram, quantiles
from spectra.domain.maintenance import load_windows, maintenance_buckets
from spectra.domain.monitors import MonitorRef
from spectra.domain.uptime import Counts, uptime_text
from spectra.store import (
    CheckResult,
    DailyRollup,
    HourlyRollup,
    Incident,
    Monitor,
    MonitorLocation,
    MonitorState,
    Resource,
)
from spectra.store.clock import database_now
from spectra.store.overview import STALE_INTERVALS, combined_state, explaining_check, location_judgement
from spectra.store.results import HISTOGRAM_COLUMNS

STATES: Final = ("down", "degraded", "pending", "up", "paused")  # the overview's order: worst first
HOUR: Final = timedelta(hours=1)
UPTIME_WINDOWS: Final = (("24h", 1), ("7d", 7), ("30d", 30), ("90d", 90))
PAGE_ROWS: Final = 200  # overview rows drawn per page (counts cover every match)
RECENT_CHECKS: Final = 20
INCIDENT_HISTORY: Final = 20
MAX_CHECKS_PAGE: Final = 500
REDACTED: Final = "[hidden]"
_SECRETISH: Final = ("password", "secret", "token", "apikey", "api_key", "credential")


# --- the overview ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The overview's query (GET parameters); empty strings mean "any"."""

    state: str = ""
    type: str = ""
    namespace: str = ""
    label: str = ""  # "key=value" or "key" (has the label)
    q: str = ""  # in the name or target, case-insensitive
    group: str = ""  # a label key to group by (within each namespace)
    page: int = 1

    def label_pair(self) -> tuple[str, str | None] | None:
        if not self.label:
            return None
        key, sep, value = self.label.partition("=")
        return (key.strip(), value.strip() if sep else None)


@dataclass(frozen=True)
class LocationState:
    location: str
    state: str
    last_check_at: datetime | None
    reporting: bool
    latency_ms: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class MonitorLine:
    """One monitor as the overview lists it."""

    id: int
    namespace: str
    name: str
    type: str
    target: str
    paused: bool
    state: str
    last_check_at: datetime | None
    latency_ms: float | None
    reason: str
    labels: Mapping[str, str]
    locations: tuple[LocationState, ...]

    def group_value(self, key: str) -> str:
        return self.labels.get(key, "") if key else ""


@dataclass(frozen=True)
class IncidentLine:
    id: int
    code: str
    namespace: str
    monitor_name: str
    title: str
    severity: str
    state: str
    opened_at: datetime


@dataclass(frozen=True)
class Group:
    namespace: str
    label: str  # the group label's value ("" when not grouped by a label, or the monitor has none)
    monitors: tuple[MonitorLine, ...]


@dataclass
class Overview:
    filters: Filters
    counts: dict[str, int]  # per state, over every monitor the viewer may see (what live updates keep current)
    total: int  # monitors matching every filter
    groups: list[Group]
    incidents: list[IncidentLine]
    namespaces: list[str]  # every visible namespace with monitors (the filter's choices)
    types: list[str]
    label_keys: list[str]
    pages: int = 1
    monitors: list[MonitorLine] = field(default_factory=list)  # the page's monitors, in order


def _visible_clause(namespaces: policy.Namespaces) -> Any:
    if isinstance(namespaces, policy.AllNamespaces):
        return None
    return Monitor.namespace.in_(sorted(namespaces)) if namespaces else false()


def _lines_statement() -> Any:
    m, s = Monitor, MonitorState
    return (
        select(
            m.resource_id,
            m.namespace,
            m.name,
            m.type,
            m.target,
            m.paused,
            m.quorum,
            m.interval_ms,
            m.labels,
            MonitorLocation.location,
            s.state,
            s.last_check_at,
            s.last_latency_ms,
            s.last_reason,
            func.coalesce(s.reported_at, s.last_check_at).label("reported_at"),
        )
        .outerjoin(MonitorLocation, MonitorLocation.monitor_id == m.resource_id)
        .outerjoin(s, and_(s.monitor_id == m.resource_id, s.location == MonitorLocation.location))
        .order_by(m.namespace, m.name, MonitorLocation.location)
    )


def monitor_lines(session: Session, *, where: Iterable[Any] = (), now: datetime | None = None) -> list[MonitorLine]:
    """Monitors (every one, or those `where` selects) with their combined state, by namespace and name."""
    now = now or database_now(session)
    stmt = _lines_statement()
    for clause in where:
        stmt = stmt.where(clause)
    grouped: dict[int, tuple[Any, list[LocationState]]] = {}
    for row in session.execute(stmt):
        entry = grouped.setdefault(row.resource_id, (row, []))
        if row.location is None:
            continue
        state, reporting = location_judgement(row.state, row.reported_at, row.interval_ms, now)
        entry[1].append(
            LocationState(row.location, state, row.last_check_at, reporting, row.last_latency_ms, row.last_reason or "")
        )
    return [_line(first, locations) for first, locations in grouped.values()]


def _line(row: Any, locations: list[LocationState]) -> MonitorLine:
    reporting = [loc.state for loc in locations if loc.reporting]
    state = combined_state(bool(row.paused), row.quorum, reporting)
    best, newest = explaining_check([(loc.state, loc.last_check_at, loc) for loc in locations], state)
    return MonitorLine(
        id=row.resource_id,
        namespace=row.namespace,
        name=row.name,
        type=row.type,
        target=row.target,
        paused=bool(row.paused),
        state=state,
        last_check_at=newest,
        latency_ms=best.latency_ms if best else None,
        reason=best.reason if best else "",
        labels=dict(row.labels or {}),
        locations=tuple(locations),
    )


def _matches(line: MonitorLine | Summary, filters: Filters, *, with_state: bool) -> bool:
    if with_state and filters.state and line.state != filters.state:
        return False
    if filters.type and line.type != filters.type:
        return False
    if filters.namespace and line.namespace != filters.namespace:
        return False
    pair = filters.label_pair()
    if pair is not None:
        key, value = pair
        if key not in line.labels or (value is not None and line.labels[key] != value):
            return False
    if filters.q:
        needle = filters.q.casefold()
        if needle not in line.name.casefold() and needle not in line.target.casefold():
            return False
    return True


_RANK: Final = {state: rank for rank, state in enumerate(STATES)}


def _order(line: MonitorLine | Summary) -> tuple[int, str]:
    return (_RANK.get(line.state, len(STATES)), line.name)


def open_incidents(session: Session, namespaces: policy.Namespaces, *, limit: int = 50) -> list[IncidentLine]:
    """Unresolved incidents in `namespaces`, newest first."""
    stmt = select(Incident).where(Incident.state != "resolved").order_by(Incident.opened_at.desc()).limit(limit)
    if not isinstance(namespaces, policy.AllNamespaces):
        if not namespaces:
            return []
        stmt = stmt.where(Incident.namespace.in_(sorted(namespaces)))
    return [_incident_line(row) for row in session.scalars(stmt)]


def _incident_line(row: Incident) -> IncidentLine:
    return IncidentLine(
        row.id, row.code, row.namespace, row.monitor_name, row.title, row.severity, row.state, row.opened_at
    )


def visible(session: Session, principal: Principal) -> policy.Namespaces:
    """The namespaces whose monitors `principal` may read (the policy's refusal when it may not)."""
    policy.require(principal, Action.MONITORS_READ, organization=principal.organization)
    return policy.visible_namespaces(session, principal)


class Summary(NamedTuple):
    """What the overview needs of every monitor to count, filter and order them (one grouped query)."""

    id: int
    namespace: str
    name: str
    type: str
    target: str
    state: str
    labels: Mapping[str, str]

    def group_value(self, key: str) -> str:
        return self.labels.get(key, "") if key else ""


_JUDGED: Final = ("down", "degraded", "up")  # the order the query answers them in


def config_fingerprint(session: Session) -> tuple[Any, ...]:
    """What changes when a monitor is added, removed, edited or paused (not its state): the live hub reads
    every monitor again only when this changes, or when silent locations may have gone stale."""
    monitors = session.execute(
        select(func.count(), func.sum(case((Monitor.paused.is_(True), 1), else_=0))).select_from(Monitor)
    ).one()
    edited = session.scalar(select(func.max(Resource.updated_at)).where(Resource.kind == "Monitor"))
    return (*monitors, edited)


def summaries(
    session: Session,
    *,
    where: Iterable[Any] = (),
    now: datetime | None = None,
    targets: bool = True,
    labels: bool = True,
) -> list[Summary]:
    """Every monitor (or those `where` selects) with its combined state, counted in SQL per monitor: the
    same judgement as `monitor_lines` (locations that stored a result within STALE_INTERVALS intervals
    and judged it), without reading each location's row into Python. Without `targets` or `labels` those
    fields are left empty (not read: the overview reads them only when its filters need them)."""
    now = now or database_now(session)
    m, s, loc = Monitor, MonitorState, MonitorLocation
    clauses = list(where)
    intervals = sorted(session.scalars(select(m.interval_ms).where(*clauses).distinct()))
    if not intervals:
        return []
    reported = func.coalesce(s.reported_at, s.last_check_at)
    fresh = or_(
        *(and_(m.interval_ms == ms, reported >= now - timedelta(milliseconds=ms * STALE_INTERVALS)) for ms in intervals)
    )

    def count_of(state: str) -> Any:
        return func.sum(case((and_(fresh, s.state == state), 1), else_=0)).label(state)

    counted = (
        select(s.monitor_id, *(count_of(state) for state in _JUDGED))
        .join(loc, and_(loc.monitor_id == s.monitor_id, loc.location == s.location))
        .join(m, m.resource_id == s.monitor_id)
        .where(*clauses)
        .group_by(s.monitor_id)
        .subquery()
    )
    stmt = (
        select(
            m.resource_id, m.namespace, m.name, m.type, m.target if targets else literal(""), m.paused, m.quorum,
            type_coerce(m.labels, String).label("labels") if labels else literal("{}"),
            *(counted.c[state] for state in _JUDGED),
        )
        .outerjoin(counted, counted.c.monitor_id == m.resource_id)
        .where(*clauses)
        .order_by(m.namespace, m.name)
    )  # fmt: skip
    decoded: dict[str, Mapping[str, str]] = {}
    judged: dict[tuple[bool, int, int, int, int], str] = {}  # few distinct ones: each judged once
    out: list[Summary] = []
    for (
        monitor_id,
        namespace,
        name,
        kind,
        target,
        paused,
        quorum,
        raw,
        down,
        degraded,
        up,
    ) in session.connection().execute(stmt).all():
        found = decoded.get(raw or "{}")
        if found is None:
            found = decoded[raw or "{}"] = _labels(raw or "{}")
        key = (bool(paused), int(quorum), int(down or 0), int(degraded or 0), int(up or 0))
        state = judged.get(key)
        if state is None:
            states = ["down"] * key[2] + ["degraded"] * key[3] + ["up"] * key[4]
            state = judged[key] = combined_state(key[0], key[1], states)
        # Namespaces and types repeat over thousands of monitors: one copy each (`sys.intern`), not one per row.
        out.append(Summary(monitor_id, sys.intern(namespace), name, sys.intern(kind), target, state, found))
    return out


def _labels(raw: str | dict[str, str]) -> Mapping[str, str]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


Snapshot = Callable[[policy.Namespaces], list[Summary] | None]


def overview(session: Session, principal: Principal, filters: Filters, *, snapshot: Snapshot | None = None) -> Overview:
    """The overview's page: counts of every visible monitor, the page's rows read in full.

    `snapshot` (the process's `MonitorHub`, which keeps every monitor's summary current) answers the
    summaries without a query while it runs; without it, or when it has none, they are counted in SQL."""
    namespaces = visible(session, principal)
    clause = _visible_clause(namespaces)
    now = database_now(session)
    where = () if clause is None else (clause,)
    every = snapshot(namespaces) if snapshot is not None else None
    if every is None:
        every = summaries(session, where=where, now=now)
    counts = dict.fromkeys(STATES, 0)
    matching: list[Summary] = []
    for item in every:
        counts[item.state] = counts.get(item.state, 0) + 1
        if _matches(item, filters, with_state=True):
            matching.append(item)
    key, rank, last = filters.group, _RANK, len(STATES)
    if key:
        matching.sort(key=lambda i: (i.namespace, i.group_value(key) == "", i.group_value(key), *_order(i)))
    else:
        matching.sort(key=lambda i: (i.namespace, rank.get(i.state, last), i.name))
    pages = max(1, -(-len(matching) // PAGE_ROWS))
    page = min(max(1, filters.page), pages)
    chosen = matching[(page - 1) * PAGE_ROWS : page * PAGE_ROWS]
    full = {line.id: line for line in lines_by_id(session, [item.id for item in chosen], now=now)}
    shown = [full[item.id] for item in chosen if item.id in full]
    groups: list[Group] = []
    for line in shown:
        label = line.group_value(key)
        if groups and groups[-1].namespace == line.namespace and groups[-1].label == label:
            groups[-1] = Group(line.namespace, label, (*groups[-1].monitors, line))
        else:
            groups.append(Group(line.namespace, label, (line,)))
    return Overview(
        filters=filters,
        counts=counts,
        total=len(matching),
        groups=groups,
        incidents=open_incidents(session, namespaces),
        namespaces=sorted({item.namespace for item in every}),
        types=sorted({item.type for item in every}),
        label_keys=sorted({k for labels in {id(i.labels): i.labels for i in every}.values() for k in labels}),
        pages=pages,
        monitors=shown,
    )


def lines_by_id(session: Session, monitor_ids: Collection[int], *, now: datetime | None = None) -> list[MonitorLine]:
    """The overview's lines of `monitor_ids` (a page's rows, the live updates' rows)."""
    ids = sorted(set(monitor_ids))
    out: list[MonitorLine] = []
    for start in range(0, len(ids), 500):
        out.extend(monitor_lines(session, where=(Monitor.resource_id.in_(ids[start : start + 500]),), now=now))
    return out


def filtered_list(session: Session, principal: Principal, filters: Filters) -> list[MonitorLine]:
    """Every visible monitor matching `filters` (GET /api/v1/monitors' filters), by namespace and name."""
    namespaces = visible(session, principal)
    clause = _visible_clause(namespaces)
    return [
        line
        for line in monitor_lines(session, where=() if clause is None else (clause,))
        if _matches(line, filters, with_state=True)
    ]


# --- one monitor ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckLine:
    id: int
    location: str
    checked_at: datetime
    status: str
    latency_ms: float | None
    reason: str


@dataclass(frozen=True)
class LatencyPoint:
    hour: datetime
    mean_ms: float | None
    max_ms: float | None
    checks: int
    # The hour's latency histogram: the rollup's counters in HISTOGRAM_COLUMNS' order, () without one.
    counters: tuple[int, ...] = field(default=(), repr=False)

    @property
    def histogram(self) -> Histogram:
        return Histogram.of(self.counters) if self.counters else EMPTY

    @cached_property
    def _percentiles(self) -> tuple[float | None, ...]:
        if not self.counters:
            return (None, None)
        return quantiles((P50, P95), Histogram.of(self.counters), max_ms=self.max_ms)

    @property
    def p50_ms(self) -> float | None:
        return self._percentiles[0]

    @property
    def p95_ms(self) -> float | None:
        return self._percentiles[1]


@dataclass(frozen=True)
class LatencySeries:
    location: str
    points: tuple[LatencyPoint, ...]


@dataclass(frozen=True)
class Certificate:
    expires_at: datetime
    days_left: int | None
    location: str


@dataclass(frozen=True)
class Uptime:
    window: str  # 24h, 7d, 30d, 90d
    percent: str | None  # "99.95%", None without checks
    checks: int


@dataclass
class Detail:
    line: MonitorLine
    interval_ms: int
    timeout_ms: int
    severity: str
    escalation_policy: str | None
    uptime: list[Uptime]
    checks: list[CheckLine]
    certificate: Certificate | None
    incidents: list[IncidentLine]
    yaml: str
    source: str  # where the resource comes from, for people
    source_kind: str  # "manifests" (spectra run's files), "cluster" or another loader's name
    source_file: str | None  # the manifest file it was read from (standalone); None in the cluster
    latency: list[LatencySeries]
    days: int


def find_monitor(session: Session, principal: Principal, namespace: str, name: str) -> Monitor:
    """The monitor, or `policy.NotFound` (another tenant's, or none): the policy decides."""
    policy.require_in(session, principal, Action.MONITORS_READ, namespace=namespace)
    found = session.scalar(select(Monitor).where(Monitor.namespace == namespace, Monitor.name == name))
    if found is None:
        raise policy.NotFound()
    return found


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def uptimes(session: Session, monitor: Monitor, now: datetime) -> list[Uptime]:
    """Uptime over the last 24 h, 7, 30 and 90 days (whole hours up to this one), maintenance left out.

    Whole UTC days come from the daily rollups (each is the sum of its hours, written with them), the
    hours at either end of a window from the hourly ones: about 190 rows instead of 4,320 for 90 days in
    two locations. With maintenance in the range, per hour, so that the hours it covered are left out."""
    end = hour_floor(now) + HOUR
    start = end - timedelta(days=UPTIME_WINDOWS[-1][1])
    ref = MonitorRef(monitor.resource_id, monitor.namespace, monitor.name, dict(monitor.labels or {}))
    excluded = maintenance_buckets(load_windows(session), [ref], start, end, HOUR).get(monitor.resource_id, set())
    if excluded:
        hourly = _summed_per_bucket(session, HourlyRollup, monitor.resource_id, [(start, end)])
        return [
            _uptime(window, _total(hourly, [(end - timedelta(days=days), end)], excluded))
            for window, days in UPTIME_WINDOWS
        ]
    spans = {window: _window_spans(end - timedelta(days=days), end) for window, days in UPTIME_WINDOWS}
    hourly = _summed_per_bucket(session, HourlyRollup, monitor.resource_id, [r for h, _ in spans.values() for r in h])
    daily = _summed_per_bucket(session, DailyRollup, monitor.resource_id, [d for _, d in spans.values() if d])
    return [
        _uptime(window, _total(hourly, hours) + _total(daily, [days] if days else []))
        for window, (hours, days) in spans.items()
    ]


Span = tuple[datetime, datetime]


def _window_spans(start: datetime, end: datetime) -> tuple[list[Span], Span | None]:
    """[start, end) as (its hours before the first midnight and after the last, its whole days between)."""
    first_midnight = start if start.hour == 0 else start.replace(hour=0) + timedelta(days=1)
    last_midnight = end.replace(hour=0)
    if first_midnight >= last_midnight:
        return [(start, end)], None
    hours = [(start, first_midnight), (last_midnight, end)]
    return [(a, b) for a, b in hours if a < b], (first_midnight, last_midnight)


def _summed_per_bucket(
    session: Session, model: type[HourlyRollup] | type[DailyRollup], monitor_id: int, spans: Sequence[Span]
) -> dict[datetime, Counts]:
    """Checks per bucket of the monitor (all locations) in any of `spans`; one query."""
    if not spans:
        return {}
    inside = or_(*(and_(model.bucket_start >= a, model.bucket_start < b) for a, b in spans))
    stmt = (
        select(model.bucket_start, func.sum(model.checks_total), func.sum(model.checks_degraded),
               func.sum(model.checks_down))
        .where(model.monitor_id == monitor_id, inside)
        .group_by(model.bucket_start)
    )  # fmt: skip
    return {
        bucket: Counts(int(total or 0), int(degraded or 0), int(down or 0))
        for bucket, total, degraded, down in session.execute(stmt)
    }


def _total(buckets: Mapping[datetime, Counts], spans: Sequence[Span], excluded: Collection[datetime] = ()) -> Counts:
    counts = Counts()
    for bucket, one in buckets.items():
        if bucket not in excluded and any(a <= bucket < b for a, b in spans):
            counts = counts + one
    return counts


def _uptime(window: str, counts: Counts) -> Uptime:
    return Uptime(window, uptime_text(counts), counts.total)


def latency(session: Session, monitor_id: int, *, days: int, now: datetime) -> list[LatencySeries]:
    """Hourly latency per location over the last `days` days, from the hourly rollups: the mean, the
    maximum and the histogram (p50 and p95)."""
    end = hour_floor(now) + HOUR
    start = end - timedelta(days=days)
    h = HourlyRollup
    stmt = (
        select(
            h.location, h.bucket_start, h.latency_count, h.latency_sum_ms, h.latency_max_ms, h.checks_total,
            *(getattr(h, name) for name in HISTOGRAM_COLUMNS),
        )
        .where(h.monitor_id == monitor_id, h.bucket_start >= start, h.bucket_start < end)
        .order_by(h.location, h.bucket_start)
    )  # fmt: skip
    series: dict[str, list[LatencyPoint]] = {}
    for location, bucket, count, total_ms, max_ms, checks, *counters in session.execute(stmt):
        mean = float(total_ms) / int(count) if count else None
        series.setdefault(location, []).append(
            LatencyPoint(
                bucket,
                mean,
                None if max_ms is None else float(max_ms),
                int(checks),
                tuple(map(int, counters)) if counters[-1] else (),
            )
        )
    return [LatencySeries(location, tuple(points)) for location, points in series.items()]


def merged(points: Sequence[LatencyPoint], size: int) -> list[LatencyPoint]:
    """Runs of `size` consecutive points as one each (the first hour; the mean weighted by checks, the maximum,
    the histograms summed: the percentiles are the run's)."""
    out: list[LatencyPoint] = []
    for start in range(0, len(points), max(1, size)):
        run = points[start : start + max(1, size)]
        weighted = [(p.mean_ms, max(p.checks, 1)) for p in run if p.mean_ms is not None]
        weight = sum(w for _, w in weighted)
        mean = sum(m * w for m, w in weighted) / weight if weight else None
        highest = max((p.max_ms for p in run if p.max_ms is not None), default=None)
        counted = [p.counters for p in run if p.counters]
        counters = tuple(map(sum, zip(*counted, strict=True))) if counted else ()
        out.append(LatencyPoint(run[0].hour, mean, highest, sum(p.checks for p in run), counters))
    return out


def per_day(series: Sequence[LatencySeries]) -> list[LatencySeries]:
    """The hourly series summed up per UTC day (the monitor page's table beyond two days)."""
    out: list[LatencySeries] = []
    for one in series:
        days: dict[datetime, list[LatencyPoint]] = {}
        for point in one.points:
            days.setdefault(point.hour.replace(hour=0), []).append(point)
        out.append(LatencySeries(one.location, tuple(merged(run, len(run))[0] for run in days.values())))
    return out


def _check_filter(monitor_id: int, cursor: tuple[datetime, int] | None) -> list[Any]:
    clauses: list[Any] = [CheckResult.monitor_id == monitor_id]
    if cursor is not None:
        at, last_id = cursor
        clauses.append(or_(CheckResult.checked_at < at, and_(CheckResult.checked_at == at, CheckResult.id < last_id)))
    return clauses


def checks(
    session: Session, monitor_id: int, *, limit: int, cursor: tuple[datetime, int] | None = None
) -> tuple[list[CheckLine], tuple[datetime, int] | None]:
    """Checks newest first, `limit` of them after `cursor`; and the cursor of the next page (None: last)."""
    c = CheckResult
    stmt = (
        select(c.id, c.location, c.checked_at, c.status, c.latency_ms, c.reason)
        .where(*_check_filter(monitor_id, cursor))
        .order_by(c.checked_at.desc(), c.id.desc())
        .limit(limit + 1)
    )
    rows = [
        CheckLine(r.id, r.location, r.checked_at, r.status, r.latency_ms, r.reason or "") for r in session.execute(stmt)
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, ((rows[-1].checked_at, rows[-1].id) if more and rows else None)


def encode_cursor(cursor: tuple[datetime, int]) -> str:
    raw = json.dumps([cursor[0].astimezone(UTC).isoformat(), cursor[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, int] | None:
    """The cursor `encode_cursor` made, or None when `text` is not one."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        at, last_id = raw
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not isinstance(last_id, int) or isinstance(last_id, bool):
            return None
        return moment, last_id
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def certificate(session: Session, monitor_id: int) -> Certificate | None:
    """The certificate expiry the newest check that saw one reported."""
    best: Certificate | None = None
    newest: datetime | None = None
    for row in session.scalars(select(MonitorState).where(MonitorState.monitor_id == monitor_id)):
        facts = row.facts or {}
        text = facts.get("certificate_expires_at")
        if not isinstance(text, str):
            continue
        try:
            expiry = datetime.fromisoformat(text)
        except ValueError:
            continue
        expiry = expiry if expiry.tzinfo is not None else expiry.replace(tzinfo=UTC)
        days = facts.get("certificate_days_left")
        if newest is None or (row.last_check_at is not None and row.last_check_at > newest):
            newest = row.last_check_at
            best = Certificate(expiry, days if isinstance(days, int) else None, row.location)
    return best


def incident_history(session: Session, monitor_id: int, *, limit: int = INCIDENT_HISTORY) -> list[IncidentLine]:
    stmt = select(Incident).where(Incident.monitor_id == monitor_id).order_by(Incident.opened_at.desc()).limit(limit)
    return [_incident_line(row) for row in session.scalars(stmt)]


def _hide_secrets(value: Any, key: str = "") -> Any:
    """The spec with any literal value under a secret-sounding key hidden (references are kept: they are
    names, never values). Specs hold only references (`valueFrom`/`tokenFrom` `secretKeyRef`); this is a
    second fence for whatever a future field might carry."""
    if isinstance(value, Mapping):
        return {k: v if k == "secretKeyRef" else _hide_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide_secrets(item, key) for item in value]
    lowered = key.casefold()
    if isinstance(value, str) and any(word in lowered for word in _SECRETISH):
        return REDACTED
    return value


def resource_yaml(resource: Resource) -> str:
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": resource.kind,
        "metadata": {"name": resource.name, "namespace": resource.namespace},
        "spec": _hide_secrets(resource.spec or {}),
    }
    if resource.labels:
        body["metadata"]["labels"] = dict(resource.labels)
    return yaml.safe_dump(body, sort_keys=False, default_flow_style=False, allow_unicode=True)


def source_text(resource: Resource) -> tuple[str, str]:
    """(kind, sentence) of where the resource comes from."""
    source = resource.source
    if source == "cluster":
        return "cluster", f"the cluster: Monitor {resource.namespace}/{resource.name}"
    if source == "manifests":
        if resource.source_file:
            return "manifests", f"the manifest file {resource.source_file} (edit it there)"
        return "manifests", "the manifest files spectra run loads (edit them there)"
    if source.startswith("files:"):
        return "manifests", f"the file {source.removeprefix('files:')}"
    return source, source


def detail(session: Session, principal: Principal, namespace: str, name: str, *, days: int = 7) -> Detail:
    monitor = find_monitor(session, principal, namespace, name)
    now = database_now(session)
    lines = monitor_lines(session, where=(Monitor.resource_id == monitor.resource_id,), now=now)
    resource = monitor.resource
    kind, where = source_text(resource)
    recent, _ = checks(session, monitor.resource_id, limit=RECENT_CHECKS)
    return Detail(
        line=lines[0],
        interval_ms=monitor.interval_ms,
        timeout_ms=monitor.timeout_ms,
        severity=monitor.severity,
        escalation_policy=monitor.escalation_policy,
        uptime=uptimes(session, monitor, now),
        checks=recent,
        certificate=certificate(session, monitor.resource_id),
        incidents=incident_history(session, monitor.resource_id),
        yaml=resource_yaml(resource),
        source=where,
        source_kind=kind,
        source_file=resource.source_file,
        latency=latency(session, monitor.resource_id, days=days, now=now),
        days=days,
    )


# --- live updates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateChange:
    monitor_id: int
    location: str
    state: str
    changed_at: datetime


def changes_since(session: Session, stored: datetime | None = None) -> list[StateChange]:
    """State rows whose state changed in a write stored (`state_stored_at`, the database's clock) at or
    after `stored` (None: every row); one query for every client of a process."""
    s = MonitorState
    stmt = select(s.monitor_id, s.location, s.state, s.changed_at)
    if stored is not None:
        stmt = stmt.where(s.state_stored_at >= stored)
    return [StateChange(r.monitor_id, r.location, r.state, r.changed_at) for r in session.execute(stmt)]


def state_counts(lines: Sequence[MonitorLine]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for line in lines:
        counts[line.state] = counts.get(line.state, 0) + 1
    return counts
