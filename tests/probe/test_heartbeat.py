"""Heartbeat monitors: pushes recorded through the store, judged by the check and by a running worker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from spectra.api.monitor import MonitorSpec
from spectra.probe.checks import heartbeat as heartbeat_check
from spectra.probe.checks import run_check
from spectra.probe.checks.heartbeat import note_first_seen
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import Status
from spectra.probe.worker import Worker
from spectra.probe.writer import ResultWriter
from spectra.store import CheckResult as ResultRow
from spectra.store import MonitorState, record_push
from tests.factories.monitors import PUSH_SECRET, PUSH_TOKEN, heartbeat_spec
from tests.factories.store import SecretTable, Store
from tests.support.waiting import eventually

SECRETS = SecretTable({PUSH_SECRET: PUSH_TOKEN})  # the Secret heartbeat_spec's tokenFrom names


def add_cron(store: Store, **spec: Any) -> int:
    """A heartbeat monitor "cron", applied with its Secret: the loader stores the token's hash."""
    return store.apply({"cron": heartbeat_spec(**spec)}, secrets=SECRETS)["cron"]


def push(store: Store, at: datetime, token: str = PUSH_TOKEN) -> bool:
    with store.sessions.begin() as session:
        return record_push(session, token, at)


class FrozenClock(datetime):
    """What `datetime.now()` says inside the heartbeat check: `AT`, however long the test takes."""

    AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> FrozenClock:
        return cls.fromtimestamp(cls.AT.timestamp(), tz)


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
    store: Store,
    ctx: CheckContext,
    monkeypatch: pytest.MonkeyPatch,
    pushed_ago: int | None,
    seen_ago: int,
    status: Status,
    reason: str,
) -> None:
    # The check's clock stands still: a slow moment of the test cannot turn 30.2 s of silence into 31 s.
    monkeypatch.setattr(heartbeat_check, "datetime", FrozenClock)
    monitor_id = add_cron(store)
    Worker("default", store.sessions, ctx)  # wires ctx.last_push to the store
    spec = MonitorSpec.model_validate(heartbeat_spec())
    request = CheckRequest("default", "cron", spec, monitor_id=monitor_id)
    now = FrozenClock.AT
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
    assert PUSH_TOKEN not in str(result)


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

    async def pushed_and_up() -> bool:  # a cron job pushing every 0.25 s, until the worker says up
        assert push(store, datetime.now(UTC))
        await asyncio.sleep(0.25)
        return state() == "up"

    task = asyncio.create_task(worker.run())
    try:
        await eventually(pushed_and_up)
        await eventually(lambda: state() == "down")  # silent for more than 1 s + 0.5 s
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 20)
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
        await asyncio.wait_for(task, 20)
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
    before = time.time()
    await worker.refresh()
    due = worker.scheduler.next_due(monitor_id)
    assert due is not None
    assert before - 1e-3 <= due <= time.time() + evaluated_every  # the first slot not in the past, within one
