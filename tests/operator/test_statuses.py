"""Status facts from the store: every kind, both databases, a constant number of queries."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from spectra.api import parse_object
from spectra.api.escalation import EscalationPolicyStatus
from spectra.api.maintenance import MaintenanceWindowStatus
from spectra.api.monitor import MonitorStatus
from spectra.api.organization import OrganizationStatus
from spectra.api.schedule import ScheduleStatus
from spectra.api.statuspage import StatusPageStatus
from spectra.operator.statuses import Facts, Key, collect
from spectra.reconcile import CLUSTER_SOURCE, MANIFEST_SOURCE, apply_set
from spectra.runtime.timefmt import rfc3339
from spectra.store import Incident, insert_results, rollup, save_states
from spectra.store import Monitor as MonitorRow
from tests.factories import manifests

NOW = datetime(2026, 3, 2, 10, 30, 12, 345678, tzinfo=UTC)  # a Monday
STATUS_MODELS: dict[str, type[BaseModel]] = {
    "Monitor": MonitorStatus,
    "Schedule": ScheduleStatus,
    "EscalationPolicy": EscalationPolicyStatus,
    "StatusPage": StatusPageStatus,
    "MaintenanceWindow": MaintenanceWindowStatus,
    "Organization": OrganizationStatus,
}
_codes = itertools.count(1)


# --- seeding ----------------------------------------------------------------------------------


def body(kind: str, name: str, spec: Mapping[str, Any], *, namespace: str | None = "default", **labels: str) -> Any:
    return parse_object(manifests.resource(kind, name, spec, namespace=namespace, labels=labels))


def monitor(name: str, *, namespace: str = "default", paused: bool = False, **labels: str) -> Any:
    url = f"https://{name}.example.com/health"
    return parse_object(manifests.monitor(name, namespace=namespace, url=url, labels=labels, paused=paused))


def page(name: str, groups: list[dict[str, Any]], *, hostnames: Sequence[str] = (), namespace: str = "default") -> Any:
    return parse_object(manifests.status_page(name, namespace=namespace, hostnames=hostnames, groups=groups))


def organization(name: str, namespaces: list[str]) -> Any:
    return parse_object(manifests.organization(name, namespaces))


def seed(session: Session, *resources: Any, source: str = CLUSTER_SOURCE) -> None:
    apply_set(session, resources, source, prune=False)
    session.commit()


def monitor_id(session: Session, name: str, namespace: str = "default") -> int:
    found = session.scalar(
        select(MonitorRow.resource_id).where(MonitorRow.namespace == namespace, MonitorRow.name == name)
    )
    assert found is not None
    return found


def set_state(
    session: Session,
    name: str,
    state: str,
    *,
    namespace: str = "default",
    latency: float | None = 120.0,
    facts: dict[str, Any] | None = None,
    checked: datetime = NOW - timedelta(seconds=10),
) -> None:
    row = {
        "monitor_id": monitor_id(session, name, namespace),
        "location": "default",
        "state": state,
        "last_status": state,
        "consecutive_failures": 0,
        "consecutive_successes": 1,
        "last_check_at": checked,
        "last_latency_ms": latency,
        "last_reason": "",
        "changed_at": checked,
        "facts": facts,
    }
    save_states(session, [row])
    session.commit()


def add_results(session: Session, name: str, statuses: str, *, end: datetime, namespace: str = "default") -> None:
    """One result per character (u/d/x = up/degraded/down), a minute apart, the last one just before ``end``."""
    names = {"u": "up", "d": "degraded", "x": "down"}
    mid = monitor_id(session, name, namespace)
    rows = [
        {
            "monitor_id": mid,
            "location": "default",
            "checked_at": end - timedelta(minutes=len(statuses) - i),
            "status": names[s],
            "latency_ms": 50.0,
        }
        for i, s in enumerate(statuses)
    ]
    insert_results(session, rows)
    session.commit()


def add_incident(
    session: Session,
    *,
    monitor: str | None = None,
    namespace: str = "default",
    policy: str | None = None,
    state: str = "open",
    code: str | None = None,
) -> str:
    code = code or f"T{next(_codes):03d}"
    session.add(
        Incident(
            code=code,
            namespace=namespace,
            monitor_id=monitor_id(session, monitor, namespace) if monitor else None,
            monitor_name=monitor or "gone",
            title="down",
            severity="critical",
            state=state,
            opened_at=NOW - timedelta(minutes=5),
            resolved_at=NOW - timedelta(minutes=1) if state == "resolved" else None,
            escalation_policy=policy,
        )
    )
    session.commit()
    return code


def check_shape(facts: Mapping[Key, Facts]) -> None:
    """Every fact is a field of its kind's status model (by alias), JSON-ready, and validates."""
    for (kind, _, _), item in facts.items():
        model = STATUS_MODELS[kind]
        merged = item.merged()
        assert not set(item.major) & set(item.minor)
        aliases = {field.alias or name for name, field in model.model_fields.items()}
        assert set(merged) <= aliases - {"conditions", "observedGeneration"}, kind
        json.dumps(merged)
        model.model_validate(merged)


def test_naive_now_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="aware"):
        collect(session, NOW.replace(tzinfo=None))


# --- monitors ---------------------------------------------------------------------------------


def test_monitor_state_incident_latency_and_certificate(session: Session) -> None:
    seed(session, monitor("api"), monitor("shop"), monitor("idle"), monitor("held", paused=True))
    expiry = datetime(2026, 4, 1, 12, 0, 0, 500, tzinfo=UTC)
    cert = {"certificate_days_left": 30, "certificate_expires_at": expiry.isoformat(), "status_code": 200}
    set_state(session, "api", "up", latency=123.456, facts=cert)
    set_state(session, "shop", "down", latency=None, facts={"status_code": 503})
    add_incident(session, monitor="shop", state="resolved")
    code = add_incident(session, monitor="shop", state="acknowledged")

    facts = collect(session, NOW)
    check_shape(facts)
    api, shop = facts[("Monitor", "default", "api")], facts[("Monitor", "default", "shop")]
    assert api.major == {
        "state": "up",
        "target": "https://api.example.com/health",
        "openIncident": None,
        "certificateDaysLeft": 30,
    }
    assert api.minor == {
        "lastCheck": "2026-03-02T10:30:02Z",
        "lastLatencyMs": 123.5,
        "uptime24h": None,
        "uptime30d": None,
        "certificateExpiry": "2026-04-01T12:00:00Z",
    }
    assert shop.major["state"] == "down"
    assert shop.major["openIncident"] == code
    assert shop.major["certificateDaysLeft"] is None
    assert shop.minor["lastLatencyMs"] is None
    assert shop.minor["certificateExpiry"] is None
    # No state row yet: pending; paused: paused (the overview says so).
    assert facts[("Monitor", "default", "idle")].major["state"] == "pending"
    assert facts[("Monitor", "default", "idle")].minor["lastCheck"] is None
    assert facts[("Monitor", "default", "held")].major["state"] == "paused"
    # Same data, a few seconds later: equal facts (nothing flaps between cycles).
    assert collect(session, NOW + timedelta(seconds=3)) == facts


def test_uptime_from_rollups_with_maintenance_left_out(session: Session) -> None:
    seed(
        session,
        monitor("mixed"),
        monitor("steady"),
        monitor("fixed"),
        monitor("new"),
        body(
            "MaintenanceWindow",
            "db-upgrade",
            {
                "start": rfc3339(NOW - timedelta(days=3)),
                "end": rfc3339(NOW - timedelta(days=3) + timedelta(hours=1)),
                "monitors": ["fixed"],
            },
        ),
    )
    # Last 24 h: 18 up, 1 degraded, 1 down => (1 + 0.5) / 20 outage.
    add_results(session, "mixed", "u" * 9 + "d" + "u" * 9 + "x", end=NOW - timedelta(minutes=1))
    # Ten days ago: 20 up => 30 d: 1.5 / 40 outage. Forty days ago: outside both windows.
    add_results(session, "mixed", "u" * 20, end=NOW - timedelta(days=10))
    add_results(session, "mixed", "x" * 20, end=NOW - timedelta(days=40))
    add_results(session, "steady", "u" * 30, end=NOW - timedelta(minutes=1))
    # Down only during its maintenance window: that day is left out of its 30-day uptime.
    add_results(session, "fixed", "x" * 30, end=NOW - timedelta(days=3) + timedelta(minutes=40))
    add_results(session, "fixed", "u" * 10, end=NOW - timedelta(minutes=1))
    rollup(session, NOW - timedelta(days=41), NOW + timedelta(seconds=1))
    session.commit()

    facts = collect(session, NOW)
    check_shape(facts)
    uptime = {name: (facts[("Monitor", "default", name)].minor) for name in ("mixed", "steady", "fixed", "new")}
    assert [(u["uptime24h"], u["uptime30d"]) for u in uptime.values()] == [
        ("92.50%", "96.25%"),
        ("100.00%", "100.00%"),
        ("100.00%", "100.00%"),
        (None, None),
    ]


# --- schedules --------------------------------------------------------------------------------


def schedule(zone: str) -> Any:
    layer = {"name": "main", "participants": ["alice", "bob"], "start": "2026-01-05", "rotation": "1w"}
    return body("Schedule", "primary", {"timeZone": zone, "layers": [{**layer, "handoffTime": "09:00"}]})


@pytest.mark.parametrize(
    ("zone", "now", "on_call", "handoff"),
    [
        # 2026-01-05 + 8 weeks = 2026-03-02: alice's turn starts at 09:00.
        ("UTC", "2026-03-02T08:59:59Z", ["bob"], "2026-03-02T09:00:00Z"),
        ("UTC", "2026-03-02T09:00:00Z", ["alice"], "2026-03-09T09:00:00Z"),
        # Berlin is UTC+1 until 2026-03-29, UTC+2 after: 09:00 local moves from 08:00Z to 07:00Z.
        ("Europe/Berlin", "2026-03-02T08:30:00Z", ["alice"], "2026-03-09T08:00:00Z"),
        ("Europe/Berlin", "2026-03-25T12:00:00Z", ["bob"], "2026-03-30T07:00:00Z"),
    ],
)
def test_schedule_on_call_and_next_handoff(
    session: Session, zone: str, now: str, on_call: list[str], handoff: str
) -> None:
    seed(session, schedule(zone))
    facts = collect(session, datetime.fromisoformat(now))
    check_shape(facts)
    assert facts[("Schedule", "default", "primary")] == Facts({"onCallNow": on_call}, {"nextHandoff": handoff})


# --- escalation policies ----------------------------------------------------------------------


def policy(name: str, namespace: str = "default", *, steps: int = 1) -> Any:
    spec = {"steps": [{"delay": f"{index * 10}m", "targets": [{"contact": "alice"}]} for index in range(steps)]}
    return body("EscalationPolicy", name, spec, namespace=namespace)


def test_policy_counts_unresolved_incidents_of_its_namespace(session: Session) -> None:
    seed(session, policy("primary"), policy("secondary"), policy("quiet"), policy("primary", "team-b"))
    for state in ("open", "acknowledged", "resolved"):
        add_incident(session, policy="primary", state=state)
    add_incident(session, policy="secondary")
    add_incident(session, policy="primary", namespace="team-b")
    add_incident(session, policy=None)

    facts = collect(session, NOW)
    check_shape(facts)
    counts = {(ns, name): f.major["openIncidents"] for (kind, ns, name), f in facts.items() if kind != "Monitor"}
    assert counts == {
        ("default", "primary"): 2,
        ("default", "secondary"): 1,
        ("default", "quiet"): 0,
        ("team-b", "primary"): 1,
    }
    assert all(not f.minor for f in facts.values())


def test_policy_counts_its_steps(session: Session) -> None:
    """`kubectl get escalationpolicies` shows this count under STEPS (a JSONPath column cannot count)."""
    seed(session, policy("single"), policy("three", steps=3))
    facts = collect(session, NOW)
    check_shape(facts)
    assert facts[("EscalationPolicy", "default", "single")].major["steps"] == 1
    assert facts[("EscalationPolicy", "default", "three")].major["steps"] == 3


# --- status pages -----------------------------------------------------------------------------


GROUPS: list[dict[str, Any]] = [
    {
        "name": "Core",
        "components": [
            {"name": "API", "monitors": ["api"]},
            {"name": "Web", "monitorSelector": {"matchLabels": {"tier": "web"}}},
        ],
    },
    {"name": "Extras", "components": [{"name": "Reports", "monitors": ["missing"]}]},
]


@pytest.mark.parametrize(
    ("hostnames", "public_url", "url"),
    [
        ((), "https://status.example.com/", "https://status.example.com/s/acme"),
        ((), "https://example.com/status", "https://example.com/status/s/acme"),
        (("status.acme.io", "www.status.acme.io"), "https://status.example.com", "https://status.acme.io/"),
        (("status.acme.io",), None, "https://status.acme.io/"),
        ((), None, None),
    ],
)
def test_page_url_and_component_states(
    session: Session, hostnames: tuple[str, ...], public_url: str | None, url: str | None
) -> None:
    seed(
        session,
        monitor("api"),
        monitor("web-1", tier="web"),
        monitor("web-2", tier="web"),
        monitor("web-3", namespace="other", tier="web"),  # another namespace: not a component of this page
        page("acme", GROUPS, hostnames=hostnames),
    )
    set_state(session, "api", "up")
    set_state(session, "web-1", "down")
    set_state(session, "web-2", "up")

    facts = collect(session, NOW, public_url=public_url)
    check_shape(facts)
    assert facts[("StatusPage", "default", "acme")] == Facts(
        {
            "url": url,
            "overall": "partial_outage",
            "components": [
                {"name": "API", "state": "operational"},
                {"name": "Web", "state": "partial_outage"},
                {"name": "Reports", "state": "unknown"},
            ],
        },
        {},
    )


# --- maintenance windows ----------------------------------------------------------------------


def window(name: str, spec: dict[str, Any]) -> Any:
    return body("MaintenanceWindow", name, spec)


def test_maintenance_windows_active_upcoming_recurring_and_past(session: Session) -> None:
    hour = timedelta(hours=1)
    seed(
        session,
        monitor("api", tier="core"),
        monitor("cron", tier="core", paused=True),
        monitor("web"),
        page("acme", [{"name": "Core", "components": [{"name": "API", "monitors": ["api", "cron"]}]}]),
        window(
            "now",
            {
                "start": rfc3339(NOW - hour),
                "end": rfc3339(NOW + hour),
                "monitorSelector": {"matchLabels": {"tier": "core"}},
            },
        ),
        window("soon", {"start": rfc3339(NOW + 24 * hour), "end": rfc3339(NOW + 26 * hour), "monitors": ["web"]}),
        window("over", {"start": rfc3339(NOW - 48 * hour), "end": rfc3339(NOW - 47 * hour), "monitors": ["web"]}),
        window(
            "sundays",
            {
                "recurrence": {
                    "rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0;BYSECOND=0",
                    "duration": "2h",
                    "timeZone": "Europe/Berlin",
                    "start": "2026-01-04T02:00:00+01:00",
                },
                "monitors": ["web"],
            },
        ),
    )
    set_state(session, "api", "down")
    set_state(session, "web", "up")

    facts = collect(session, NOW)
    check_shape(facts)
    windows = {name: f.merged() for (kind, _, name), f in facts.items() if kind == "MaintenanceWindow"}
    assert windows == {
        "now": {"active": True, "nextStart": "2026-03-02T09:30:12Z", "nextEnd": "2026-03-02T11:30:12Z"},
        "soon": {"active": False, "nextStart": "2026-03-03T10:30:12Z", "nextEnd": "2026-03-03T12:30:12Z"},
        "over": {"active": False, "nextStart": None, "nextEnd": None},
        # Sunday 02:00 in Berlin (UTC+1 in March, before the DST change on the 29th).
        "sundays": {"active": False, "nextStart": "2026-03-08T01:00:00Z", "nextEnd": "2026-03-08T03:00:00Z"},
    }
    assert facts[("MaintenanceWindow", "default", "now")].major == {"active": True}
    assert facts[("Monitor", "default", "api")].major["state"] == "maintenance"
    assert facts[("Monitor", "default", "cron")].major["state"] == "paused"
    assert facts[("Monitor", "default", "web")].major["state"] == "up"
    page_facts = facts[("StatusPage", "default", "acme")].major
    assert page_facts["components"] == [{"name": "API", "state": "maintenance"}]
    assert page_facts["overall"] == "maintenance"

    # On Sunday during the occurrence it is active, and "next" is the current one.
    sunday = datetime(2026, 3, 8, 2, 30, tzinfo=UTC)
    during = collect(session, sunday)[("MaintenanceWindow", "default", "sundays")]
    assert during.merged() == {"active": True, "nextStart": "2026-03-08T01:00:00Z", "nextEnd": "2026-03-08T03:00:00Z"}


# --- organizations ----------------------------------------------------------------------------


def test_organization_usage_counts_only_its_namespaces(session: Session) -> None:
    org = organization("acme", ["team-a", "team-b"])
    seed(
        session,
        org,
        organization("empty", []),
        monitor("a1", namespace="team-a"),
        monitor("a2", namespace="team-a"),
        monitor("b1", namespace="team-b"),
        monitor("x1", namespace="other"),
        monitor("x2", namespace="other"),
        page("pa", GROUPS, namespace="team-a"),
        page("px", GROUPS, namespace="other"),
        policy("primary", "team-a"),
    )
    seed(session, monitor("b2", namespace="team-b"), source=MANIFEST_SOURCE)  # counted whatever its source

    facts = collect(session, NOW)
    check_shape(facts)
    assert facts[("Organization", "", "acme")] == Facts({"usage": {"monitors": 4, "statusPages": 1}}, {})
    assert facts[("Organization", "", "empty")] == Facts({"usage": {"monitors": 0, "statusPages": 0}}, {})


# --- sources ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (CLUSTER_SOURCE, {("Monitor", "default", "api"), ("StatusPage", "default", "acme")}),
        (MANIFEST_SOURCE, {("Monitor", "default", "web"), ("Schedule", "default", "primary")}),
        (
            None,
            {
                ("Monitor", "default", "api"),
                ("StatusPage", "default", "acme"),
                ("Monitor", "default", "web"),
                ("Schedule", "default", "primary"),
            },
        ),
        ("files:/nowhere", set()),
    ],
)
def test_only_objects_of_the_source(session: Session, source: str | None, expected: set[Key]) -> None:
    groups = [{"name": "All", "components": [{"name": "Web", "monitors": ["web"]}]}]
    seed(session, monitor("api"), page("acme", groups))
    seed(session, monitor("web"), schedule("UTC"), source=MANIFEST_SOURCE)
    set_state(session, "web", "degraded")

    facts = collect(session, NOW, source=source)
    assert set(facts) == expected
    if ("StatusPage", "default", "acme") in facts:  # its component reads a monitor of another source
        assert facts[("StatusPage", "default", "acme")].major["components"] == [{"name": "Web", "state": "degraded"}]


# --- cost -------------------------------------------------------------------------------------


def seed_tenant(session: Session, names: Sequence[str]) -> None:
    """Monitors with states, results, incidents and a maintenance window over some of their history."""
    seed(session, *(monitor(name, tier="web") for name in names))
    for name in names:
        set_state(session, name, "down", facts={"certificate_days_left": 9, "certificate_expires_at": "2026-03-11"})
        add_results(session, name, "uxd", end=NOW - timedelta(minutes=2))
        add_results(session, name, "xx", end=NOW - timedelta(days=2))
        add_incident(session, monitor=name, policy="primary")
    rollup(session, NOW - timedelta(days=3), NOW + timedelta(seconds=1))
    session.commit()


def count_statements(engine: Engine, session: Session) -> tuple[int, dict[Key, Facts]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        facts = collect(session, NOW)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(statements), facts


def test_a_constant_number_of_queries(engine: Engine, session: Session) -> None:
    seed(
        session,
        policy("primary"),
        schedule("UTC"),
        page("acme", GROUPS),
        window(
            "last-week",
            {
                "start": rfc3339(NOW - timedelta(days=2, hours=1)),
                "end": rfc3339(NOW - timedelta(days=2) + timedelta(hours=1)),
                "monitorSelector": {"matchLabels": {"tier": "web"}},
            },
        ),
        organization("acme", ["default"]),
    )
    seed_tenant(session, [f"m-{i:03d}" for i in range(5)])
    few, facts = count_statements(engine, session)
    assert len([key for key in facts if key[0] == "Monitor"]) == 5
    assert facts[("Monitor", "default", "m-000")].minor["uptime30d"] == "50.00%"  # the 2-day-old day is left out

    seed_tenant(session, [f"m-{i:03d}" for i in range(5, 50)])
    many, facts = count_statements(engine, session)
    assert len([key for key in facts if key[0] == "Monitor"]) == 50
    assert facts[("EscalationPolicy", "default", "primary")].major == {"steps": 1, "openIncidents": 50}
    assert few == many <= 12
