"""Results to the store in batches: one INSERT and one state upsert per batch, in one transaction.

Checks hand results to :meth:`ResultWriter.add` (no I/O, never blocks the event loop); a background
task writes them in batches from a thread. Each batch also judges the monitors' states (state.py)
from the in-memory previous state (loaded from the store the first time a monitor shows up) and
upserts them, so stored states always match stored results.

When the database is unavailable the results wait in a bounded buffer (the oldest are dropped beyond
``max_buffer`` and counted) and go out in order once it is back. States are only judged from results
that were stored, so our own database trouble never turns a monitor DOWN. While it is away the writer
asks it a cheap ``SELECT 1`` at most every ``retry_max_s`` (1 s) instead of sending batches, so the
buffer goes out within about a second of the database's return, and a dead database is not sent big
batches; failures are logged once per outage through :class:`DatabaseHealth`.

Each state row gets ``reported_at``, the database's time of the write (``database_now``): whoever
judges a location silent compares it with the database's clock, never with a probe's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import exc, text
from sqlalchemy.orm import Session

from spectra.probe.database_health import DatabaseHealth, describe
from spectra.probe.database_threads import in_database_thread
from spectra.probe.result import CheckResult, Status
from spectra.probe.state import PENDING, State, StateSnapshot, next_state
from spectra.store import insert_results
from spectra.store.clock import database_now
from spectra.store.engine import retry_conflicts
from spectra.store.location_monitors import existing_monitors
from spectra.store.monitor_states import MonitorState, load_states, save_states

log = logging.getLogger(__name__)

Key = tuple[int, str]  # (monitor_id, location)
OnChange = Callable[[int, str, State, State, CheckResult], None]
SessionFactory = Callable[[], Session]


@dataclass(slots=True)
class _Pending:
    monitor_id: int
    location: str
    scheduled_at: datetime | None
    result: CheckResult
    ref: str
    failure_threshold: int
    success_threshold: int


# A monitor's state as stored, kept between batches: (state, consecutive failures, consecutive successes,
# last status, changed_at). A plain tuple of plain values (no enum members, not a NamedTuple): the garbage
# collector untracks such tuples, so the one per monitor (10,000s, replaced at every check) is neither
# scanned by nor promoted into its full passes.
_Known = tuple[str, int, int, str | None, datetime | None]


def _known(snapshot: StateSnapshot, changed_at: datetime | None) -> _Known:
    last = snapshot.last_status
    return (
        snapshot.state.value,
        snapshot.consecutive_failures,
        snapshot.consecutive_successes,
        last.value if last is not None else None,
        changed_at,
    )


def _snapshot(known: _Known) -> StateSnapshot:
    state, failures, successes, last, _ = known
    return StateSnapshot(State(state), failures, successes, Status(last) if last else None)


@dataclass(frozen=True, slots=True)
class _Change:
    monitor_id: int
    location: str
    old: State
    new: State
    result: CheckResult
    ref: str


class _BadData(Exception):
    """The batch itself cannot be written (e.g. its monitor was deleted meanwhile); retrying will not help."""


class ResultWriter:
    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 0.25,
        max_buffer: int = 100_000,
        on_change: OnChange | None = None,
        retry_initial_s: float = 0.25,
        retry_max_s: float = 1.0,
        health: DatabaseHealth | None = None,
    ) -> None:
        if batch_size < 1 or max_buffer < batch_size:
            raise ValueError("need 1 <= batch_size <= max_buffer")
        self._sessions = session_factory
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.on_change = on_change
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.health = health or DatabaseHealth()
        self._buffer: deque[_Pending] = deque()
        self._states: dict[Key, _Known] = {}
        self._forgotten: set[Key] = set()
        self._wake = asyncio.Event()  # a batch is full
        self._stop = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one batch at a time, whoever flushes
        self._failing = False
        self.written = 0  # results stored
        self.batches = 0  # batches stored
        self.dropped = 0  # results dropped because the buffer was full
        self.discarded = 0  # results that could not be stored at all (their monitor was deleted)
        self.failures = 0  # batches the database refused (each is retried)

    # --- the hot path: no I/O -----------------------------------------------------------------

    def add(
        self,
        monitor_id: int,
        location: str,
        scheduled_at: datetime | None,
        result: CheckResult,
        *,
        ref: str = "",
        failure_threshold: int = 1,
        success_threshold: int = 1,
    ) -> None:
        """Queue one result; ``ref`` (namespace/name) names the monitor in state-change logs."""
        buffer = self._buffer
        if len(buffer) >= self.max_buffer:
            buffer.popleft()
            self.dropped += 1
        buffer.append(_Pending(monitor_id, location, scheduled_at, result, ref, failure_threshold, success_threshold))
        if len(buffer) >= self.batch_size:
            self._wake.set()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def state(self, monitor_id: int, location: str) -> StateSnapshot | None:
        known = self._states.get((monitor_id, location))
        return None if known is None else _snapshot(known)

    def states(self) -> dict[Key, StateSnapshot]:
        return {key: _snapshot(known) for key, known in self._states.items()}

    def forget(self, monitor_id: int, location: str) -> None:
        """Drop the cached state (the monitor moved to another worker, or was paused or deleted)."""
        key = (monitor_id, location)
        self._states.pop(key, None)
        self._forgotten.add(key)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._closing = False
            self._stop.clear()
            self._task = asyncio.get_running_loop().create_task(self.run(), name="result-writer")

    async def run(self) -> None:
        """Flush every ``flush_interval_s`` (sooner when a batch is full) until :meth:`stop` or cancelled."""
        backoff, delay = self.retry_initial_s, self.flush_interval_s
        while not self._closing:
            # While the database refuses, only stop() cuts the pause short, not new results.
            event = self._stop if self._failing else self._wake
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await event.wait()
            self._wake.clear()
            if self._closing:
                return
            if (not self._failing or await self._answers()) and await self.flush():
                backoff, delay = self.retry_initial_s, self.flush_interval_s
            else:
                delay, backoff = backoff, min(backoff * 2, self.retry_max_s)

    async def _answers(self) -> bool:
        """Whether the database answers a cheap query (asked before a batch while it has been failing)."""

        def ping() -> None:
            with self._sessions() as session:
                session.execute(text("SELECT 1"))

        try:
            await in_database_thread(ping)
        except Exception as error:
            self.failures += 1
            self.health.failed("result writer", error)
            return False
        return True

    def abandon(self) -> None:
        """Stop the background task without writing what is left (the process is going down hard)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the background task and write what is left (giving up after ``timeout_s``).

        A batch being written is not cancelled (its thread would go on and could commit after the
        next one): the task finishes it and returns.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._closing = True
        self._stop.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
            if not done:
                self._task.cancel()
            self._task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                while self._buffer and not await self.flush():
                    await asyncio.sleep(self.retry_initial_s)
        if self._buffer:
            log.error("result writer stopped with %d result(s) not stored: database unavailable", len(self._buffer))

    async def flush(self) -> bool:
        """Write everything buffered now, batch by batch; False when the database refused."""
        async with self._lock:
            while self._buffer:
                batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
                if not await self._write(batch):
                    return False
        return True

    # --- writing --------------------------------------------------------------------------------

    async def _write(self, batch: list[_Pending]) -> bool:
        previous = {(p.monitor_id, p.location): self._states.get((p.monitor_id, p.location)) for p in batch}
        self._forgotten.clear()
        try:
            known, changes, discarded = await in_database_thread(self._store, batch, previous)
        except _BadData as error:
            self.discarded += len(batch)
            log.error("dropped a batch of %d result(s) that cannot be stored: %s", len(batch), error)
            return True
        except Exception as error:  # the database is unavailable: keep the batch, in order, and retry
            self._requeue(batch)
            self.failures += 1
            self.health.failed("result writer", error)
            self._failing = True
            return False
        self.health.succeeded()
        if self._failing:
            log.info("writing %d buffered result(s)", len(self._buffer) + len(batch))
            self._failing = False
        for key, value in known.items():
            if key not in self._forgotten:
                self._states[key] = value
        self.discarded += discarded
        self.written += len(batch) - discarded
        self.batches += 1
        for change in changes:
            self._report(change)
        return True

    def _requeue(self, batch: list[_Pending]) -> None:
        self._buffer.extendleft(reversed(batch))
        while len(self._buffer) > self.max_buffer:
            self._buffer.popleft()
            self.dropped += 1

    def _store(
        self, batch: list[_Pending], previous: dict[Key, _Known | None]
    ) -> tuple[dict[Key, _Known], list[_Change], int]:
        """In a thread: one transaction with the INSERT, the state loads it needs and the state upsert.

        Returns the new states, the changes and how many results had to be left out.
        """
        try:
            return (*retry_conflicts(partial(self._transaction, batch, previous)), 0)
        except (exc.IntegrityError, exc.DataError) as error:
            pass_on: BaseException = error
        except exc.StatementError as error:
            if isinstance(error, exc.DBAPIError):
                raise  # operational trouble: retry later
            pass_on = error  # a value the driver cannot take (e.g. facts that are not JSON)
        # Salvage: leave out results of monitors deleted meanwhile, make facts plain JSON, try once more.
        ids = sorted({p.monitor_id for p in batch})
        with self._sessions() as session:
            existing = existing_monitors(session, ids)
        kept = [_plain(p) for p in batch if p.monitor_id in existing]
        if len(kept) == len(batch) and all(a.result.facts == b.result.facts for a, b in zip(kept, batch, strict=True)):
            raise _BadData(describe(pass_on)) from pass_on
        try:
            return (*self._transaction(kept, previous), len(batch) - len(kept))
        except (exc.IntegrityError, exc.DataError) as error:
            raise _BadData(describe(error)) from error

    def _transaction(
        self, batch: list[_Pending], previous: dict[Key, _Known | None]
    ) -> tuple[dict[Key, _Known], list[_Change]]:
        with self._sessions() as session, session.begin():
            # The INSERT goes first: on SQLite it takes the write lock before anything is read.
            insert_results(session, [_result_row(p) for p in batch])
            current = dict(previous)
            missing: dict[str, list[int]] = {}
            for (monitor_id, location), value in previous.items():
                if value is None:
                    missing.setdefault(location, []).append(monitor_id)
            for location, ids in missing.items():
                for monitor_id, row in load_states(session, ids, location).items():
                    current[(monitor_id, location)] = _known_from_row(row)
            changes: list[_Change] = []
            after: dict[Key, _Known] = {}
            for p in batch:
                key = (p.monitor_id, p.location)
                before = current.get(key)
                old = _snapshot(before) if before is not None else None
                new = next_state(old, p.result.status, p.failure_threshold, p.success_threshold)
                changed_at = before[4] if before is not None else None  # its changed_at
                old_state = old.state if old is not None else PENDING.state
                if new.state is not old_state or changed_at is None:
                    changed_at = p.result.checked_at
                if new.state is not old_state:
                    changes.append(_Change(p.monitor_id, p.location, old_state, new.state, p.result, p.ref))
                current[key] = after[key] = _known(new, changed_at)
            last = {(p.monitor_id, p.location): p for p in batch}  # the newest result per monitor
            stored_at = database_now(session)
            # In key order: two workers writing states of the same monitors (one lease moving) lock
            # their rows in the same order.
            rows = [_state_row(last[key], after[key], stored_at) for key in sorted(last)]
            save_states(session, rows)
        return after, changes

    def _report(self, change: _Change) -> None:
        ref = change.ref or f"#{change.monitor_id}"
        level = logging.INFO
        if change.new is State.DOWN:
            level = logging.WARNING
        elif change.old is State.PENDING and change.new is State.UP:
            level = logging.DEBUG  # every monitor does this once after start: not news
        log.log(
            level, "monitor %s [%s]: %s -> %s (%s)", ref, change.location, change.old, change.new, change.result.reason
        )
        if self.on_change is not None:
            try:
                self.on_change(change.monitor_id, change.location, change.old, change.new, change.result)
            except Exception:
                log.exception("state change callback failed")


def _plain(p: _Pending) -> _Pending:
    """``p`` with facts that surely serialize as JSON (unknown types become strings)."""
    facts = json.loads(json.dumps(p.result.facts, default=str))
    return replace(p, result=replace(p.result, facts=facts))


def _result_row(p: _Pending) -> dict[str, Any]:
    result = p.result
    return {
        "monitor_id": p.monitor_id,
        "location": p.location,
        "checked_at": result.checked_at,
        "scheduled_at": p.scheduled_at,
        "status": result.status.value,
        "latency_ms": result.latency_ms,
        "reason": result.reason,
        "details": result.facts or None,
    }


def _state_row(p: _Pending, known: _Known, stored_at: datetime) -> dict[str, Any]:
    result = p.result
    state, failures, successes, last_status, changed_at = known
    return {
        "monitor_id": p.monitor_id,
        "location": p.location,
        "state": state,
        "last_status": last_status,
        "consecutive_failures": failures,
        "consecutive_successes": successes,
        "last_check_at": result.checked_at,
        "last_latency_ms": result.latency_ms,
        "last_reason": (result.reason or "")[:500],
        "changed_at": changed_at or result.checked_at,
        "facts": result.facts or None,
        "reported_at": stored_at,
        "state_stored_at": stored_at,  # kept by the store unless the state changed (save_states)
    }


def _known_from_row(row: MonitorState) -> _Known:
    snapshot = StateSnapshot(
        State(row.state),
        row.consecutive_failures,
        row.consecutive_successes,
        Status(row.last_status) if row.last_status else None,
    )
    return _known(snapshot, row.changed_at)
