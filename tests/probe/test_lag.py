"""The probe's own lateness: measured on the real event loop, and what run_check and the worker make of it.

A stall is the loop blocked on purpose (``time.sleep`` in a callback): the process is not running
Python for that long, as when it is stopped or starved. Assertions on lag are lower bounds (a busy
machine only adds lateness), and thresholds sit far above scheduling noise (a second, not milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from spectra.probe.checks import run_check
from spectra.probe.context import CheckContext
from spectra.probe.lag import LatenessCause, LoopLag, ate_budget, lateness_cause
from spectra.probe.metrics import ProbeMetrics
from spectra.probe.result import Status
from tests.factories.monitors import tcp_spec
from tests.factories.store import Store
from tests.support.processes import free_port
from tests.support.waiting import eventually

from .servers import banner_handler, request, tcp_server
from .test_worker import make_worker, results, running

STALL_S = 2.0


@contextlib.asynccontextmanager
async def ticking(lag: LoopLag) -> AsyncIterator[LoopLag]:
    task = asyncio.create_task(lag.run())
    await eventually(lambda: lag.ticking)
    try:
        yield lag
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def stall_loop(after_s: float, seconds: float) -> None:
    """Block the event loop for ``seconds``, ``after_s`` from now: the probe stops running Python."""
    asyncio.get_running_loop().call_later(after_s, time.sleep, seconds)


@pytest.mark.parametrize(
    ("lag_s", "timeout_s", "voids"),
    [
        pytest.param(0.05, 1.0, False, id="noise-never-voids"),
        pytest.param(0.2, 1.0, False, id="under-a-quarter"),
        pytest.param(0.25, 1.0, True, id="a-quarter-of-the-budget"),
        pytest.param(6.0, 3.0, True, id="stopped-longer-than-the-timeout"),
        pytest.param(1.0, 30.0, False, id="a-second-of-thirty-is-not-the-probe"),
        pytest.param(0.09, 0.2, False, id="floor-for-tiny-timeouts"),
        pytest.param(0.1, 0.2, True, id="floor-reached"),
    ],
)
def test_ate_budget(lag_s: float, timeout_s: float, voids: bool) -> None:
    assert ate_budget(lag_s, timeout_s) is voids


LAG, BEHIND = LatenessCause.LOOP_LAG, LatenessCause.BEHIND_SCHEDULE


@pytest.mark.parametrize(
    ("timeout_s", "loop_lag_s", "started_late_s", "elapsed_s", "slow", "cause"),
    [
        pytest.param(0.5, 0.0, 0.0, 0.5, False, None, id="on-time-timeout-is-a-verdict"),
        pytest.param(0.5, 0.02, 0.3, 0.5, False, None, id="ordinary-scheduling-noise-is-a-verdict"),
        pytest.param(0.5, 0.2, 0.0, 0.5, False, LAG, id="loop-lag-ate-the-budget"),
        pytest.param(3.0, 6.0, 0.0, 6.5, False, LAG, id="stopped-longer-than-the-timeout"),
        pytest.param(0.5, 0.2, 0.0, 0.01, False, LAG, id="loop-lag-voids-even-a-quick-failure"),
        pytest.param(0.5, 0.05, 7.6, 0.5, False, BEHIND, id="saturated-probe-timed-out-behind-schedule"),
        pytest.param(0.5, 0.05, 1.0, 0.4, False, BEHIND, id="a-second-behind-ran-out-of-time"),
        pytest.param(0.5, 0.05, 0.9, 0.5, False, None, id="under-a-second-behind-is-a-verdict"),
        pytest.param(10.0, 0.5, 2.0, 10.0, False, None, id="behind-by-less-than-a-quarter-of-a-long-timeout"),
        pytest.param(10.0, 0.5, 2.5, 10.0, False, BEHIND, id="behind-by-a-quarter-of-a-long-timeout"),
        pytest.param(0.5, 0.05, 7.6, 0.002, False, None, id="refused-at-once-is-a-verdict-however-late"),
        pytest.param(10.0, 0.0, 5.0, 0.3, False, None, id="wrong-answer-in-time-is-a-verdict-however-late"),
        pytest.param(10.0, 0.0, 5.0, 0.3, True, BEHIND, id="slow-answer-behind-schedule-is-no-verdict"),
        pytest.param(10.0, 0.0, 0.0, 0.3, True, None, id="slow-answer-on-time-is-a-verdict"),
    ],
)
def test_lateness_cause(
    timeout_s: float,
    loop_lag_s: float,
    started_late_s: float,
    elapsed_s: float,
    slow: bool,
    cause: LatenessCause | None,
) -> None:
    decided = lateness_cause(
        timeout_s=timeout_s, loop_lag_s=loop_lag_s, started_late_s=started_late_s, elapsed_s=elapsed_s, slow=slow
    )
    assert decided is cause


@pytest.mark.parametrize(
    ("timeout_s", "queued_s", "elapsed_s", "cause"),
    [
        pytest.param(2.0, 2.0, 2.0, LatenessCause.QUEUED, id="timed-out-waiting-for-an-evaluator"),
        pytest.param(2.0, 0.6, 1.9, LatenessCause.QUEUED, id="waited-a-quarter-then-ran-out-of-time"),
        pytest.param(2.0, 0.6, 0.7, None, id="waited-then-the-evaluator-answered-in-time-is-a-verdict"),
        pytest.param(2.0, 0.05, 2.0, None, id="a-short-wait-then-a-timeout-is-a-verdict"),
        pytest.param(2.0, 0.0, 2.0, None, id="no-wait-a-timeout-is-a-verdict"),
    ],
)
def test_a_check_that_waited_for_the_probes_own_capacity_then_ran_out_of_time_is_no_verdict(
    timeout_s: float, queued_s: float, elapsed_s: float, cause: LatenessCause | None
) -> None:
    decided = lateness_cause(
        timeout_s=timeout_s, loop_lag_s=0.0, started_late_s=0.0, elapsed_s=elapsed_s, queued_s=queued_s
    )
    assert decided is cause


async def test_a_blocked_loop_is_measured_and_counted_as_a_stall() -> None:
    metrics = ProbeMetrics()
    async with ticking(LoopLag(metrics)) as lag:
        mark = lag.mark()
        stall_loop(0.0, STALL_S)
        await asyncio.sleep(0.5)  # the stall, then at least one tick after it
        await eventually(lambda: lag.stalls >= 1)
        assert lag.since(mark) >= STALL_S - 0.2  # the tick due during the stall woke that late
    assert metrics.registry.get_sample_value("spectra_probe_stalls_total") == lag.stalls
    observed = metrics.registry.get_sample_value("spectra_probe_loop_lag_seconds_sum")
    assert observed is not None
    assert observed >= STALL_S - 0.2


async def test_lateness_of_a_tick_that_has_not_run_yet_already_counts() -> None:
    now = 1000.0
    lag = LoopLag(clock=lambda: now)
    async with ticking(lag):
        mark = lag.mark()
        now += 6.0  # the process was stopped: the tick is overdue but has not woken yet
        assert lag.since(mark) >= 5.8
        assert lag.stalls == 0


def test_without_ticking_nothing_is_late() -> None:
    lag = LoopLag()
    assert not lag.ticking
    assert lag.since(lag.mark()) == 0.0


# --- run_check: a failure the probe's own stall caused is no verdict -----------------------------


@contextlib.contextmanager
def lag_of(ctx: CheckContext, lag: LoopLag | None) -> Iterator[None]:
    ctx.loop_lag = lag
    try:
        yield
    finally:
        ctx.loop_lag = None


@pytest.mark.parametrize(
    ("expected_text", "timeout", "stall", "status"),
    [
        pytest.param("world", "4s", False, Status.DOWN, id="no-answer-while-running-is-down"),
        pytest.param("world", "4s", True, Status.STALLED, id="no-answer-while-stalled-is-no-verdict"),
        pytest.param("hello", "10s", True, Status.UP, id="an-answer-is-an-answer-however-late"),
    ],
)
async def test_run_check_voids_failures_the_probe_stall_caused(
    ctx: CheckContext, expected_text: str, timeout: str, stall: bool, status: Status
) -> None:
    # The server says hello and nothing more: expecting "world" waits out the whole timeout.
    async with tcp_server(banner_handler(b"hello", echo=False)) as port:
        check = request(
            "tcp", {"host": "127.0.0.1", "port": port, "expect": {"contains": expected_text}}, timeout=timeout
        )
        async with ticking(LoopLag()) as lag:
            with lag_of(ctx, lag):
                if stall:
                    stall_loop(0.2, STALL_S)
                result = await run_check(check, ctx)
    assert result.status is status, result.reason
    if status is Status.STALLED:
        assert result.reason.startswith("probe stalled: not running for")
        assert "it would have been down" in result.reason
        assert result.facts["voided_status"] == "down"
        assert result.facts["probe_lag_s"] >= STALL_S - 0.2


@pytest.mark.parametrize(
    ("expected_text", "behind_s", "status"),
    [
        pytest.param("world", 0.0, Status.DOWN, id="timed-out-on-schedule-is-down"),
        pytest.param("world", 30.0, Status.STALLED, id="timed-out-far-behind-schedule-is-no-verdict"),
        pytest.param("hello", 30.0, Status.UP, id="an-answer-behind-schedule-is-still-up"),
    ],
)
async def test_run_check_voids_timeouts_of_a_probe_behind_its_schedule(
    ctx: CheckContext, expected_text: str, behind_s: float, status: Status
) -> None:
    async with tcp_server(banner_handler(b"hello", echo=False)) as port:
        check = request("tcp", {"host": "127.0.0.1", "port": port, "expect": {"contains": expected_text}}, timeout="1s")
        async with ticking(LoopLag()) as lag:
            with lag_of(ctx, lag):
                result = await run_check(check, ctx, due=time.time() - behind_s)
    assert result.status is status, result.reason
    if status is Status.STALLED:
        assert result.reason.startswith("probe stalled: started ")
        assert "(the probe is saturated)" in result.reason
        assert result.facts["stall_cause"] == "behind schedule"
        assert result.facts["started_late_s"] >= behind_s
        assert result.facts["voided_status"] == "down"


async def test_a_refusal_behind_schedule_is_still_down(ctx: CheckContext) -> None:
    check = request("tcp", {"host": "127.0.0.1", "port": free_port()}, timeout="1s")
    result = await run_check(check, ctx, due=time.time() - 30.0)
    assert result.status is Status.DOWN, result.reason


async def test_without_a_lag_monitor_run_check_judges_as_before(ctx: CheckContext) -> None:
    async with tcp_server(banner_handler(b"hello", echo=False)) as port:
        check = request("tcp", {"host": "127.0.0.1", "port": port, "expect": {"contains": "world"}}, timeout="1s")
        stall_loop(0.2, STALL_S)
        result = await run_check(check, ctx)
    assert result.status is Status.DOWN


# --- the worker: one prompt retry, then nothing stored ------------------------------------------


class ScriptedLag(LoopLag):
    """Reports the given lateness for each check in turn (0 once the script is used up)."""

    def __init__(self, script: list[float]) -> None:
        super().__init__()
        self.script = list(script)

    def since(self, mark: float) -> float:
        return self.script.pop(0) if self.script else 0.0


@pytest.mark.parametrize(
    ("script", "retried", "stalled"),
    [
        pytest.param([], 0, 0, id="not-stalled-is-judged"),
        pytest.param([5.0], 1, 0, id="stalled-once-retried-and-judged"),
        pytest.param([5.0, 5.0], 1, 1, id="stalled-twice-stores-nothing-for-the-slot"),
    ],
)
async def test_the_worker_retries_a_stalled_check_once_then_stores_no_verdict(
    store: Store, ctx: CheckContext, script: list[float], retried: int, stalled: int
) -> None:
    # A refused port fails at once, so the retry fits in the slot (3 s) with room to spare.
    ids = store.apply({"refused": tcp_spec(free_port(), failureThreshold=1)})
    metrics = ProbeMetrics()
    ctx.loop_lag = ScriptedLag(script)
    worker = make_worker(store, ctx, metrics=metrics)
    async with running(worker):
        await eventually(lambda: worker.scheduler.stats.runs >= 2 and worker.writer.buffered == 0)
    rows = [row for row in results(store) if row.monitor_id == ids["refused"]]
    slots = sorted({row.scheduled_at for row in rows if row.scheduled_at is not None})
    assert len(rows) == len(slots)  # one result per slot, retried or not
    assert {row.status for row in rows} == {"down"}
    assert worker.stalled == stalled
    assert len(rows) == worker.scheduler.stats.runs - stalled  # a stalled slot writes no result at all
    voided = metrics.registry.get_sample_value
    assert (voided("spectra_checks_voided_total", {"type": "tcp", "outcome": "retried"}) or 0) == retried
    assert (voided("spectra_checks_voided_total", {"type": "tcp", "outcome": "stalled"}) or 0) == stalled
    assert (voided("spectra_checks_total", {"type": "tcp", "status": "stalled"}) or 0) == stalled
