"""The result writer on SQLite and MariaDB: batching, states, outages, deleted monitors, shutdown."""

from __future__ import annotations

import contextlib
import gc
import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from spectra.probe.database_health import DatabaseHealth
from spectra.probe.result import CheckResult, Status
from spectra.probe.state import State, StateSnapshot
from spectra.probe.writer import ResultWriter
from spectra.store import CheckResult as ResultRow
from spectra.store import MonitorState
from spectra.store.clock import database_now
from tests.factories.monitors import tcp_spec
from tests.factories.store import RefusingSessions, Store
from tests.support.waiting import eventually

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SPEC = tcp_spec(9, interval="10s", timeout="1s")  # never checked here: the writer gets results by hand


def slot(n: int) -> datetime:
    return T0 + timedelta(seconds=10 * n)


def result(status: Status, n: int, reason: str = "ok", **facts: Any) -> CheckResult:
    return CheckResult(status, 1.5, reason, facts, checked_at=slot(n) + timedelta(milliseconds=3))


Changes = list[tuple[int, str, State, State, str]]


def recorder() -> tuple[Changes, Callable[[int, str, State, State, CheckResult], None]]:
    changes: Changes = []

    def on_change(monitor_id: int, location: str, old: State, new: State, res: CheckResult) -> None:
        changes.append((monitor_id, location, old, new, res.reason))

    return changes, on_change


def stored_slots(store: Store, monitor_id: int) -> list[datetime | None]:
    with store.sessions() as session:
        stmt = sa.select(ResultRow.scheduled_at).where(ResultRow.monitor_id == monitor_id).order_by(ResultRow.id)
        return list(session.scalars(stmt))


def stored_state(store: Store, monitor_id: int, location: str = "eu") -> MonitorState:
    with store.sessions() as session:
        row = session.get(MonitorState, (monitor_id, location))
        assert row is not None
        return row


async def test_one_insert_and_one_state_upsert_per_batch(store: Store) -> None:
    ids = store.apply({"a": SPEC, "b": SPEC, "c": SPEC})
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()[:3]).upper())

    sa.event.listen(store.engine, "before_cursor_execute", count)
    writer = ResultWriter(store.sessions, batch_size=50)
    for n in range(40):
        for name in ("a", "b", "c"):
            writer.add(ids[name], "eu", slot(n), result(Status.UP, n), ref=f"default/{name}")
    assert writer.buffered == 120
    assert await writer.flush()

    assert statements.count("INSERT INTO CHECK_RESULTS") == 3  # ceil(120 / 50)
    assert statements.count("INSERT INTO MONITOR_STATES") == 3
    assert (writer.written, writer.batches, writer.buffered) == (120, 3, 0)
    assert stored_slots(store, ids["b"]) == [slot(n) for n in range(40)]
    row = stored_state(store, ids["c"])
    assert (row.state, row.consecutive_successes, row.last_check_at) == ("up", 40, result(Status.UP, 39).checked_at)


async def test_states_follow_the_thresholds_and_changes_are_reported(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ids = store.apply({"web": SPEC})
    changes, on_change = recorder()
    writer = ResultWriter(store.sessions, on_change=on_change)
    statuses = [Status.UP, Status.DOWN, Status.DOWN, Status.DOWN, Status.UP, Status.UP]
    caplog.set_level(logging.INFO, logger="spectra.probe.writer")
    for n, status in enumerate(statuses):
        reason = "HTTP 500 from http://web.example/" if status is Status.DOWN else "ok"
        writer.add(
            ids["web"],
            "eu",
            slot(n),
            result(status, n, reason),
            ref="default/web",
            failure_threshold=2,
            success_threshold=2,
        )
        assert await writer.flush()  # one batch per result: the state is carried in memory between batches

    web = ids["web"]
    assert changes == [
        (web, "eu", State.PENDING, State.UP, "ok"),
        (web, "eu", State.UP, State.DOWN, "HTTP 500 from http://web.example/"),
        (web, "eu", State.DOWN, State.UP, "ok"),
    ]
    assert "monitor default/web [eu]: up -> down (HTTP 500 from http://web.example/)" in caplog.messages
    assert "monitor default/web [eu]: down -> up (ok)" in caplog.messages
    row = stored_state(store, web)
    assert (row.state, row.last_status, row.consecutive_successes, row.changed_at) == (
        "up",
        "up",
        2,
        result(Status.UP, 5).checked_at,
    )
    assert writer.state(web, "eu") is not None


async def test_a_new_writer_continues_from_the_stored_state(store: Store) -> None:
    ids = store.apply({"web": SPEC})
    first = ResultWriter(store.sessions)
    first.add(ids["web"], "eu", slot(0), result(Status.UP, 0), failure_threshold=2)
    first.add(ids["web"], "eu", slot(1), result(Status.DOWN, 1, "refused"), failure_threshold=2)
    await first.stop()
    row = stored_state(store, ids["web"])
    assert (row.state, row.consecutive_failures) == ("up", 1)

    changes, on_change = recorder()
    second = ResultWriter(store.sessions, on_change=on_change)  # e.g. after a restart
    second.add(ids["web"], "eu", slot(2), result(Status.DOWN, 2, "refused"), failure_threshold=2)
    await second.stop()
    assert changes == [(ids["web"], "eu", State.UP, State.DOWN, "refused")]
    assert stored_state(store, ids["web"]).state == "down"


async def test_the_states_kept_between_batches_are_left_out_of_the_garbage_collectors_passes(store: Store) -> None:
    # One per monitor, replaced at every check: tracked, they filled the collector's full passes.
    ids = store.apply({"web": SPEC})
    writer = ResultWriter(store.sessions)
    writer.add(ids["web"], "eu", slot(0), result(Status.DOWN, 0, "refused"), failure_threshold=1)
    await writer.stop()
    gc.collect()
    kept = writer._states[ids["web"], "eu"]
    assert not gc.is_tracked(kept)
    assert writer.state(ids["web"], "eu") == StateSnapshot(State.DOWN, 1, 0, Status.DOWN)
    assert kept[-1] == result(Status.DOWN, 0).checked_at  # changed_at


@contextlib.contextmanager
def refusing_writes(store: Store) -> Iterator[None]:
    """Another client holds the write lock, as a busy or stuck database would."""
    if store.dialect == "sqlite":
        path = store.engine.url.database
        assert path is not None
        lite = sqlite3.connect(path, isolation_level=None)
        lite.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            lite.execute("ROLLBACK")
            lite.close()
        return
    with store.engine.connect() as holder:
        holder.exec_driver_sql("LOCK TABLES check_results WRITE")
        try:
            yield
        finally:
            holder.exec_driver_sql("UNLOCK TABLES")


def short_lock_waits(store: Store) -> None:
    """Give up on a held lock quickly (SQLite: 50 ms busy timeout; MariaDB: 1 s lock wait)."""

    @sa.event.listens_for(store.engine, "connect")
    def _short(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if store.dialect == "sqlite":
            cursor.execute("PRAGMA busy_timeout=50")
        else:
            cursor.execute("SET SESSION lock_wait_timeout=1")
        cursor.close()


async def test_results_wait_while_the_database_refuses_writes_and_go_out_in_order(store: Store) -> None:
    short_lock_waits(store)  # before the first connection is made
    ids = store.apply({"web": SPEC})
    changes, on_change = recorder()
    writer = ResultWriter(
        store.sessions,
        batch_size=10,
        max_buffer=50,
        flush_interval_s=0.05,
        retry_initial_s=0.05,
        retry_max_s=0.2,
        on_change=on_change,
    )
    writer.start()
    try:
        for n in range(5):
            writer.add(ids["web"], "eu", slot(n), result(Status.UP, n))
        await eventually(lambda: writer.written == 5)

        with refusing_writes(store):
            for n in range(5, 85):
                writer.add(ids["web"], "eu", slot(n), result(Status.UP, n))
            assert (writer.buffered, writer.dropped) == (50, 30)  # the oldest went first
            await eventually(lambda: writer.failures >= 2)
            assert writer.buffered == 50
            assert writer.written == 5

        await eventually(lambda: writer.buffered == 0)
    finally:
        await writer.stop()

    assert writer.dropped == 30
    assert stored_slots(store, ids["web"]) == [slot(n) for n in [*range(5), *range(35, 85)]]
    # Our own trouble is not the monitor's: it stayed up throughout.
    assert changes == [(ids["web"], "eu", State.PENDING, State.UP, "ok")]
    row = stored_state(store, ids["web"])
    assert (row.state, row.consecutive_successes) == ("up", 55)


async def test_results_of_a_deleted_monitor_are_left_out_not_retried_forever(store: Store) -> None:
    ids = store.apply({"kept": SPEC, "deleted": SPEC})
    writer = ResultWriter(store.sessions)
    for n in range(3):
        writer.add(ids["kept"], "eu", slot(n), result(Status.UP, n))
        writer.add(ids["deleted"], "eu", slot(n), result(Status.UP, n))
    store.apply({"kept": SPEC})  # deleted while its results waited

    assert await writer.flush()
    assert (writer.written, writer.discarded, writer.buffered) == (3, 3, 0)
    assert stored_slots(store, ids["kept"]) == [slot(0), slot(1), slot(2)]


async def test_facts_that_are_not_json_are_stored_as_text(store: Store) -> None:
    ids = store.apply({"web": SPEC})
    writer = ResultWriter(store.sessions)
    writer.add(ids["web"], "eu", slot(0), result(Status.UP, 0, expires=T0, days_left=12))
    assert await writer.flush()
    with store.sessions() as session:
        details = session.scalars(sa.select(ResultRow.details)).one()
    assert details == {"expires": str(T0), "days_left": 12}
    assert stored_state(store, ids["web"]).facts == details


async def test_stop_writes_what_is_left(store: Store) -> None:
    ids = store.apply({"web": SPEC})
    writer = ResultWriter(store.sessions, flush_interval_s=60)
    writer.start()
    for n in range(3):
        writer.add(ids["web"], "eu", slot(n), result(Status.UP, n))
    await writer.stop()
    assert stored_slots(store, ids["web"]) == [slot(0), slot(1), slot(2)]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        ResultWriter(sessionmaker(), batch_size=10, max_buffer=5)


async def test_states_carry_the_database_time_of_their_write(store: Store) -> None:
    ids = store.apply({"web": SPEC})
    writer = ResultWriter(store.sessions)
    before = datetime.now(UTC)
    writer.add(ids["web"], "eu", slot(0), result(Status.UP, 0))  # checked in 2024 by the probe's clock
    assert await writer.flush()
    with store.sessions() as session:
        database_time = database_now(session)
    row = stored_state(store, ids["web"])
    assert row.last_check_at == result(Status.UP, 0).checked_at
    assert row.reported_at is not None
    assert before - timedelta(seconds=5) <= row.reported_at <= database_time


async def test_an_outage_is_logged_once_and_writing_resumes_within_about_a_second(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ids = store.apply({"web": SPEC})
    sessions = RefusingSessions(store)
    health = DatabaseHealth()
    writer = ResultWriter(sessions, flush_interval_s=0.05, health=health)  # the default retry cap: 1 s
    writer.start()
    try:
        with caplog.at_level(logging.INFO, logger="spectra.probe.database"):
            sessions.down = True
            for n in range(20):
                writer.add(ids["web"], "eu", slot(n), result(Status.UP, n))
            await eventually(lambda: health.failing and writer.failures >= 4, timeout=15)
            assert writer.buffered == 20
            sessions.down = False
            await eventually(lambda: writer.written == 20, timeout=5)  # the pause between tries is at most 1 s
    finally:
        await writer.stop()
    assert stored_slots(store, ids["web"]) == [slot(n) for n in range(20)]
    lines = [record.getMessage() for record in caplog.records if record.name == "spectra.probe.database"]
    assert len(lines) == 2, lines  # the first failure and the recovery; a summary only every 30 s
    assert lines[0].startswith("database unavailable (result writer): ConnectionRefusedError")
    assert lines[1].startswith("database reachable again after")
