"""Desired-config tables: identity, cascades, the per-location due-monitor query."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import (
    CheckResult,
    DailyRollup,
    HeartbeatPush,
    HourlyRollup,
    Incident,
    Monitor,
    MonitorLease,
    MonitorLocation,
    MonitorState,
    Resource,
    insert_results,
    push_token_hash,
    record_push,
    rollup,
    save_states,
)
from spectra.store.worker_leases import ensure_leases
from tests.factories.store import NOW, MonitorFactory, state_row
from tests.support.databases import sqlite_only

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def count(session: Session, model: type[object]) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


@pytest.fixture
def monitor_with_history(session: Session, make_monitor: MonitorFactory) -> Monitor:
    monitor = make_monitor("checkout", locations=("eu-west", "us-east"))
    insert_results(
        session,
        [{"monitor_id": monitor.resource_id, "location": "eu-west", "checked_at": T0, "status": "down"}],
    )
    rollup(session, T0, T0.replace(hour=11))
    session.add(
        Incident(
            code="AB12",
            namespace="default",
            monitor_id=monitor.resource_id,
            monitor_name="checkout",
            title="checkout is down",
            severity="critical",
        )
    )
    session.commit()
    return monitor


def test_deleting_a_resource_cascades_in_the_database(session: Session, monitor_with_history: Monitor) -> None:
    """A plain SQL DELETE (as the operator or a DBA might issue) removes everything hanging off it."""
    assert (count(session, MonitorLocation), count(session, CheckResult), count(session, HourlyRollup)) == (2, 1, 1)

    session.execute(sa.delete(Resource).where(Resource.name == "checkout"))
    session.commit()
    session.expunge_all()

    for model in (Resource, Monitor, MonitorLocation, CheckResult, HourlyRollup, DailyRollup):
        assert count(session, model) == 0, model.__name__
    incident = session.scalars(sa.select(Incident)).one()
    assert incident.monitor_id is None  # ON DELETE SET NULL: the history stays
    assert incident.monitor_name == "checkout"


def test_deleting_through_the_orm_cascades_too(session: Session, monitor_with_history: Monitor) -> None:
    session.delete(monitor_with_history.resource)
    session.commit()
    session.expunge_all()
    assert [count(session, m) for m in (Monitor, MonitorLocation, CheckResult, DailyRollup)] == [0, 0, 0, 0]
    assert session.scalars(sa.select(Incident.monitor_id)).one() is None


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


def test_results_need_an_existing_monitor(session: Session) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        insert_results(session, [{"monitor_id": 999, "location": "eu", "checked_at": T0, "status": "up"}])


def test_kind_namespace_name_is_unique(session: Session, make_monitor: MonitorFactory) -> None:
    make_monitor("web")
    session.commit()
    with pytest.raises(sa.exc.IntegrityError):
        make_monitor("web")


def test_names_are_case_sensitive_on_both_databases(session: Session, make_monitor: MonitorFactory) -> None:
    """Binary collation on MySQL matches SQLite: 'Web' and 'web' are different objects."""
    make_monitor("web")
    make_monitor("Web")
    session.commit()
    assert sorted(session.scalars(sa.select(Monitor.name))) == ["Web", "web"]


def test_same_name_in_other_namespace_or_kind(session: Session, make_monitor: MonitorFactory) -> None:
    make_monitor("web", namespace="team-a")
    make_monitor("web", namespace="team-b")
    session.add(Resource(kind="StatusPage", namespace="team-a", name="web", spec={}, spec_hash="h", source="cluster"))
    session.commit()
    assert count(session, Resource) == 3


def test_due_monitors_of_a_location(session: Session, make_monitor: MonitorFactory) -> None:
    make_monitor("a", locations=("eu-west", "us-east"))
    make_monitor("b", locations=("us-east",))
    paused = make_monitor("c", locations=("eu-west",))
    paused.paused = True
    make_monitor("d")
    session.commit()

    due = session.scalars(
        sa.select(Monitor.name)
        .join(MonitorLocation)
        .where(MonitorLocation.location == "eu-west", Monitor.paused.is_(False))
        .order_by(Monitor.name)
    ).all()
    assert due == ["a"]


@sqlite_only
def test_location_lookup_uses_the_index(engine: sa.Engine) -> None:
    """Checked on SQLite only: its plan is stable, while InnoDB may scan tiny tables whatever the indexes."""
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT monitor_id FROM monitor_locations WHERE location = 'eu-west'"
        ).all()
    assert any("ix_monitor_locations_location" in str(row) for row in plan)


def test_resource_defaults_and_updated_at(session: Session) -> None:
    resource = Resource(kind="Contact", namespace="default", name="alice", spec_hash="h", source="cluster")
    session.add(resource)
    session.commit()
    assert (resource.generation, resource.spec, resource.labels, resource.uid) == (0, {}, {}, None)
    created, updated = resource.created_at, resource.updated_at
    resource.generation = 2
    session.commit()
    assert resource.created_at == created
    assert resource.updated_at >= updated
