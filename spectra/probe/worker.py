"""The probe worker of one location: load its monitors, schedule the ones it owns, check, write results.

Monitors come from the store (monitors JOIN monitor_locations JOIN resources.spec); paused ones are
not scheduled (their state becomes ``paused``). The assignment (solo, or leases shared with the
location's other workers) decides which ones this worker runs; the scheduler runs them at fixed rate
through ``run_check``; the result writer stores results in batches with the slot's due time.

Reloads only touch what changed: an unchanged monitor keeps its schedule, a changed one keeps its
phase when its interval stayed the same. The periodic reload first asks the store for a cheap
fingerprint of the location's monitors and skips the full load when nothing changed.

While the database is away the worker goes on: it checks what its assignment still holds (leases
outlast an outage allowance, ``leases.py``), the writer buffers the results, and every failing round
trip reports to one :class:`~spectra.probe.database_health.DatabaseHealth` (one-line logs, readiness,
metrics). Slots the assignment no longer covers are skipped and counted (``skipped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy.orm import Session

from spectra.api.monitor import MonitorSpec
from spectra.probe.checks import run_check
from spectra.probe.checks.heartbeat import note_first_seen
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.database_threads import in_database_thread
from spectra.probe.lag import LagMetrics, LoopLag
from spectra.probe.leases import Assignment, SoloAssignment, Timing
from spectra.probe.result import CheckResult, Status
from spectra.probe.scheduler import ScheduledCheck, Scheduler
from spectra.probe.state import State
from spectra.probe.writer import OnChange, ResultWriter
from spectra.store.heartbeats import last_push
from spectra.store.location_monitors import LocationMonitor, location_fingerprint, location_monitors, monitor_specs
from spectra.store.monitor_states import mark_paused

HEARTBEAT_EVALUATION_S = 30.0  # heartbeat deadlines are evaluated at least this often
# A monitor checked at least this often keeps its validated spec between checks; a slower one keeps only
# its spec as compact JSON and validates it again for each check (~25 µs, against the ~2.3 KB a validated
# http spec holds: 10,000 monitors at 60 s keep ~23 MB less for 0.4 % of a core). Fast monitors are few
# by nature (one core checks a few thousand a second), so the kept ones stay few too.
KEEP_VALIDATED_UP_TO_S = 10.0
STALL_LOG_EVERY_S = 30.0  # at most one warning per this many seconds while slots end without a verdict

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]


class _Observe(Protocol):
    def observe(self, amount: float) -> None: ...


class _Increment(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Set(Protocol):
    def set(self, value: float) -> None: ...


class _Labelled(Protocol):
    def labels(self, *values: str) -> _Increment: ...


class WorkerMetrics(LagMetrics, Protocol):
    """What the worker reports to (spectra.probe.metrics.ProbeMetrics has these)."""

    @property
    def voided(self) -> _Labelled: ...

    @property
    def lag(self) -> _Observe: ...

    @property
    def missed(self) -> _Increment: ...

    @property
    def state_changes(self) -> _Labelled: ...

    @property
    def buffered(self) -> _Set: ...

    @property
    def dropped(self) -> _Increment: ...

    @property
    def skipped(self) -> _Increment: ...

    @property
    def lease_failures(self) -> _Increment: ...

    @property
    def leases_held(self) -> _Set: ...

    def observe_check(self, monitor_type: str, status: str, seconds: float | None) -> None: ...

    def set_states(self, counts: dict[str, int]) -> None: ...


class _StallLog:
    """One warning per STALL_LOG_EVERY_S at most while slots end without a verdict, with their count."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._logged_at = -STALL_LOG_EVERY_S
        self._unlogged = 0

    def note(self, ref: str, reason: str) -> None:
        log.debug("monitor %s: %s", ref, reason)
        self._unlogged += 1
        now = self._clock()
        if now - self._logged_at < STALL_LOG_EVERY_S:
            return
        log.warning(
            "%d check(s) without a verdict since the last warning: the probe was too late to judge them "
            "(stopped, starved of CPU or saturated), so they are not counted as down; e.g. %s: %s",
            self._unlogged,
            ref,
            reason,
        )
        self._logged_at, self._unlogged = now, 0


@dataclass(frozen=True, slots=True)
class _Monitor:
    """What the worker keeps of one monitor between its checks (10,000 of these live in `spectra run`)."""

    monitor_id: int
    namespace: str
    name: str
    spec_json: str  # the spec as loaded and validated, compact: validated again per check unless `validated`
    validated: CheckRequest | None  # kept for monitors checked at least every KEEP_VALIDATED_UP_TO_S
    spec_hash: str
    timing: Timing
    failure_threshold: int
    success_threshold: int

    def request(self) -> CheckRequest:
        """The check request; the same spec that validated at load, so it validates again."""
        if self.validated is not None:
            return self.validated
        spec = MonitorSpec.model_validate(json.loads(self.spec_json))
        return CheckRequest(self.namespace, self.name, spec, monitor_id=self.monitor_id)


class Worker:
    def __init__(
        self,
        location: str,
        session_factory: SessionFactory,
        ctx: CheckContext,
        *,
        assignment: Assignment | None = None,
        concurrency: int = 1000,
        refresh_interval_s: float = 5.0,
        writer: ResultWriter | None = None,
        grace_s: float = 5.0,
        metrics: WorkerMetrics | None = None,
        on_change: OnChange | None = None,
    ) -> None:
        self.location = location
        self.ctx = ctx
        self.assignment: Assignment = assignment or SoloAssignment()
        self.refresh_interval_s = refresh_interval_s
        self.grace_s = grace_s
        self.metrics = metrics
        self._sessions = session_factory
        self.writer = writer or ResultWriter(session_factory)
        self._on_change_user = on_change or self.writer.on_change
        self.writer.on_change = self._on_change
        if ctx.loop_lag is None:
            ctx.loop_lag = LoopLag(metrics)
        self.scheduler = Scheduler(self._run_slot, concurrency=concurrency, loop_lag=ctx.loop_lag)
        if ctx.last_push is None:
            ctx.last_push = self._last_push
        self._monitors: dict[int, _Monitor] = {}
        self._paused: set[int] = set()
        self._invalid: dict[int, str] = {}  # monitor id -> spec hash that failed validation (logged once)
        self._fingerprint: Any = None
        self._refresh_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._done = asyncio.Event()
        self._stopping = False
        self._reported_missed = 0
        self._reported_dropped = 0
        self._reported_skipped = 0
        self._reported_lease_failures = 0
        self.skipped = 0  # slots not run: the lease would not have lasted through the check
        self._unjudged: set[int] = set()
        self.unjudged = 0  # results dropped because the store failed during the check (heartbeats)
        self.stalled = 0  # slots without a verdict: the probe's own lag ate the check's time (not written)
        self._stall_log = _StallLog()

    @property
    def monitors(self) -> dict[int, CheckRequest]:
        """The location's monitors this worker knows (not paused), by id."""
        return {key: monitor.request() for key, monitor in self._monitors.items()}

    # --- loading ------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Reload the location's monitors now; unchanged ones keep their schedule."""
        async with self._refresh_lock:
            known = {key: monitor.spec_hash for key, monitor in self._monitors.items()}
            rows, specs, fingerprint = await in_database_thread(self._load, known)
            self._apply(rows, specs)
            self._fingerprint = fingerprint

    def _load(
        self, known: dict[int, str]
    ) -> tuple[list[LocationMonitor], dict[int, dict[str, Any]], tuple[int, int, datetime | None]]:
        with self._sessions() as session:
            fingerprint = location_fingerprint(session, self.location)
            rows = location_monitors(session, self.location, with_spec=False)
            wanted = [r.monitor_id for r in rows if not r.paused and known.get(r.monitor_id) != r.spec_hash]
            return rows, monitor_specs(session, wanted), fingerprint

    def _apply(self, rows: list[LocationMonitor], specs: dict[int, dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        monitors: dict[int, _Monitor] = {}
        changed: set[int] = set()
        paused: set[int] = set()
        for row in rows:
            key = row.monitor_id
            if row.paused:
                paused.add(key)
                continue
            current = self._monitors.get(key)
            if current is not None and current.spec_hash == row.spec_hash:
                monitors[key] = current
                continue
            if self._invalid.get(key) == row.spec_hash or key not in specs:
                continue
            try:
                spec = MonitorSpec.model_validate(specs[key])
            except ValidationError as error:
                self._invalid[key] = row.spec_hash
                log.error("monitor %s/%s has a spec this worker cannot run: %s", row.namespace, row.name, error)
                continue
            request = CheckRequest(row.namespace, row.name, spec, monitor_id=key)
            every = spec.interval.total_seconds()
            if spec.heartbeat is not None:
                # A heartbeat's interval is how often pushes come (maybe daily); a missed one must be
                # noticed soon after its deadline, not at the next daily slot.
                every = min(every, HEARTBEAT_EVALUATION_S)
            monitors[key] = _Monitor(
                key,
                sys.intern(row.namespace),  # shared by thousands of monitors: one copy
                row.name,
                json.dumps(specs[key], separators=(",", ":"), ensure_ascii=False),
                request if every <= KEEP_VALIDATED_UP_TO_S else None,
                row.spec_hash,
                Timing(every, spec.effective_timeout.total_seconds()),
                spec.failure_threshold,
                spec.success_threshold,
            )
            changed.add(key)
            if spec.heartbeat is not None:
                note_first_seen(self.ctx, request, now)
        gone = self._monitors.keys() - monitors.keys()
        newly_paused = paused - self._paused
        self._monitors = monitors
        self._paused = paused
        for key in gone | newly_paused:
            self.writer.forget(key, self.location)
        if newly_paused:
            task = asyncio.create_task(self._mark_paused(newly_paused, now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.assignment.set_monitors({key: monitor.timing for key, monitor in monitors.items()})
        self._schedule(self.assignment.owned, changed)
        if changed or gone or newly_paused:
            log.info(
                "location %s: %d monitor(s) (%d new or changed, %d removed, %d paused)",
                self.location,
                len(monitors),
                len(changed),
                len(gone),
                len(paused),
            )

    async def _mark_paused(self, monitor_ids: set[int], at: datetime) -> None:
        def write() -> None:
            with self._sessions() as session, session.begin():
                mark_paused(session, monitor_ids, self.location, at)

        try:
            await in_database_thread(write)
        except Exception as error:
            log.warning("could not store the paused state of %d monitor(s): %s", len(monitor_ids), error)

    def _schedule(self, owned: frozenset[int], changed: set[int] | frozenset[int] = frozenset()) -> None:
        """Make the schedule match ``owned``: drop the rest, add the new, update the changed."""
        scheduler = self.scheduler
        for key in scheduler.scheduled_keys():
            if key not in owned or key not in self._monitors:
                scheduler.remove(key)
                if isinstance(key, int):
                    self.writer.forget(key, self.location)  # another worker may write its state now
        for key in owned:
            monitor = self._monitors.get(key)
            if monitor is not None and (key in changed or key not in scheduler):
                scheduler.upsert(key, monitor.timing.interval_s, monitor)

    def _on_owned(self, owned: frozenset[int]) -> None:
        self._schedule(owned)

    def _next_due(self, monitor_id: int) -> float | None:
        return self.scheduler.next_due(monitor_id)

    # --- running checks -----------------------------------------------------------------------

    async def _run_slot(self, check: ScheduledCheck) -> None:
        started = time.time()
        monitor_id = check.key
        monitor = self._monitors.get(monitor_id) if isinstance(monitor_id, int) else None
        if monitor is None or not isinstance(monitor_id, int):
            return
        # The lease must outlast the whole check, or a new owner could start this slot's successor.
        if not self.assignment.may_run(monitor_id, max(started, check.due) + monitor.timing.timeout_s):
            self.skipped += 1
            return
        if self.metrics is not None:
            self.metrics.lag.observe(max(0.0, started - check.due))
        scheduled: _Monitor = check.payload  # the monitor as it was when this slot came due
        request = scheduled.request()
        kind = str(request.spec.type)
        result = await self._check_unstalled(monitor_id, monitor, check, request)
        if monitor_id in self._unjudged:  # the store failed us mid-check: no verdict on the monitor
            self._unjudged.discard(monitor_id)
            self.unjudged += 1
            return
        if result.status is Status.STALLED:  # no verdict on the target: nothing to store or to judge
            self.stalled += 1
            self._stall_log.note(request.ref, result.reason)
            if self.metrics is not None:
                self.metrics.observe_check(kind, result.status.value, None)
            return
        self.writer.add(
            monitor_id,
            self.location,
            datetime.fromtimestamp(check.due, UTC),
            result,
            ref=request.ref,
            failure_threshold=monitor.failure_threshold,
            success_threshold=monitor.success_threshold,
        )
        if self.metrics is not None:
            seconds = result.latency_ms / 1000 if result.latency_ms is not None else None
            self.metrics.observe_check(kind, result.status.value, seconds)

    async def _check_unstalled(
        self, monitor_id: int, monitor: _Monitor, check: ScheduledCheck, request: CheckRequest
    ) -> CheckResult:
        """Run the check; once more at once if the probe stalled during it and the slot still has room.

        The retry is judged on its own lateness only (it starts after the first attempt by design)."""
        result = await run_check(request, self.ctx, due=check.due)
        if result.status is not Status.STALLED:
            return result
        until = time.time() + monitor.timing.timeout_s
        # Only within this slot: the retry must end before the next slot is due, and within the lease.
        retry = until <= check.due + monitor.timing.interval_s and self.assignment.may_run(monitor_id, until)
        if self.metrics is not None:
            self.metrics.voided.labels(str(request.spec.type), "retried" if retry else "stalled").inc()
        if not retry:
            return result
        result = await run_check(request, self.ctx)
        if result.status is Status.STALLED and self.metrics is not None:
            self.metrics.voided.labels(str(request.spec.type), "stalled").inc()
        return result

    async def _last_push(self, request: CheckRequest) -> datetime | None:
        monitor_id = request.monitor_id
        if monitor_id is None:
            return None

        def read() -> datetime | None:
            with self._sessions() as session:
                return last_push(session, monitor_id)

        try:
            return await in_database_thread(read)
        except Exception:
            # Our database, not the monitored job, is failing: the result must not count against it.
            self._unjudged.add(monitor_id)
            raise

    def _on_change(self, monitor_id: int, location: str, old: State, new: State, result: CheckResult) -> None:
        if self.metrics is not None:
            self.metrics.state_changes.labels(new.value).inc()
        if self._on_change_user is not None:
            self._on_change_user(monitor_id, location, old, new, result)

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until :meth:`stop` (clean) or cancellation (abandons everything, like a crash)."""
        await self.refresh()
        # The monitors just loaded live as long as the process: taking them out of the collector's
        # generations keeps full collections (40-85 ms at 20,000 monitors, bench) from stalling slots.
        gc.freeze()
        self.writer.start()
        self._tasks |= {
            asyncio.create_task(self.scheduler.run(), name=f"scheduler-{self.location}"),
            asyncio.create_task(
                self.assignment.run(self._on_owned, self._next_due), name=f"assignment-{self.location}"
            ),
            asyncio.create_task(self._refresh_loop(), name=f"refresh-{self.location}"),
            asyncio.create_task(self._metrics_loop(), name=f"metrics-{self.location}"),
        }
        try:
            await self._done.wait()
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._tasks.clear()
            if not self._stopping:
                self.writer.abandon()

    async def stop(self) -> None:
        """Stop cleanly: no new checks, running ones get ``grace_s``, results are flushed, leases released."""
        if self._stopping:
            return
        self._stopping = True
        await self.scheduler.stop(self.grace_s)
        await self.writer.stop()
        await self.assignment.release()
        await self.ctx.aclose()  # the evaluator processes and Chromium go with the checks that used them
        self._done.set()

    async def _refresh_loop(self) -> None:
        health = self.writer.health
        while True:
            await asyncio.sleep(self.refresh_interval_s)
            try:
                fingerprint = await in_database_thread(self._read_fingerprint)
                if fingerprint != self._fingerprint:
                    await self.refresh()
            except Exception as error:  # the database is away: keep running what we have
                health.failed("monitor reload", error)
            else:
                health.succeeded()

    async def _metrics_loop(self) -> None:
        # Apart from the reload: a frozen database must not freeze the figures that report it.
        while True:
            await asyncio.sleep(self.refresh_interval_s)
            self._report_metrics()

    def _read_fingerprint(self) -> tuple[int, int, datetime | None]:
        with self._sessions() as session:
            return location_fingerprint(session, self.location)

    def _report_metrics(self) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        stats, writer = self.scheduler.stats, self.writer
        metrics.missed.inc(max(0, stats.missed - self._reported_missed))
        self._reported_missed = stats.missed
        metrics.dropped.inc(max(0, writer.dropped - self._reported_dropped))
        self._reported_dropped = writer.dropped
        metrics.skipped.inc(max(0, self.skipped - self._reported_skipped))
        self._reported_skipped = self.skipped
        failures = self.assignment.renewal_failures
        metrics.lease_failures.inc(max(0, failures - self._reported_lease_failures))
        self._reported_lease_failures = failures
        metrics.leases_held.set(len(self.assignment.owned))
        metrics.buffered.set(writer.buffered)
        counts: Counter[str] = Counter()
        for key in self.assignment.owned:
            snapshot = writer.state(key, self.location)
            counts[snapshot.state.value if snapshot is not None else State.PENDING.value] += 1
        counts[State.PAUSED.value] += len(self._paused)
        metrics.set_states(dict(counts))
