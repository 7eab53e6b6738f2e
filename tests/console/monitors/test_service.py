"""The monitors area's queries (spectra.console.monitors.service), its chart and its hub, on a real
database: what each viewer may see, filters, groups and counts, one monitor's facts (uptime from the
rollups, latency, certificate, incidents, YAML without secrets), cursors; on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from spectra.auth import policy
from spectra.auth.identity import Principal
from spectra.console.monitors import hub as hub_module
from spectra.console.monitors import service
from spectra.console.monitors.chart import latency_svg
from spectra.console.monitors.hub import QUEUE_SIZE, MonitorHub
from spectra.console.monitors.service import Filters
from spectra.store import Monitor, utcnow
from tests.console.monitors.conftest import World
from tests.factories.console_monitors import (
    HEADER_SECRET,
    HOUR,
    PUSH_SECRET_VALUE,
    apply_monitors,
    checks,
    hourly,
    incident,
    latency_histogram,
    monitor,
    set_state,
)


def names(overview: service.Overview) -> list[str]:
    return [f"{m.namespace}/{m.name}" for m in overview.monitors]


def test_the_overview_shows_only_the_viewers_organization(world: World) -> None:
    with world.sessions() as session:
        acme = service.overview(session, world.uma, Filters())
        globex = service.overview(session, world.gus, Filters())
    assert names(acme) == ["acme/api", "acme/shop", "acme-ops/cron", "acme-ops/db"]
    assert acme.counts == {"down": 1, "degraded": 0, "pending": 1, "up": 2, "paused": 0}
    assert [(g.namespace, len(g.monitors)) for g in acme.groups] == [("acme", 2), ("acme-ops", 2)]
    assert names(globex) == ["globex/portal"]
    assert globex.counts["down"] == 1


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(state="down"), ["acme/api"]),
        (Filters(type="heartbeat"), ["acme-ops/cron"]),
        (Filters(namespace="acme-ops"), ["acme-ops/cron", "acme-ops/db"]),
        (Filters(label="team=web"), ["acme/api", "acme/shop"]),
        (Filters(label="team"), ["acme/api", "acme/shop", "acme-ops/db"]),
        (Filters(q="SHOP.example"), ["acme/shop"]),
        (Filters(q="db"), ["acme-ops/db"]),
        (Filters(namespace="globex"), []),  # another tenant's namespace is simply empty
    ],
)
def test_filters_and_search(world: World, filters: Filters, expected: list[str]) -> None:
    with world.sessions() as session:
        found = service.overview(session, world.ada, filters)
    assert names(found) == expected
    assert found.counts["down"] == 1  # the counts are of every monitor the viewer may see


def test_grouped_by_a_label_within_each_namespace(world: World) -> None:
    with world.sessions() as session:
        found = service.overview(session, world.ada, Filters(group="team"))
    assert [(g.namespace, g.label, [m.name for m in g.monitors]) for g in found.groups] == [
        ("acme", "web", ["api", "shop"]),
        ("acme-ops", "data", ["db"]),
        ("acme-ops", "", ["cron"]),
    ]
    assert found.label_keys == ["team"]


def test_open_incidents_come_first_and_stay_in_their_organization(world: World) -> None:
    now = utcnow()
    with world.sessions.begin() as session:
        incident(session, world.ids["acme/api"], "acme", "api", code="A1", opened_at=now - HOUR)
        incident(session, world.ids["acme/shop"], "acme", "shop", code="A2", state="resolved", opened_at=now)
        incident(session, world.ids["globex/portal"], "globex", "portal", code="G1")
    with world.sessions() as session:
        assert [i.code for i in service.overview(session, world.uma, Filters()).incidents] == ["A1"]
        assert [i.code for i in service.overview(session, world.gus, Filters()).incidents] == ["G1"]


def test_a_platform_admin_outside_any_organization_is_refused_by_the_policy(world: World) -> None:
    root = Principal(user_id=99, email="root@example.com", organization=None, role=None, platform_admin=True)
    with world.sessions() as session, pytest.raises(policy.Denied):
        service.overview(session, root, Filters())


def test_another_tenants_monitor_is_not_found(world: World) -> None:
    with world.sessions() as session:
        with pytest.raises(policy.NotFound):
            service.detail(session, world.gus, "acme", "api")
        with pytest.raises(policy.NotFound):
            service.detail(session, world.uma, "acme", "nothing-here")


def test_uptime_over_each_window_from_the_rollups(world: World) -> None:
    now = utcnow()
    monitor_id = world.ids["acme/shop"]
    end = service.hour_floor(now) + HOUR
    with world.sessions.begin() as session:
        # 90 days of good hours, but the last day holds 12 hours with 60 of 120 checks down.
        hourly(session, monitor_id, "eu", start=end - timedelta(days=90), hours=90 * 24 - 12)
        hourly(session, monitor_id, "eu", start=end - 12 * HOUR, hours=12, down=60)
    with world.sessions() as session:
        found = service.detail(session, world.uma, "acme", "shop")
    figures = {u.window: (u.percent, u.checks) for u in found.uptime}
    assert figures == {
        "24h": ("75.00%", 24 * 120),
        "7d": (f"{100 * (1 - 720 / (7 * 24 * 120)):.2f}%", 7 * 24 * 120),
        "30d": (f"{100 * (1 - 720 / (30 * 24 * 120)):.2f}%", 30 * 24 * 120),
        "90d": (f"{100 * (1 - 720 / (90 * 24 * 120)):.2f}%", 90 * 24 * 120),
    }


@pytest.mark.parametrize("end_hour", range(24))
@pytest.mark.parametrize("days", [1, 7, 30, 90])
def test_a_windows_hours_and_whole_days_cover_it_exactly_once(end_hour: int, days: int) -> None:
    end = datetime(2026, 3, 29, end_hour, tzinfo=UTC)  # a DST day somewhere: UTC has none
    start = end - timedelta(days=days)
    hours, whole_days = service._window_spans(start, end)
    spans = sorted([*hours, *([whole_days] if whole_days else [])])
    assert spans[0][0] == start
    assert spans[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(a < b for a, b in spans)
    if whole_days:
        assert whole_days[0].hour == whole_days[1].hour == 0
    assert sum((b - a for a, b in hours), timedelta()) < timedelta(days=2)


def test_uptime_leaves_out_the_hours_maintenance_covered(world: World) -> None:
    """With a window in the 90 days, each window counts per hour and leaves its hours out, whatever the
    daily rollups say."""
    now = utcnow()
    monitor_id = world.ids["acme/shop"]
    end = service.hour_floor(now) + HOUR
    window = {
        "apiVersion": "spectra.dev/v1alpha1", "kind": "MaintenanceWindow",
        "metadata": {"name": "upgrade", "namespace": "acme"},
        "spec": {"start": (end - 12 * HOUR).isoformat(), "end": end.isoformat(), "monitors": ["shop"]},
    }  # fmt: skip
    with world.sessions.begin() as session:
        hourly(session, monitor_id, "eu", start=end - timedelta(days=90), hours=90 * 24 - 12)
        hourly(session, monitor_id, "eu", start=end - 12 * HOUR, hours=12, down=60)
        apply_monitors(session, [window])
    with world.sessions() as session:
        found = service.detail(session, world.uma, "acme", "shop")
    assert {u.window: (u.percent, u.checks) for u in found.uptime} == {
        "24h": ("100.00%", 12 * 120),
        "7d": ("100.00%", (7 * 24 - 12) * 120),
        "30d": ("100.00%", (30 * 24 - 12) * 120),
        "90d": ("100.00%", (90 * 24 - 12) * 120),
    }


def test_latency_per_hour_and_location(world: World) -> None:
    now = utcnow()
    monitor_id = world.ids["acme/api"]
    end = service.hour_floor(now) + HOUR
    with world.sessions.begin() as session:
        # eu: 120 checks an hour, 100 in (50, 100] ms and 20 in (100, 250] ms, the slowest 300 ms.
        eu = latency_histogram({100: 100, 250: 20})
        hourly(session, monitor_id, "eu", start=end - 3 * HOUR, hours=3, mean_ms=80, max_ms=300, histogram=eu)
        # us: the first hour predates the histograms; the second has all 120 in (100, 250] ms.
        hourly(session, monitor_id, "us", start=end - 2 * HOUR, hours=1, mean_ms=140, max_ms=None)
        us = latency_histogram({250: 120})
        hourly(session, monitor_id, "us", start=end - HOUR, hours=1, mean_ms=140, max_ms=None, histogram=us)
        hourly(session, monitor_id, "us", start=end - 3 * 24 * HOUR, hours=1, mean_ms=999)  # outside 1 day
    with world.sessions() as session:
        series = service.latency(session, monitor_id, days=1, now=now)
    assert [(s.location, [(p.mean_ms, p.max_ms, p.p50_ms, p.p95_ms) for p in s.points]) for s in series] == [
        # p50: rank 60 of the 100 in (50, 100]: 50 + 50 * 60 / 100; p95: rank 114, 14 of the 20 in (100, 250].
        ("eu", [(80.0, 300.0, 80.0, 100 + 150 * 14 / 20)] * 3),
        ("us", [(140.0, 280.0, None, None), (140.0, 280.0, 175.0, 242.5)]),
    ]


def test_merged_hours_sum_their_histograms() -> None:
    """Beyond 360 points a line, and per day in the table, hours merge: the percentiles are the run's."""
    start = utcnow().replace(minute=0, second=0, microsecond=0)
    fast = service.LatencyPoint(start, 20.0, 40.0, 100, tuple(latency_histogram({50: 100})))
    slow = service.LatencyPoint(start + HOUR, 400.0, 900.0, 100, tuple(latency_histogram({1000: 100})))
    unknown = service.LatencyPoint(start + 2 * HOUR, 30.0, 60.0, 100)
    (one,) = service.merged([fast, slow, unknown], 3)
    assert (one.hour, one.checks, one.max_ms) == (start, 300, 900.0)
    assert one.mean_ms == pytest.approx(150.0)
    assert one.histogram.total == 200  # the hour without a histogram adds nothing to it
    assert one.p50_ms == 50.0  # rank 100 of 200: the top of (25, 50], where the fast hour's 100 are
    # rank 190: 90 of the slow hour's 100 in (500, 1000] gives 950, above the run's 900 ms maximum: clamped.
    assert one.p95_ms == 900.0
    assert service.merged([unknown], 1)[0].p50_ms is None


def test_recent_checks_certificate_and_incident_history(world: World) -> None:
    now = utcnow()
    monitor_id = world.ids["acme/api"]
    expiry = (now + timedelta(days=20)).replace(microsecond=0)
    with world.sessions.begin() as session:
        checks(session, monitor_id, "eu", count=30, end=now, status="down")
        set_state(
            session, monitor_id, "eu", "down", at=now,
            facts={"certificate_expires_at": expiry.isoformat(), "certificate_days_left": 20},
        )  # fmt: skip
        incident(session, monitor_id, "acme", "api", code="H1", state="resolved", opened_at=now - 48 * HOUR)
        incident(session, monitor_id, "acme", "api", code="H2", opened_at=now - HOUR)
    with world.sessions() as session:
        found = service.detail(session, world.uma, "acme", "api")
    assert len(found.checks) == service.RECENT_CHECKS
    assert [c.reason for c in found.checks[:3]] == ["check 0", "check 1", "check 2"]
    assert found.certificate is not None
    assert (found.certificate.expires_at, found.certificate.days_left) == (expiry, 20)
    assert [i.code for i in found.incidents] == ["H2", "H1"]


def test_check_pages_follow_their_cursor(world: World) -> None:
    now = utcnow()
    monitor_id = world.ids["acme/shop"]
    with world.sessions.begin() as session:
        checks(session, monitor_id, "eu", count=7, end=now)
    seen: list[str] = []
    cursor = None
    with world.sessions() as session:
        while True:
            rows, cursor = service.checks(session, monitor_id, limit=3, cursor=cursor)
            seen.extend(r.reason for r in rows)
            if cursor is None:
                break
            cursor = service.decode_cursor(service.encode_cursor(cursor))
    assert seen == [f"check {k}" for k in range(7)]
    assert service.decode_cursor("not-a-cursor") is None


def test_the_yaml_shows_secret_references_never_their_values(world: World) -> None:
    with world.sessions() as session:
        api = service.detail(session, world.uma, "acme", "api")
        cron = service.detail(session, world.uma, "acme-ops", "cron")
    for found in (api, cron):
        assert HEADER_SECRET not in found.yaml
        assert PUSH_SECRET_VALUE not in found.yaml
    header = yaml.safe_load(api.yaml)["spec"]["http"]["headers"][0]
    assert header == {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "api-auth", "key": "header"}}}
    token = yaml.safe_load(cron.yaml)["spec"]["heartbeat"]["tokenFrom"]
    assert token == {"secretKeyRef": {"name": "cron-push", "key": "token"}}
    assert yaml.safe_load(api.yaml)["metadata"] == {"name": "api", "namespace": "acme", "labels": {"team": "web"}}
    assert (api.source_kind, api.source) == ("manifests", "the manifest files spectra run loads (edit them there)")


def test_a_literal_under_a_secret_sounding_key_is_hidden() -> None:
    hidden = service._hide_secrets({"auth": {"password": "hunter2", "user": "me"}, "token": ["a"]})
    assert hidden == {"auth": {"password": service.REDACTED, "user": "me"}, "token": [service.REDACTED]}


def test_the_chart_is_well_formed_svg_without_script(world: World) -> None:
    now = utcnow()
    end = service.hour_floor(now) + HOUR
    with world.sessions.begin() as session:
        spread = latency_histogram({10: 60, 100: 60})
        hourly(session, world.ids["acme/api"], "eu", start=end - 24 * HOUR, hours=24, mean_ms=80, histogram=spread)
        hourly(session, world.ids["acme/api"], "us", start=end - 24 * HOUR, hours=24, mean_ms=8, histogram=spread)
    with world.sessions() as session:
        series = service.latency(session, world.ids["acme/api"], days=1, now=now)
    svg = latency_svg(series, start=end - 24 * HOUR, end=end, title="Response time of acme/api <&>")
    root = ET.fromstring(svg)  # well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    title = root.find(f"{ns}title")
    assert title is not None
    assert title.text == "Response time of acme/api <&>"
    assert not [e for e in root.iter() if e.tag.lower().endswith("script") or e.tag.endswith("foreignObject")]
    assert not [e for e in root.iter() for name in e.attrib if name.lower().startswith("on") or name == "style"]
    lines = root.findall(f".//{ns}polyline")
    assert [line.findtext(f"{ns}title") for line in lines] == [
        f"{location}: hourly {measure}" for location in ("eu", "us") for measure in ("p50", "p95", "max")
    ]
    assert [line.get("stroke-dasharray") for line in lines[:3]] == [None, "4 3", "1 3"]  # told apart without colour
    assert {t.text for t in root.iter(f"{ns}text")} >= {"ms", "time (UTC)"}
    empty = ET.fromstring(latency_svg([], start=end - HOUR, end=end, title="nothing"))
    assert empty.find(f"{ns}desc").text == "No latency was recorded in this period."  # type: ignore[union-attr]


# --- the hub ----------------------------------------------------------------------------------------


def test_the_hub_tells_each_subscriber_only_what_it_may_see(world: World) -> None:
    async def scenario() -> None:
        hub = MonitorHub(world.sessions, autostart=False)
        hub.render = lambda lines, counts: ",".join(f"{m.namespace}/{m.name}={m.state}" for m in lines) + f" {counts}"
        await hub.tick()  # loads what the store holds: nothing is news
        assert hub.ready
        acme = hub.subscribe(frozenset({"acme", "acme-ops"}))
        globex = hub.subscribe(frozenset({"globex"}))
        later = utcnow() + timedelta(seconds=5)
        await asyncio.to_thread(_write, world, "acme/shop", "down", later)
        await hub.tick()
        assert acme.queue.get_nowait() == (
            "acme/shop=down {'down': 2, 'degraded': 0, 'pending': 1, 'up': 1, 'paused': 0}"
        )
        assert globex.queue.empty()
        await hub.tick()  # nothing changed since
        assert acme.queue.empty()
        await hub.stop()

    asyncio.run(scenario())


def test_a_slow_client_is_dropped_and_the_others_still_served(world: World) -> None:
    async def scenario() -> None:
        hub = MonitorHub(world.sessions, autostart=False)
        hub.render = lambda lines, counts: "message"
        await hub.tick()
        slow = hub.subscribe(frozenset({"acme"}))
        fast = hub.subscribe(frozenset({"acme"}))
        start = utcnow()
        for k in range(QUEUE_SIZE + 1):
            await asyncio.to_thread(_write, world, "acme/shop", "down" if k % 2 else "up", start + timedelta(seconds=k))
            await hub.tick()
            while not fast.queue.empty():
                fast.queue.get_nowait()
        assert slow.dropped
        assert slow not in hub.subscribers
        assert not fast.dropped
        assert fast in hub.subscribers
        assert hub.dropped == 1
        await hub.stop()

    asyncio.run(scenario())


def _write(world: World, ref: str, state: str, at: object) -> None:
    with world.sessions.begin() as session:
        set_state(session, world.ids[ref], "eu", state, at=at)  # type: ignore[arg-type]


def test_the_overviews_counting_judges_as_each_locations_rows_do(world: World) -> None:
    """`summaries` (counted in SQL) and `monitor_lines` (row by row) give every monitor the same state:
    a silent location is left out, a paused monitor is paused, quorum decides down or degraded."""
    now = utcnow()
    with world.sessions.begin() as session:
        set_state(session, world.ids["acme/api"], "us", "up", at=now - timedelta(hours=2))  # silent: not counted
        set_state(session, world.ids["acme/shop"], "eu", "degraded", at=now)
        session.execute(sa.update(Monitor).where(Monitor.resource_id == world.ids["acme-ops/db"]).values(paused=True))
    with world.sessions() as session:
        counted = {item.id: item.state for item in service.summaries(session)}
        rows = {line.id: line.state for line in service.monitor_lines(session)}
    assert counted == rows
    assert [counted[world.ids[ref]] for ref in ("acme/api", "acme/shop", "acme-ops/db", "acme-ops/cron")] == [
        "down", "degraded", "paused", "pending",
    ]  # fmt: skip


def test_the_overview_from_the_hubs_snapshot_is_the_overview_from_sql(world: World) -> None:
    async def scenario() -> None:
        hub = MonitorHub(world.sessions, autostart=False)
        assert hub.snapshot(frozenset({"acme"})) is None  # not running: the overview counts in SQL
        await hub.tick()
        later = utcnow() + timedelta(seconds=5)
        await asyncio.to_thread(_write, world, "acme/shop", "down", later)
        await hub.tick()
        for filters in (Filters(), Filters(group="team"), Filters(q="db"), Filters(label="team=web", state="down")):
            with world.sessions() as session:
                from_hub = service.overview(session, world.uma, filters, snapshot=hub.snapshot)
                from_sql = service.overview(session, world.uma, filters)
            assert (from_hub.counts, names(from_hub), from_hub.label_keys) == (
                from_sql.counts, names(from_sql), from_sql.label_keys,
            )  # fmt: skip
        assert names(from_hub) == ["acme/api", "acme/shop"]
        await hub.stop()

    asyncio.run(scenario())


def test_a_quiet_store_costs_the_hubs_poll_no_rows_however_many_changed_a_while_ago(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every monitor changed at once a minute ago (as at a start) and its unchanged state is stored again
    at every check since, as a busy probe does: a poll reads no state row, not the whole batch again on
    every poll; a later change is still read, and only it."""
    read: list[int] = []
    real = service.changes_since

    def counted(session: Any, *args: Any, **bounds: Any) -> list[service.StateChange]:
        rows = real(session, *args, **bounds)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(service, "changes_since", counted)
    a_minute_ago = utcnow() - timedelta(minutes=1)
    locations = (("acme/api", "eu"), ("acme/api", "us"), ("acme/shop", "eu"), ("acme-ops/db", "eu"),
                 ("globex/portal", "eu"))  # fmt: skip
    with world.sessions.begin() as session:
        for ref, location in locations:
            set_state(session, world.ids[ref], location, "up", at=a_minute_ago)

    def checked_again() -> None:  # the same state, stored now (reported_at moves, changed_at does not)
        with world.sessions.begin() as session:
            for ref, location in locations:
                set_state(session, world.ids[ref], location, "up", at=utcnow(), changed_at=a_minute_ago)

    async def scenario() -> None:
        hub = MonitorHub(world.sessions, autostart=False)
        hub.render = lambda lines, counts: ",".join(f"{m.namespace}/{m.name}={m.state}" for m in lines)
        await hub.tick()  # the load reads every row
        watcher = hub.subscribe(frozenset({"acme"}))
        read.clear()
        await asyncio.to_thread(checked_again)
        await hub.tick()
        await asyncio.to_thread(checked_again)
        await hub.tick()
        assert read == [0, 0]
        await asyncio.to_thread(_write, world, "acme/shop", "down", utcnow() + timedelta(seconds=1))
        await hub.tick()
        assert read[-1] == 1
        assert watcher.queue.get_nowait() == "acme/shop=down"
        await hub.stop()

    asyncio.run(scenario())


def test_the_hub_reads_every_monitor_again_only_when_their_configuration_changed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full read costs tens of milliseconds at 10,000 monitors: not on every poll, but as soon as a
    monitor is added (the fingerprint checked every CONFIG_CHECK_S, here at once)."""
    monkeypatch.setattr(hub_module, "CONFIG_CHECK_S", 0.0)
    reads: list[int] = []
    real = service.summaries

    def counted(session: Any, **options: Any) -> list[service.Summary]:
        reads.append(1)
        return real(session, **options)

    monkeypatch.setattr(service, "summaries", counted)

    async def scenario() -> None:
        hub = MonitorHub(world.sessions, autostart=False)
        await hub.tick()
        assert len(reads) == 1
        await hub.tick()
        await hub.tick()
        assert len(reads) == 1  # nothing was configured differently
        with world.sessions.begin() as session:
            apply_monitors(session, [monitor("new-one", "acme")])
        await hub.tick()
        assert len(reads) == 2
        assert "new-one" in {item.name for item in hub.snapshot(frozenset({"acme"})) or []}
        await hub.stop()

    asyncio.run(scenario())
