"""The "run until stopped" loop: failed passes are logged and retried; stop ends the pause at once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from spectra.runtime.loop import run_until_stopped

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


async def test_a_stopped_loop_runs_no_pass() -> None:
    stopping = asyncio.Event()
    stopping.set()
    calls: list[None] = []

    async def one_pass() -> None:
        calls.append(None)

    await run_until_stopped(stopping, one_pass, every_s=0, what="pass", log=log)
    assert calls == []
