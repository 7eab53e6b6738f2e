"""The "run until stopped" loop: failed passes are logged and retried; stop ends the pause at once."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.exc import OperationalError

from spectra.runtime.loop import FailureLog, run_until_stopped

log = logging.getLogger("tests.loop")


async def test_a_failed_pass_is_logged_with_its_traceback_and_the_next_pass_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopping = asyncio.Event()
    calls: list[int] = []

    async def one_pass() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("database away")
        if len(calls) == 3:
            stopping.set()

    await asyncio.wait_for(run_until_stopped(stopping, one_pass, every_s=0, what="test pass", log=log), timeout=30)
    assert calls == [0, 1, 2]
    failures = [record for record in caplog.records if "test pass failed" in record.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None  # the traceback is logged


async def test_without_traceback_a_failure_is_one_line_naming_the_error(caplog: pytest.LogCaptureFixture) -> None:
    stopping = asyncio.Event()

    async def one_pass() -> None:
        stopping.set()
        raise ConnectionError("refused")

    await asyncio.wait_for(
        run_until_stopped(stopping, one_pass, every_s=0, what="housekeeping", log=log, traceback=False), timeout=30
    )
    [record] = [r for r in caplog.records if "housekeeping failed" in r.getMessage()]
    assert record.getMessage() == "housekeeping failed: ConnectionError: refused"
    assert record.exc_info is None
    assert record.levelno == logging.WARNING


async def test_stop_ends_the_pause_without_waiting_for_the_period() -> None:
    stopping = asyncio.Event()
    first_pass = asyncio.Event()

    async def one_pass() -> None:
        first_pass.set()

    loop = asyncio.create_task(run_until_stopped(stopping, one_pass, every_s=3600, what="pass", log=log))
    await asyncio.wait_for(first_pass.wait(), timeout=30)
    stopping.set()
    await asyncio.wait_for(loop, timeout=30)  # far less than the hour the pause would last


async def test_the_pause_is_no_task_of_its_own_that_kopf_could_cancel() -> None:
    """kopf, as it stops, cancels every task started after it: a pause run as such a task ended the loop cancelled."""
    stopping = asyncio.Event()
    first_pass = asyncio.Event()

    async def one_pass() -> None:
        first_pass.set()

    before = asyncio.all_tasks()
    loop = asyncio.create_task(run_until_stopped(stopping, one_pass, every_s=3600, what="pass", log=log))
    await asyncio.wait_for(first_pass.wait(), timeout=30)
    await asyncio.sleep(0)  # into the pause
    assert asyncio.all_tasks() - before == {loop}
    stopping.set()
    await asyncio.wait_for(loop, timeout=30)
    assert not loop.cancelled()


async def test_a_stopped_loop_runs_no_pass() -> None:
    stopping = asyncio.Event()
    stopping.set()
    calls: list[None] = []

    async def one_pass() -> None:
        calls.append(None)

    await run_until_stopped(stopping, one_pass, every_s=0, what="pass", log=log)
    assert calls == []


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_streak_is_a_few_lines_and_the_recovery_one(caplog: pytest.LogCaptureFixture) -> None:
    ticker = Ticker()
    failures = FailureLog("alerter pass", log, repeat_every_s=30, monotonic=ticker)
    error = OperationalError("SELECT 1", {}, ConnectionRefusedError("Can't connect to MySQL server"))
    for _ in range(240):  # two minutes of passes every half second
        failures.failed(error)
        ticker.now += 0.5
    assert failures.streak == 240
    assert failures.failing_for_s == pytest.approx(120)
    failures.succeeded()
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1 + 3 + 1  # the first, one per 30 s after it, the recovery
    assert lines[0] == "alerter pass failed: ConnectionRefusedError: Can't connect to MySQL server"
    assert "SELECT" not in "".join(lines)  # the statement stays out of the log
    assert lines[1].startswith("alerter pass still failing after 30 s (61 failures, 59 not logged)")
    assert lines[-1] == "alerter pass recovered after 120 s (240 failures)"
    assert all(record.exc_info is None for record in caplog.records)
    assert failures.failing_for_s == 0


def test_an_unexpected_error_keeps_its_traceback_once(caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog("status pass", log, monotonic=Ticker())
    for _ in range(3):
        failures.failed(KeyError("x"))
    [record] = caplog.records
    assert record.exc_info is not None
    assert record.levelno == logging.ERROR
