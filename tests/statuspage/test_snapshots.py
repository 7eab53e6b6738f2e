"""Page snapshots: content, few queries, ETags, and the cache that survives a failing database."""

from __future__ import annotations

import dataclasses
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from spectra.domain.global_maintenance import switch_off, switch_on
from spectra.statuspage.incidents import add_update, open_incident
from spectra.statuspage.model import PlatformNotice
from spectra.statuspage.snapshots import SnapshotCache, build_all, build_snapshot, snapshot_version
from spectra.store import DailyRollup
from tests.factories.pages import DB_NOW as NOW
from tests.factories.pages import MONITORS, PAGE, PageDb, page_db
from tests.support.databases import sqlite_only

TODAY = NOW.date()

WINDOWS = """
apiVersion: spectra.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: db-upgrade}
spec:
  start: "2026-03-10T11:00:00Z"
  end: "2026-03-10T13:00:00Z"
  monitors: [db]
  statusPages: [main]
  message: "Upgrading the **database** <img src=x onerror=alert(1)>"
---
apiVersion: spectra.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: web-weekly}
spec:
  recurrence: {rrule: "FREQ=WEEKLY;BYDAY=SU", start: "2026-01-04T03:00:00Z", duration: 30m, timeZone: UTC}
  monitorSelector: {matchLabels: {tier: web}}
  statusPages: [main]
---
apiVersion: spectra.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: unannounced}
spec:
  start: "2026-03-11T00:00:00Z"
  end: "2026-03-11T01:00:00Z"
  monitors: [api]
"""


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> PageDb:
    return page_db(sessions, MONITORS, PAGE, WINDOWS)


def at(days_ago: int, hour: int = 9) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), datetime.min.time(), tzinfo=UTC).replace(hour=hour)


def test_snapshot_content(db: PageDb) -> None:
    db.set_states({"api": "up", "web-1": "up", "web-2": "down", "db": "up"})
    with db.sessions() as session:
        old = open_incident(
            session, "default", "main", title="Old outage", impact="major", components=["API"], body="Down.",
            now=at(3),
        )  # fmt: skip
        add_update(
            session, old.page_incident_id, "resolved", "Fixed [here](javascript:alert(1)).", "ops", now=at(3, 10)
        )
        current = open_incident(
            session, "default", "main", title="Web slow", impact="minor", components=["Web"], body="Looking.",
            now=at(0, 11),
        )  # fmt: skip
        add_update(
            session,
            current.page_incident_id,
            "identified",
            "**Cause** found.",
            "ops",
            now=at(0, 11) + timedelta(minutes=5),
        )
        open_incident(
            session, "default", "other", title="Elsewhere", impact="minor", components=[], body="x", now=at(1)
        )
        session.commit()
        snapshot = build_snapshot(session, "default", "main", NOW)

    assert (snapshot.namespace, snapshot.name, snapshot.slug, snapshot.title) == (
        "default",
        "main",
        "main",
        "Main status",
    )
    assert snapshot.description_html is not None
    assert "<strong>our</strong>" in snapshot.description_html
    assert "<script" not in snapshot.description_html
    assert (snapshot.hostnames, snapshot.accent_color, snapshot.logo_url) == (("status.example.test",), "#112233", None)
    assert snapshot.public
    assert snapshot.subscriptions_enabled
    assert not snapshot.stale
    assert snapshot.generated_at == NOW
    assert [(g.name, [c.name for c in g.components]) for g in snapshot.groups] == [
        ("Core", ["API", "Web"]),
        ("Data", ["Database"]),
    ]
    api, web = snapshot.groups[0].components
    database = snapshot.groups[1].components[0]
    assert api.description_html == '<p>The <a href="https://api.example.test/docs" rel="nofollow noopener">API</a></p>'
    assert (api.state, web.state, database.state) == ("operational", "partial_outage", "maintenance")
    assert web.monitors == ("default/web-1", "default/web-2")
    assert snapshot.overall == "partial_outage"
    assert all(len(c.days) == 7 for g in snapshot.groups for c in g.components)

    assert [i.title for i in snapshot.active_incidents] == ["Web slow"]
    assert [(u.state, u.body_html) for u in snapshot.active_incidents[0].updates] == [
        ("identified", "<p><strong>Cause</strong> found.</p>"),  # newest first
        ("investigating", "<p>Looking.</p>"),
    ]
    assert len(snapshot.past_incidents) == 14
    assert [d for d, _ in snapshot.past_incidents] == [TODAY - timedelta(days=n) for n in range(14)]
    past = {d: [i.title for i in items] for d, items in snapshot.past_incidents if items}
    assert past == {TODAY - timedelta(days=3): ["Old outage"]}
    resolved = snapshot.past_incidents[3][1][0]
    assert resolved.resolved_at == at(3, 10)
    assert "<a" not in resolved.updates[0].body_html

    maintenance = [(m.name, m.start, m.end, m.active, m.components) for m in snapshot.maintenance]
    sunday = datetime(2026, 3, 15, 3, 0, tzinfo=UTC)
    assert maintenance == [
        ("db-upgrade", at(0, 11), at(0, 13), True, ("Database",)),
        ("web-weekly", sunday, sunday + timedelta(minutes=30), False, ("Web",)),
        ("web-weekly", sunday + timedelta(days=7), sunday + timedelta(days=7, minutes=30), False, ("Web",)),
    ]
    message = snapshot.maintenance[0].message_html
    assert message is not None
    assert "<strong>database</strong>" in message
    assert "<img" not in message


def test_global_maintenance_shows_its_message_on_every_page_while_it_asks(db: PageDb) -> None:
    second = PAGE.replace("name: main", "name: second").replace("slug: main", "slug: second")
    db.apply(second.replace("hostnames: [status.example.test]", "hostnames: []"))
    until = NOW + timedelta(hours=1)
    with db.sessions.begin() as session:
        switch_on(
            session,
            message="Upgrading <b>everything</b>",
            until=until,
            show_on_status_pages=True,
            started_by="cli",
            now=NOW - timedelta(minutes=5),
        )
    with db.sessions() as session:
        during = build_all(session, NOW)
        after_until = build_all(session, until)
    assert {slug: page.notice for slug, page in during.items()} == {
        "main": PlatformNotice("Upgrading <b>everything</b>", until),
        "second": PlatformNotice("Upgrading <b>everything</b>", until),
    }
    assert snapshot_version(during["main"]) != snapshot_version(dataclasses.replace(during["main"], notice=None))
    assert all(page.notice is None for page in after_until.values())

    with db.sessions.begin() as session:  # on again, without the banner: pages say nothing
        switch_off(session, now=NOW)
        switch_on(session, message="Quiet", until=None, show_on_status_pages=False, started_by="cli", now=NOW)
    with db.sessions() as session:
        assert all(page.notice is None for page in build_all(session, NOW).values())


def test_build_all_by_slug_and_missing_page(db: PageDb) -> None:
    with db.sessions() as session:
        assert list(build_all(session, NOW)) == ["main"]
        with pytest.raises(LookupError):
            build_snapshot(session, "default", "nope", NOW)


def test_version_follows_content_not_time(db: PageDb) -> None:
    db.set_states({"api": "up", "web-1": "up", "web-2": "up", "db": "up"})
    with db.sessions() as session:
        first = build_snapshot(session, "default", "main", NOW)
        again = build_snapshot(session, "default", "main", NOW + timedelta(seconds=10))
    db.set_states({"api": "down"})
    with db.sessions() as session:
        changed = build_snapshot(session, "default", "main", NOW)
    assert len(first.version) == 32
    assert first.version == again.version
    assert first.generated_at != again.generated_at
    assert changed.version != first.version


def big_page(components: int) -> str:
    monitors = "".join(
        f"""---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {{name: m{i}}}
spec: {{type: http, interval: 1m, http: {{url: "https://m{i}.example.test/"}}}}
"""
        for i in range(components)
    )
    items = "".join(f"        - {{name: C{i}, monitors: [m{i}]}}\n" for i in range(components))
    return (
        monitors
        + """---
apiVersion: spectra.dev/v1alpha1
kind: StatusPage
metadata: {name: big}
spec:
  slug: big
  title: Big
  historyDays: 90
  groups:
    - name: All
      components:
"""
        + items
    )


class Statements:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, *args: Any) -> None:
        self.seen.append(str(args[2]))


@sqlite_only
def test_big_page_uses_a_few_queries(engine: sa.Engine, sessions: sessionmaker[Session]) -> None:
    """50 components x 90 days: a constant number of statements, not one per component or day."""
    db = page_db(sessions, big_page(50))
    ids = db.ids()
    rows = [
        {
            "monitor_id": ids[f"m{i}"],
            "location": "default",
            "bucket_start": datetime.combine(TODAY - timedelta(days=d), datetime.min.time(), tzinfo=UTC),
            "checks_total": 1440,
            "checks_up": 1440 - (d % 3),
            "checks_degraded": 0,
            "checks_down": d % 3,
            "latency_count": 0,
            "latency_sum_ms": 0.0,
            "latency_max_ms": None,
        }
        for i in range(50)
        for d in range(90)
    ]
    with db.sessions() as session:
        session.execute(sa.insert(DailyRollup), rows)
        session.commit()
    statements = Statements()
    event.listen(engine, "before_cursor_execute", statements)
    try:
        with db.sessions() as session:
            snapshot = build_snapshot(session, "default", "big", NOW)
    finally:
        event.remove(engine, "before_cursor_execute", statements)
    assert len(statements.seen) <= 9, statements.seen  # 9th: ad-hoc maintenance (page_maintenance)
    components = snapshot.groups[0].components
    assert len(components) == 50
    assert all(len(c.days) == 90 for c in components)
    assert components[7].days[-2].down_minutes == 1  # one day ago: 1 of 1440 checks down
    assert all(c.uptime_percent is not None and 99.8 < c.uptime_percent < 100 for c in components)


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@sqlite_only
def test_cache_refreshes_after_ttl_and_finds_hosts(sessions: sessionmaker[Session]) -> None:
    db = page_db(sessions)
    db.set_states({"api": "up", "web-1": "up", "web-2": "up", "db": "up"})
    ticker = Ticker()
    cache = SnapshotCache(db.sessions, ttl_s=5, clock=lambda: NOW, monotonic=ticker)
    first = cache.get("main")
    assert first is not None
    assert first.overall == "operational"
    assert cache.by_host("Status.Example.Test:8443") is first
    assert cache.by_host("status.example.test.") is first
    assert cache.by_host("other.example.test") is None
    assert cache.get("nope") is None
    db.set_states({"api": "down"})
    ticker.now = 4.9
    assert cache.get("main") is first  # within the TTL: not read again
    ticker.now = 5.0
    second = cache.get("main")
    assert second is not None
    assert second.overall == "major_outage"
    assert not second.stale


def break_database(engine: sa.Engine) -> None:
    """Make every further query fail: the SQLite file or the MariaDB database is gone."""
    engine.dispose()
    url = engine.url
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        os.remove(url.database)
        return
    admin = sa.create_engine(url.set(database=""))
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE `{url.database}`"))
    finally:
        admin.dispose()


def test_cache_serves_stale_snapshot_when_the_database_fails(
    engine: sa.Engine, sessions: sessionmaker[Session]
) -> None:
    db = page_db(sessions)
    db.set_states({"api": "up", "web-1": "up", "web-2": "up", "db": "up"}, now=NOW)
    ticker = Ticker()
    cache = SnapshotCache(db.sessions, ttl_s=5, clock=lambda: NOW, monotonic=ticker)
    good = cache.get("main")
    assert good is not None
    assert not good.stale
    break_database(engine)
    ticker.now = 10
    stale = cache.get("main")
    assert stale is not None
    assert stale.stale
    assert (stale.overall, stale.version, stale.generated_at) == (good.overall, good.version, good.generated_at)
    assert stale.groups == good.groups
    assert cache.by_host("status.example.test") == stale


@sqlite_only
def test_a_read_during_the_first_build_waits_for_it_instead_of_finding_no_page(
    sessions: sessionmaker[Session],
) -> None:
    """The process's first pass builds the snapshots as the first requests arrive: they get the page, not a 404."""
    db = page_db(sessions)
    db.set_states({"api": "up", "web-1": "up", "web-2": "up", "db": "up"})
    building, release = threading.Event(), threading.Event()

    def slow_first_session() -> Session:
        if not building.is_set():
            building.set()
            assert release.wait(timeout=60)
        return db.sessions()

    cache = SnapshotCache(cast("sessionmaker[Session]", slow_first_session), ttl_s=5, clock=lambda: NOW)
    background = threading.Thread(target=cache.refresh)  # as StatusPages.run's first pass
    background.start()
    assert building.wait(timeout=60)
    found: list[object] = []
    request = threading.Thread(target=lambda: found.append(cache.get("main")))
    request.start()
    request.join(timeout=1)
    answered_early = not request.is_alive()
    release.set()
    background.join(timeout=60)
    assert not answered_early, f"the request answered {found} while the first build was still running"
    request.join(timeout=60)
    assert len(found) == 1
    assert found[0] is not None
    assert found[0] is cache.get("main")


def test_cache_without_any_good_snapshot_has_nothing_to_serve(
    engine: sa.Engine, sessions: sessionmaker[Session]
) -> None:
    """Never a made-up page: before the first successful read there is no snapshot at all."""
    db = page_db(sessions)
    break_database(engine)
    cache = SnapshotCache(db.sessions, ttl_s=5, clock=lambda: NOW, monotonic=Ticker())
    assert cache.get("main") is None
    assert cache.refresh() is False
