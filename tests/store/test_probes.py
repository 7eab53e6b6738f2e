"""Probe bookkeeping in the store: states, the overview, heartbeat pushes, leases; SQLite and MariaDB."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import (
    CheckResult,
    HeartbeatPush,
    MonitorLease,
    MonitorState,
    ProbeWorker,
    current_revision,
    downgrade,
    head_revision,
    insert_results,
    last_push,
    load_states,
    make_engine,
    monitor_overview,
    push_token_hash,
    record_push,
    save_states,
    session_factory,
    upgrade,
)
from spectra.store.location_monitors import location_fingerprint, location_monitors
from spectra.store.monitor_states import mark_paused
from spectra.store.overview import combined_state
from spectra.store.types import NEVER
from spectra.store.worker_leases import (
    claim_leases,
    ensure_leases,
    free_leases,
    held_leases,
    live_workers,
    release_leases,
    renew_leases,
    touch_worker,
)
from spectra.web.monitors import monitor_json

from .conftest import MonitorFactory

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def state_row(monitor_id: int, location: str, state: str, *, at: datetime = NOW, **extra: Any) -> dict[str, Any]:
    return {
        "monitor_id": monitor_id,
        "location": location,
        "state": state,
        "last_status": {"pending": None, "paused": None}.get(state, "down" if state == "down" else "up"),
        "consecutive_failures": 0,
        "consecutive_successes": 0,
        "last_check_at": at,
        "last_latency_ms": 12.5,
        "last_reason": f"{state} in {location}",
        "changed_at": at,
        "facts": None,
        **extra,
    }


@pytest.mark.parametrize(
    ("paused", "quorum", "states", "expected"),
    [
        (True, 1, ["down"], "paused"),
        (False, 1, [], "pending"),
        (False, 1, ["up", "up"], "up"),
        (False, 2, ["down", "down", "up"], "down"),
        (False, 2, ["down", "up", "up"], "degraded"),  # down below quorum
        (False, 1, ["degraded", "up"], "degraded"),
        (False, 3, ["down", "down"], "down"),  # quorum capped at the locations reporting
        (False, 2, ["down"], "down"),
        (False, 1, ["down", "degraded"], "down"),
    ],
)
def test_combined_state(paused: bool, quorum: int, states: list[str], expected: str) -> None:
    assert combined_state(paused, quorum, states) == expected


def test_states_round_trip_with_one_upsert_per_batch(session: Session, make_monitor: MonitorFactory) -> None:
    a, b = make_monitor(locations=("eu",)), make_monitor(locations=("eu",))
    save_states(session, [state_row(a.resource_id, "eu", "up"), state_row(b.resource_id, "eu", "down")])
    later = NOW + timedelta(minutes=1)
    updated = state_row(a.resource_id, "eu", "down", at=later, consecutive_failures=2, facts={"status_code": 500})
    save_states(session, [updated])
    session.expire_all()

    states = load_states(session, [a.resource_id, b.resource_id, 999], "eu")
    assert set(states) == {a.resource_id, b.resource_id}
    row = states[a.resource_id]
    assert (row.state, row.consecutive_failures, row.last_check_at, row.facts) == (
        "down",
        2,
        later,
        {"status_code": 500},
    )
    assert load_states(session, None, "eu").keys() == states.keys()
    assert load_states(session, None, "us") == {}


def test_state_values_are_constrained(session: Session, make_monitor: MonitorFactory) -> None:
    monitor = make_monitor(locations=("eu",))
    with pytest.raises(sa.exc.IntegrityError):
        save_states(session, [state_row(monitor.resource_id, "eu", "sideways")])


def test_overview_combines_locations(session: Session, make_monitor: MonitorFactory) -> None:
    quorum2 = make_monitor("checkout", locations=("eu", "us", "ap"))
    quorum2.quorum = 2
    partial = make_monitor("search", locations=("eu", "us", "ap"))
    partial.quorum = 2
    stale = make_monitor("stale", locations=("eu", "us"))
    paused = make_monitor("paused", locations=("eu",))
    paused.paused = True
    make_monitor("fresh", locations=("eu",))
    session.flush()
    old = NOW - timedelta(seconds=91)  # interval 30 s: more than 3 intervals ago
    save_states(
        session,
        [
            state_row(quorum2.resource_id, "eu", "down"),
            state_row(quorum2.resource_id, "us", "down", at=NOW - timedelta(seconds=5)),
            state_row(quorum2.resource_id, "ap", "up"),
            state_row(partial.resource_id, "eu", "down"),
            state_row(partial.resource_id, "us", "up"),
            state_row(partial.resource_id, "ap", "up"),
            state_row(stale.resource_id, "eu", "up"),
            state_row(stale.resource_id, "us", "down", at=old),  # not reporting: left out, not failing
            state_row(paused.resource_id, "eu", "paused"),
        ],
    )

    overview = {item.name: item for item in monitor_overview(session, now=NOW)}

    assert [item.name for item in monitor_overview(session, now=NOW)] == sorted(overview)
    assert {name: item.state for name, item in overview.items()} == {
        "checkout": "down",
        "search": "degraded",
        "stale": "up",
        "paused": "paused",
        "fresh": "pending",
    }
    checkout = overview["checkout"]
    assert (checkout.type, checkout.target, checkout.last_check_at) == ("http", "https://checkout.example", NOW)
    assert checkout.reason == "down in eu"
    assert checkout.last_latency_ms == 12.5
    assert [(loc.location, loc.state, loc.reporting) for loc in overview["stale"].locations] == [
        ("eu", "up", True),
        ("us", "down", False),
    ]
    assert [(loc.location, loc.state) for loc in overview["fresh"].locations] == [("eu", "pending")]
    assert overview["fresh"].last_check_at is None
    assert overview["fresh"].reason == ""
    # quorum 1 (the factory's default) with one location reporting down: down
    save_states(session, [state_row(stale.resource_id, "eu", "down")])
    assert {i.name: i.state for i in monitor_overview(session, now=NOW)}["stale"] == "down"


def test_overview_json_has_the_api_fields(session: Session, make_monitor: MonitorFactory) -> None:
    monitor = make_monitor("api", locations=("eu",))
    save_states(session, [state_row(monitor.resource_id, "eu", "up")])
    (item,) = monitor_overview(session, now=NOW)
    assert monitor_json(item) == {
        "namespace": "default",
        "name": "api",
        "type": "http",
        "target": "https://api.example",
        "paused": False,
        "state": "up",
        "lastCheck": NOW.isoformat(),
        "latencyMs": 12.5,
        "reason": "up in eu",
        "locations": [{"location": "eu", "state": "up", "lastCheck": NOW.isoformat(), "reporting": True}],
    }


def test_heartbeat_pushes_by_token_hash(session: Session, make_monitor: MonitorFactory) -> None:
    cron, other = make_monitor("cron"), make_monitor("other")
    cron.push_token_hash = push_token_hash("s3cret-token")
    session.flush()

    assert last_push(session, cron.resource_id) is None
    assert record_push(session, "s3cret-token", NOW) is True
    assert record_push(session, "s3cret-token", NOW + timedelta(seconds=30)) is True
    assert record_push(session, "wrong-token", NOW) is False
    session.expire_all()

    assert last_push(session, cron.resource_id) == NOW + timedelta(seconds=30)
    assert session.get(HeartbeatPush, cron.resource_id).pushes == 2  # type: ignore[union-attr]
    assert last_push(session, other.resource_id) is None
    stored = session.scalars(sa.select(sa.func.count()).select_from(HeartbeatPush)).one()
    assert stored == 1
    # Only the hash is stored, never the token.
    assert cron.push_token_hash == hashlib.sha256(b"s3cret-token").hexdigest()
    assert "s3cret-token" not in str(session.execute(sa.select(HeartbeatPush.__table__)).all())


def test_push_token_hashes_are_unique(session: Session, make_monitor: MonitorFactory) -> None:
    a, b = make_monitor(), make_monitor()
    a.push_token_hash = b.push_token_hash = push_token_hash("same")
    with pytest.raises(sa.exc.IntegrityError):
        session.flush()


def test_two_workers_never_win_the_same_lease(session: Session, make_monitor: MonitorFactory) -> None:
    ids = [make_monitor(locations=("eu",)).resource_id for _ in range(6)]
    ensure_leases(session, ids, "eu")
    ensure_leases(session, ids, "eu")  # idempotent: existing rows stay as they are
    assert free_leases(session, "eu", NOW) == set(ids)
    until = NOW + timedelta(seconds=30)

    won_a = claim_leases(session, "worker-a", "eu", ids[:4], now=NOW, until=until)
    won_b = claim_leases(session, "worker-b", "eu", ids[2:], now=NOW, until=until)  # overlaps a's

    assert (won_a, won_b) == (4, 2)
    assert held_leases(session, "worker-a", "eu") == set(ids[:4])
    assert held_leases(session, "worker-b", "eu") == set(ids[4:])
    assert free_leases(session, "eu", NOW) == set()
    # a stops renewing; b renews. Once a's leases run out they are free again, b's are not.
    assert renew_leases(session, "worker-b", "eu", NOW + timedelta(seconds=90)) == 2
    later = NOW + timedelta(seconds=60)
    assert free_leases(session, "eu", later) == set(ids[:4])
    assert claim_leases(session, "worker-b", "eu", ids, now=later, until=later + timedelta(seconds=30)) == 4
    assert held_leases(session, "worker-b", "eu") == set(ids)
    assert release_leases(session, "worker-b", "eu", ids[:3]) == 3
    assert free_leases(session, "eu", later) == set(ids[:3])
    assert release_leases(session, "worker-b", "eu") == 3
    rows = session.execute(sa.select(MonitorLease.worker_id, MonitorLease.lease_until)).all()
    assert set(rows) == {(None, NEVER)}


def test_live_workers(session: Session) -> None:
    touch_worker(session, "a", "eu", NOW - timedelta(seconds=40))
    touch_worker(session, "b", "eu", NOW - timedelta(seconds=5))
    touch_worker(session, "c", "us", NOW)
    touch_worker(session, "a", "eu", NOW - timedelta(seconds=20))  # a heartbeat moves last_seen_at
    assert live_workers(session, "eu", NOW - timedelta(seconds=30)) == 2
    assert live_workers(session, "eu", NOW - timedelta(seconds=10)) == 1
    started = session.scalars(sa.select(ProbeWorker.started_at).where(ProbeWorker.worker_id == "a")).one()
    assert started == NOW - timedelta(seconds=40)


def test_location_monitors_and_fingerprint(session: Session, make_monitor: MonitorFactory) -> None:
    a = make_monitor("a", locations=("eu", "us"))
    make_monitor("b", locations=("us",))
    before = location_fingerprint(session, "eu")
    rows = location_monitors(session, "eu")
    assert [(r.monitor_id, r.name, r.paused, r.spec) for r in rows] == [
        (a.resource_id, "a", False, {"type": "http", "http": {"url": "https://a.example"}})
    ]
    assert location_monitors(session, "eu", with_spec=False)[0].spec is None
    assert location_fingerprint(session, "eu") == before
    a.resource.updated_at = NOW + timedelta(days=3650)
    session.flush()
    assert location_fingerprint(session, "eu") != before
    assert location_fingerprint(session, "nowhere") == (0, 0, None)


def test_mark_paused(session: Session, make_monitor: MonitorFactory) -> None:
    a, b = make_monitor(locations=("eu",)), make_monitor(locations=("eu",))
    save_states(session, [state_row(a.resource_id, "eu", "up")])
    mark_paused(session, {a.resource_id, b.resource_id}, "eu", NOW + timedelta(hours=1))
    mark_paused(session, {a.resource_id}, "eu", NOW + timedelta(hours=2))  # already paused: unchanged
    session.expire_all()
    states = load_states(session, None, "eu")
    assert {k: (v.state, v.changed_at) for k, v in states.items()} == {
        a.resource_id: ("paused", NOW + timedelta(hours=1)),
        b.resource_id: ("paused", NOW + timedelta(hours=1)),
    }
    assert states[a.resource_id].last_reason == "up in eu"  # the last result's details stay


def test_deleting_a_monitor_removes_its_probe_rows(session: Session, make_monitor: MonitorFactory) -> None:
    monitor = make_monitor(locations=("eu",))
    monitor.push_token_hash = push_token_hash("t")
    session.flush()
    save_states(session, [state_row(monitor.resource_id, "eu", "up")])
    ensure_leases(session, [monitor.resource_id], "eu")
    record_push(session, "t", NOW)
    session.delete(monitor.resource)
    session.flush()
    for model in (MonitorState, MonitorLease, HeartbeatPush):
        assert session.scalars(sa.select(sa.func.count()).select_from(model)).one() == 0


def test_downgrade_keeps_monitors_and_results(database_url: str) -> None:
    """0002's downgrade rebuilds tables on SQLite: the rows of 0001's tables must survive it."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with session_factory(engine).begin() as session:
            session.execute(
                sa.text(
                    "INSERT INTO resources (id, kind, namespace, name, generation, spec, labels, spec_hash, source,"
                    " created_at, updated_at) VALUES (7, 'Monitor', 'default', 'm', 1, '{}', '{}', 'h', 's',"
                    " '2024-05-01 12:00:00', '2024-05-01 12:00:00')"
                )
            )
            session.execute(
                sa.text(
                    "INSERT INTO monitors (resource_id, namespace, name, type, target, interval_ms, timeout_ms, paused,"
                    " quorum, failure_threshold, success_threshold, severity, labels, push_token_hash)"
                    " VALUES (7, 'default', 'm', 'tcp', 'h:1', 1000, 500, 0, 1, 1, 1, 'critical', '{}', 'abc')"
                )
            )
            insert_results(
                session, [{"monitor_id": 7, "location": "eu", "checked_at": NOW, "status": "up", "scheduled_at": NOW}]
            )
        downgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM monitors")).scalars().all() == ["m"]
            assert conn.execute(sa.text("SELECT count(*) FROM check_results")).scalar() == 1
            assert "scheduled_at" not in {c["name"] for c in sa.inspect(conn).get_columns("check_results")}
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with session_factory(engine)() as session:
            assert session.scalars(sa.select(CheckResult.scheduled_at)).all() == [None]
    finally:
        engine.dispose()
