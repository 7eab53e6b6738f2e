"""The worker on SQLite and MariaDB: real TCP checks against 127.0.0.1, slot times, reloads, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
import sqlalchemy as sa

from spectra.probe.context import CheckContext
from spectra.probe.database_health import DatabaseHealth
from spectra.probe.leases import LeaseAssignment
from spectra.probe.metrics import ProbeMetrics
from spectra.probe.scheduler import ScheduledCheck, default_phase
from spectra.probe.worker import KEEP_VALIDATED_UP_TO_S, Worker
from spectra.probe.writer import ResultWriter
from spectra.store import CheckResult as ResultRow
from spectra.store import MonitorState
from tests.factories.monitors import LOCAL_INTERVAL_S, tcp_spec
from tests.factories.store import RefusingSessions, Store
from tests.support.processes import free_port
from tests.support.waiting import eventually

from .servers import tcp_target


def make_worker(
    store: Store, ctx: CheckContext, *, metrics: ProbeMetrics | None = None, grace_s: float = 5.0
) -> Worker:
    writer = ResultWriter(store.sessions, flush_interval_s=0.05)
    return Worker(
        "default",
        store.sessions,
        ctx,
        writer=writer,
        concurrency=10,
        refresh_interval_s=0.1,
        grace_s=grace_s,
        metrics=metrics,
    )


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 20)


def results(store: Store) -> list[ResultRow]:
    with store.sessions() as session:
        return list(session.scalars(sa.select(ResultRow).order_by(ResultRow.id)))


def states(store: Store) -> dict[int, str]:
    with store.sessions() as session:
        return {row.monitor_id: row.state for row in session.scalars(sa.select(MonitorState))}


def count_for(store: Store, monitor_id: int) -> int:
    with store.sessions() as session:
        stmt = sa.select(sa.func.count()).where(ResultRow.monitor_id == monitor_id)
        return int(session.scalar(stmt) or 0)


async def test_worker_checks_its_monitors_and_writes_results_with_slot_times(store: Store, ctx: CheckContext) -> None:
    async with tcp_target() as port:
        ids = store.apply(
            {
                "up": tcp_spec(port),
                "down": tcp_spec(free_port(), failureThreshold=1),
                "paused": tcp_spec(port, paused=True),
                "elsewhere": tcp_spec(port, locations=["us-east"]),
            }
        )
        metrics = ProbeMetrics()
        worker = make_worker(store, ctx, metrics=metrics)
        async with running(worker):
            await eventually(lambda: count_for(store, ids["up"]) >= 2 and count_for(store, ids["down"]) >= 2)
            await eventually(lambda: states(store).get(ids["paused"]) == "paused")
            assert worker.scheduler.scheduled_keys() == {ids["up"], ids["down"]}

    rows = results(store)
    assert {row.monitor_id for row in rows} == {ids["up"], ids["down"]}
    assert {row.status for row in rows if row.monitor_id == ids["up"]} == {"up"}
    down = [row for row in rows if row.monitor_id == ids["down"]]
    assert {row.status for row in down} == {"down"}
    assert all("refused" in row.reason for row in down)
    for row in rows:
        assert row.scheduled_at is not None
        due, phase = row.scheduled_at.timestamp(), default_phase(row.monitor_id, LOCAL_INTERVAL_S)
        slot = round((due - phase) / LOCAL_INTERVAL_S)
        assert due == pytest.approx(slot * LOCAL_INTERVAL_S + phase, abs=1e-5)  # slot * interval + phase
        assert row.checked_at >= row.scheduled_at
        assert row.location == "default"
    keys = [(row.monitor_id, row.scheduled_at) for row in rows]
    assert len(keys) == len(set(keys))
    assert states(store) == {ids["up"]: "up", ids["down"]: "down", ids["paused"]: "paused"}
    checks_up = metrics.registry.get_sample_value("spectra_checks_total", {"type": "tcp", "status": "up"})
    assert checks_up is not None
    assert checks_up >= 2
    assert metrics.registry.get_sample_value("spectra_state_changes_total", {"to": "down"}) == 1


async def test_reload_keeps_the_schedule_of_unchanged_monitors(store: Store, ctx: CheckContext) -> None:
    port = free_port()  # nothing runs within this test: intervals are a minute
    base = {
        name: tcp_spec(port, interval="60s", timeout="5s")
        for name in ("same", "edited", "deleted", "pausing", "retimed")
    }
    ids = store.apply(base)
    worker = make_worker(store, ctx)
    await worker.refresh()
    scheduler = worker.scheduler
    assert scheduler.scheduled_keys() == set(ids.values())
    before = {name: (scheduler.phase(ids[name]), scheduler.next_due(ids[name])) for name in ids}

    changed = dict(base)
    changed["edited"] = tcp_spec(port, interval="60s", timeout="5s", description="now with a description")
    del changed["deleted"]
    changed["pausing"] = tcp_spec(port, interval="60s", timeout="5s", paused=True)
    changed["retimed"] = tcp_spec(port, interval="30s", timeout="5s")
    changed["added"] = tcp_spec(port, interval="60s", timeout="5s")
    ids = {**ids, **store.apply(changed)}
    await worker.refresh()

    assert scheduler.scheduled_keys() == {ids[name] for name in ("same", "edited", "retimed", "added")}
    for name in ("same", "edited"):
        assert (scheduler.phase(ids[name]), scheduler.next_due(ids[name])) == before[name]
    assert worker.monitors[ids["edited"]].spec.description == "now with a description"
    assert scheduler.phase(ids["retimed"]) == default_phase(ids["retimed"], 30.0)
    await eventually(lambda: states(store).get(ids["pausing"]) == "paused")

    changed["pausing"] = base["pausing"]  # unpaused: back on its old grid
    store.apply(changed)
    await worker.refresh()
    assert (scheduler.phase(ids["pausing"]), scheduler.next_due(ids["pausing"])) == before["pausing"]
    await worker.stop()


async def test_a_slow_monitor_keeps_its_spec_as_json_between_checks_and_is_checked_from_it(
    store: Store, ctx: CheckContext
) -> None:
    # 10,000 monitors at 60 s would hold ~23 MB of validated specs between checks a minute apart.
    async with tcp_target() as port:
        ids = store.apply(
            {
                "slow": tcp_spec(port, interval="60s", timeout="5s", description="checked once a minute"),
                "fast": tcp_spec(port, interval=f"{int(KEEP_VALIDATED_UP_TO_S)}s", timeout="5s"),
            }
        )
        worker = make_worker(store, ctx)
        await worker.refresh()
        slow, fast = worker._monitors[ids["slow"]], worker._monitors[ids["fast"]]
        assert slow.validated is None
        assert fast.validated is not None
        assert fast.request() is fast.validated  # no validation per check for a fast monitor
        request = slow.request()
        assert (request.ref, request.monitor_id) == ("default/slow", ids["slow"])
        assert request.spec.description == "checked once a minute"
        assert request.spec.interval.total_seconds() == 60

        worker.writer.start()
        await worker._run_slot(ScheduledCheck(ids["slow"], slow, due=time.time(), slot=0))
        await worker.writer.stop()

    [row] = results(store)
    assert (row.monitor_id, row.status) == (ids["slow"], "up")


async def test_a_running_worker_notices_changes_by_itself(store: Store, ctx: CheckContext) -> None:
    ids = store.apply({"first": tcp_spec(free_port(), interval="60s", timeout="5s")})
    worker = make_worker(store, ctx)
    async with running(worker):
        await eventually(lambda: worker.scheduler.scheduled_keys() == {ids["first"]})
        ids = store.apply({"second": tcp_spec(free_port(), interval="60s", timeout="5s")})
        await eventually(lambda: worker.scheduler.scheduled_keys() == {ids["second"]})


async def test_stop_flushes_results_of_checks_in_flight(store: Store, ctx: CheckContext) -> None:
    """A check that is running when stop() comes finishes within the grace period and is stored."""
    started = asyncio.Event()

    async def slow_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started.set()
        await asyncio.sleep(0.3)
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(slow_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        spec = tcp_spec(port)  # a timeout of seconds: the check is up, however busy the machine
        spec["tcp"]["expect"] = {"contains": "hello"}
        ids = store.apply({"slow": spec})
        worker = make_worker(store, ctx, grace_s=10.0)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(started.wait(), 20)
        await worker.stop()
        await asyncio.wait_for(task, 20)
    finally:
        server.close()
        await server.wait_closed()
    rows = results(store)
    assert [(row.monitor_id, row.status) for row in rows] == [(ids["slow"], "up")]
    assert isinstance(rows[0].scheduled_at, datetime)


@pytest.mark.parametrize(
    ("allowance_s", "keeps_checking"),
    [
        (60.0, True),  # the leases outlast the outage: checks go on into the buffer
        (0.0, False),  # they lapse after the TTL: slots are skipped, counted, and readiness says so
    ],
)
async def test_a_database_outage_keeps_checks_going_while_the_leases_last(
    store: Store, ctx: CheckContext, allowance_s: float, keeps_checking: bool
) -> None:
    async with tcp_target() as port:
        store.apply({f"m{i}": tcp_spec(port, interval="1s", timeout="500ms") for i in range(3)})
        sessions = RefusingSessions(store)
        health = DatabaseHealth(unreachable_after_s=0.5)
        assignment = LeaseAssignment(
            "default", sessions, worker_id="w1", ttl_s=2.0, outage_allowance_s=allowance_s, health=health
        )
        writer = ResultWriter(sessions, flush_interval_s=0.05, health=health)
        metrics = ProbeMetrics()
        metrics.watch_database(health)
        worker = Worker(
            "default", sessions, ctx, assignment=assignment, writer=writer, refresh_interval_s=0.1, metrics=metrics
        )
        async with running(worker):
            await eventually(lambda: len(assignment.owned) == 3 and writer.written >= 3)
            sessions.down = True
            await eventually(lambda: health.problem() is not None)
            await asyncio.sleep(3.5)  # past the TTL
            buffered, skipped = writer.buffered, worker.skipped
            assert "database unreachable" in str(health.problem())
            assert (assignment.problem() is None) is keeps_checking
            await asyncio.sleep(0.3)  # a metrics pass
            sample = metrics.registry.get_sample_value
            if keeps_checking:
                assert buffered >= 6
                assert skipped == 0
            else:
                assert skipped >= 3
                assert "leases lapsed: 3 monitor(s)" in str(assignment.problem())
                assert sample("spectra_scheduler_skipped_runs_total") == pytest.approx(worker.skipped, abs=3)
            assert (sample("spectra_lease_renewal_failures_total") or 0) >= 2
            assert (sample("spectra_database_unreachable_seconds") or 0) >= 3
            sessions.down = False
            await eventually(lambda: writer.buffered == 0 and health.problem() is None and assignment.problem() is None)
            # Still running: the worker holds all three again and the gauge says so (after the block it has
            # released them, and the gauge is whatever its last metrics pass saw).
            await eventually(lambda: len(assignment.owned) == 3)
            await eventually(lambda: sample("spectra_leases_held") == 3)
