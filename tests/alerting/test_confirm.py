"""Which monitors a pass looks at: only those a location judges down and those with an open incident, so a
pass costs what is wrong, not how many monitors there are; SQLite and MariaDB."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from spectra.alerting.confirm import candidate_monitors, monitor_views
from spectra.store import Incident, IncidentState, Monitor, batches
from tests.factories.alerting import World

MORE = "\n".join(
    f"""---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {{name: {name}}}
spec: {{type: http, interval: 30s, http: {{url: "https://{name}.example.test/"}}}}"""
    for name in ("api", "db", "queue")
)


async def test_a_pass_looks_only_at_monitors_judged_down_or_with_an_open_incident(any_world: World) -> None:
    world = any_world
    world.apply(MORE)
    alerter = world.alerter()
    for name, state in {"web": "down", "api": "up", "db": "up", "queue": "pending"}.items():
        world.set_state(name, state)
    await world.tick(alerter)
    [incident] = world.incidents()  # web's
    assert incident.monitor_id is not None
    world.set_state("web", "up")  # recovered: confirmed up, its incident still open before the next pass
    world.set_state("db", "down")
    with world.sessions() as session:
        ids = {row.name: row.resource_id for row in session.execute(select(Monitor.name, Monitor.resource_id))}
        open_incidents = {incident.monitor_id: incident.id}

        candidates = candidate_monitors(session, open_incidents)
        views = monitor_views(session, world.clock(), candidates)
        every = monitor_views(session, world.clock())

    assert candidates == {ids["web"], ids["db"]}
    assert [(view.name, view.state, view.confirmed_down, view.confirmed_up) for view in views] == [
        ("db", "down", True, False),
        ("web", "up", False, True),
    ]
    assert {view.name for view in every} == {"web", "sleepy", "api", "db", "queue"}
    assert [view for view in every if view.monitor_id in candidates] == views  # the same views, fewer read

    await world.tick(alerter)
    states = {row.monitor_name: row.state for row in world.incidents()}
    assert states == {"web": IncidentState.RESOLVED, "db": IncidentState.OPEN}


async def test_no_candidates_no_views(any_world: World) -> None:
    world = any_world
    world.set_state("web", "up")
    with world.sessions() as session:
        assert candidate_monitors(session, {}) == set()
        assert monitor_views(session, world.clock(), set()) == []
        assert session.scalars(select(Incident)).first() is None


async def test_views_of_many_ids_come_by_name_across_chunks(any_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """More ids than one IN (...) holds are read chunk by chunk (by id), yet come back by namespace and name,
    as one statement's rows do."""
    world = any_world
    world.apply(MORE)
    monkeypatch.setattr(batches, "CHUNK", 2)
    with world.sessions() as session:
        ids = {row.name: row.resource_id for row in session.execute(select(Monitor.name, Monitor.resource_id))}
        chunked = monitor_views(session, world.clock(), ids.values())
        whole = monitor_views(session, world.clock())

    assert len(ids) > 2 * batches.CHUNK
    assert [view.name for view in chunked] == ["api", "db", "queue", "sleepy", "web"]
    assert chunked == whole
