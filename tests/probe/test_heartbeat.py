"""Heartbeat monitors: pushes recorded through the store, judged by the check and by a running worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from spectra.api.monitor import MonitorSpec
from spectra.probe.checks import run_check
from spectra.probe.checks.heartbeat import note_first_seen
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.egress import EgressGuard, EgressPolicy
from spectra.probe.result import Status
from spectra.probe.worker import Worker
from spectra.probe.writer import ResultWriter
from spectra.store import CheckResult as ResultRow
from spectra.store import Monitor, MonitorState, push_token_hash, record_push

from .store_helpers import Store, eventually, migrated

TOKEN = "push-token-1234"  # as a Secret would hold it


def heartbeat_spec(interval: str = "1m", grace: str = "1m", **extra: Any) -> dict[str, Any]:
    token = {"secretKeyRef": {"name": "cron-push", "key": "token"}}
    return {"type": "heartbeat", "interval": interval, "heartbeat": {"grace": grace, "tokenFrom": token}, **extra}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with migrated(database_url) as store:
        yield store


@pytest.fixture
async def ctx() -> AsyncIterator[CheckContext]:
    ctx = CheckContext(egress=EgressGuard(EgressPolicy.standalone()))
    yield ctx
    await ctx.aclose()


def add_cron(store: Store, **spec: Any) -> int:
    monitor_id = store.apply({"cron": heartbeat_spec(**spec)})["cron"]
    with store.sessions.begin() as session:  # what the loader does with the token from the Secret
        session.execute(
            sa.update(Monitor).where(Monitor.resource_id == monitor_id).values(push_token_hash=push_token_hash(TOKEN))
        )
    return monitor_id


def push(store: Store, at: datetime, token: str = TOKEN) -> bool:
    with store.sessions.begin() as session:
        return record_push(session, token, at)


@pytest.mark.parametrize(
    ("pushed_ago", "seen_ago", "status", "reason"),
    [
        (None, 0, Status.UP, "waiting for the first push (expected every 1m + grace 1m)"),
        (None, 312, Status.DOWN, "no push for 5m12s, never pushed (expected every 1m + grace 1m)"),
        (30, 900, Status.UP, "last push 30s ago"),
        (119, 900, Status.UP, "last push 1m59s ago"),
        (312, 900, Status.DOWN, "no push for 5m12s (expected every 1m + grace 1m)"),
    ],
)
async def test_check_judges_the_last_push(
    store: Store, ctx: CheckContext, pushed_ago: int | None, seen_ago: int, status: Status, reason: str
) -> None:
    monitor_id = add_cron(store)
    Worker("default", store.sessions, ctx)  # wires ctx.last_push to the store
    spec = MonitorSpec.model_validate(heartbeat_spec())
    request = CheckRequest("default", "cron", spec, monitor_id=monitor_id)
    now = datetime.now(UTC)
    note_first_seen(ctx, request, now - timedelta(seconds=seen_ago, milliseconds=200))
    if pushed_ago is not None:
        assert push(store, now - timedelta(seconds=pushed_ago, milliseconds=200))

    result = await run_check(request, ctx)

    assert (result.status, result.reason) == (status, reason)
    assert result.latency_ms is None
    if pushed_ago is None:
        assert result.facts == {"last_push_at": None}
    else:
        assert result.facts["last_push_at"] == (now - timedelta(seconds=pushed_ago, milliseconds=200)).isoformat()
    assert TOKEN not in str(result)


async def test_unknown_tokens_are_not_recorded(store: Store) -> None:
    add_cron(store)
    assert not push(store, datetime.now(UTC), token="guess")


async def test_without_a_store_the_check_says_so() -> None:
    ctx = CheckContext()
    request = CheckRequest("default", "cron", MonitorSpec.model_validate(heartbeat_spec()))
    result = await run_check(request, ctx)
    assert result.status is Status.DOWN
    assert "no store" in result.reason


async def test_a_worker_keeps_a_pushed_monitor_up_and_marks_a_silent_one_down(store: Store, ctx: CheckContext) -> None:
    monitor_id = add_cron(store, interval="1s", grace="500ms", failureThreshold=1)
    writer = ResultWriter(store.sessions, flush_interval_s=0.05)
    worker = Worker("default", store.sessions, ctx, writer=writer, refresh_interval_s=0.2)

    def state() -> str | None:
        with store.sessions() as session:
            row = session.get(MonitorState, (monitor_id, "default"))
            return row.state if row else None

    task = asyncio.create_task(worker.run())
    try:
        for _ in range(5):  # a cron job pushing every 0.25 s
            assert push(store, datetime.now(UTC))
            await asyncio.sleep(0.25)
        await eventually(lambda: state() == "up")
        await eventually(lambda: state() == "down", timeout=5)  # silent for more than 1 s + 0.5 s
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 5)
    with store.sessions() as session:
        row = session.get(MonitorState, (monitor_id, "default"))
        assert row is not None
        assert row.last_reason.startswith("no push for ")
        assert row.last_reason.endswith("(expected every 1s + grace 500ms)")


async def test_a_store_failure_during_the_check_is_no_verdict_on_the_monitor(store: Store, ctx: CheckContext) -> None:
    """When the last push cannot be read, our database failed, not the cron job: nothing is recorded."""
    monitor_id = add_cron(store, interval="1s", grace="500ms", failureThreshold=1)
    writer = ResultWriter(store.sessions, flush_interval_s=0.05)
    worker = Worker("default", store.sessions, ctx, writer=writer, refresh_interval_s=60)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE heartbeat_pushes")  # every read of the pushes now fails
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: worker.unjudged >= 1)
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 5)
    with store.sessions() as session:
        assert session.scalars(sa.select(sa.func.count()).select_from(ResultRow)).one() == 0
        assert session.get(MonitorState, (monitor_id, "default")) is None


@pytest.mark.parametrize(("interval", "evaluated_every"), [("25h", 30.0), ("1m", 30.0), ("10s", 10.0)])
async def test_long_heartbeat_intervals_are_evaluated_often(
    store: Store, ctx: CheckContext, interval: str, evaluated_every: float
) -> None:
    """A daily job's missed push must be noticed soon after its deadline, not at the next daily slot."""
    monitor_id = add_cron(store, interval=interval)
    worker = Worker("default", store.sessions, ctx)
    await worker.refresh()
    due = worker.scheduler.next_due(monitor_id)
    assert due is not None
    assert -0.5 <= due - time.time() <= evaluated_every
