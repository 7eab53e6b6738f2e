"""Fixed-rate scheduling of many checks: one heap of due times, one timer, a bounded pool of runners.

Run N of a key is due at ``slot * interval + phase`` on the absolute clock, never "last run +
interval", so a slow check does not push later runs back (no drift) and every process computes the
same slots for the same key: leased monitors keep their slot grid when they move to another worker.
The phase defaults to a stable hash of the key (not Python's salted ``hash``) spread over the interval,
so 20,000 monitors do not all start in the same millisecond.

A key never runs twice at once: a slot that comes due while the key's previous run is still queued or
running is skipped and counted as missed, as are slots that passed while the timer slept too long. A key
found busy leaves the heap until its run ends (then the slots that came due meanwhile are counted and its
next slot is pushed), so a saturated probe does not pop and push every busy key once per interval.
Concurrency is bounded by the number of runner tasks; a due check waiting for a free runner counts
into lag. Runners are long-lived and fed from a deque, so a check costs no task creation.

While it runs, the scheduler also keeps the worker's :class:`~spectra.probe.lag.LoopLag` ticking: the
checks it starts are judged against how late the loop itself was (a stopped or starved process wakes
up late for its timer like for everything else).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from spectra.probe.lag import LoopLag

log = logging.getLogger(__name__)

LAG_SAMPLES = 100_000  # the newest samples only: five minutes at 20,000 monitors / 60 s, ~3 MB


@dataclass(frozen=True, slots=True)
class ScheduledCheck:
    key: Hashable
    payload: Any
    due: float  # slot * interval + phase, epoch seconds
    slot: int


@dataclass
class SchedulerStats:
    runs: int = 0
    missed: int = 0
    in_flight: int = 0
    lag: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLES))  # start - due, seconds

    def percentile(self, q: float) -> float:
        """The q-quantile (0..1) of the lag samples (nearest rank); 0.0 without samples."""
        if not self.lag:
            return 0.0
        ordered = sorted(self.lag)
        rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
        return ordered[rank]

    def p50(self) -> float:
        return self.percentile(0.50)

    def p99(self) -> float:
        return self.percentile(0.99)

    def p999(self) -> float:
        return self.percentile(0.999)

    def reset(self) -> None:
        self.runs = self.missed = 0
        self.lag.clear()

    def as_dict(self) -> dict[str, float | int]:
        return {
            "runs": self.runs,
            "missed": self.missed,
            "in_flight": self.in_flight,
            "lag_p50_s": self.p50(),
            "lag_p99_s": self.p99(),
            "lag_p999_s": self.p999(),
        }


def default_phase(key: Hashable, interval_s: float) -> float:
    """A stable offset in [0, interval) for ``key``, the same in every process (millisecond steps)."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    steps = max(1, round(interval_s * 1000))
    return (int.from_bytes(digest, "big") % steps) / 1000


@dataclass(slots=True)
class _Entry:
    key: Hashable
    interval: float
    phase: float
    payload: Any
    slot: int  # the next slot to run
    parked: bool = False  # out of the heap until the key's run ends (it was busy when a slot came due)

    def due(self, slot: int) -> float:
        return slot * self.interval + self.phase


class Scheduler:
    def __init__(
        self,
        run: Callable[[ScheduledCheck], Awaitable[None]],
        *,
        concurrency: int = 1000,
        clock: Callable[[], float] = time.time,
        loop_lag: LoopLag | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._run = run
        self._concurrency = concurrency
        self._clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        # (due, seq, entry): entries replaced or removed stay in the heap and are skipped when popped.
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = 0
        self._busy: set[Hashable] = set()  # queued or running
        self._ready: deque[ScheduledCheck] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._runners: set[asyncio.Task[None]] = set()
        self._wakeup: asyncio.Future[None] | None = None
        self._stopping = False
        self._drained: asyncio.Event | None = None
        self.loop_lag = loop_lag
        self.stats = SchedulerStats()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def scheduled_keys(self) -> set[Hashable]:
        """A copy of the keys scheduled now."""
        return set(self._entries)

    def phase(self, key: Hashable) -> float | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.phase

    def next_due(self, key: Hashable) -> float | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.due(entry.slot)

    def upsert(self, key: Hashable, interval_s: float, payload: Any, phase_s: float | None = None) -> None:
        """Add ``key`` or replace its payload; an unchanged interval keeps its phase and next slot."""
        if interval_s <= 0:
            raise ValueError("interval must be positive")
        current = self._entries.get(key)
        if current is not None and current.interval == interval_s and (phase_s is None or phase_s == current.phase):
            current.payload = payload  # the next slot runs the new payload; nothing moves
            return
        phase = default_phase(key, interval_s) if phase_s is None else phase_s % interval_s
        # The first slot not in the past: a new or re-timed key never runs a slot it came in late for.
        slot = math.ceil((self._clock() - phase) / interval_s)
        entry = _Entry(key, interval_s, phase, payload, slot)
        self._entries[key] = entry
        self._push(entry)

    def remove(self, key: Hashable) -> None:
        """Stop scheduling ``key``; a run in progress finishes."""
        self._entries.pop(key, None)

    def _push(self, entry: _Entry) -> None:
        due = entry.due(entry.slot)
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, entry))
        if self._wakeup is not None and self._heap[0][2] is entry:
            self._wake()  # earlier than what the timer sleeps for

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def run(self) -> None:
        """Dispatch due checks until cancelled or :meth:`stop`ped."""
        loop = asyncio.get_running_loop()
        self._stopping = False
        ticking = None
        if self.loop_lag is not None and not self.loop_lag.ticking:
            ticking = loop.create_task(self.loop_lag.run(), name="loop-lag")
        try:
            while not self._stopping:
                now = self._clock()
                self._dispatch(now)
                self._wakeup = loop.create_future()
                timer = None
                if self._heap:
                    timer = loop.call_later(max(0.0, self._heap[0][0] - self._clock()), self._wake)
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
                    if timer is not None:
                        timer.cancel()
        finally:
            if ticking is not None:
                ticking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticking
            if not self._stopping:  # cancelled: abandon whatever is still running
                await self._cancel_runners()

    def _dispatch(self, now: float) -> None:
        heap, entries = self._heap, self._entries
        while heap and heap[0][0] <= now:
            due, _, entry = heapq.heappop(heap)
            if entries.get(entry.key) is not entry or due != entry.due(entry.slot):
                continue  # removed or replaced since it was pushed
            slot = entry.slot
            # Woke too late for whole slots: run only the newest one that is due, count the rest.
            newest = math.floor((now - entry.phase) / entry.interval)
            if newest > slot:
                self.stats.missed += newest - slot
                slot = newest
            entry.slot = slot + 1
            if entry.key in self._busy:
                self.stats.missed += 1  # the previous run of this key is still going
                entry.parked = True  # pushed again when that run ends (_release)
                continue
            self._push(entry)
            self._busy.add(entry.key)
            self._ready.append(ScheduledCheck(entry.key, entry.payload, entry.due(slot), slot))
            self._feed()

    def _feed(self) -> None:
        while self._idle:
            future = self._idle.popleft()
            if not future.done():
                future.set_result(None)
                return
        if len(self._runners) < self._concurrency:
            task = asyncio.get_running_loop().create_task(self._runner())
            self._runners.add(task)
            task.add_done_callback(self._runners.discard)

    async def _runner(self) -> None:
        loop = asyncio.get_running_loop()
        ready, stats, clock = self._ready, self.stats, self._clock
        while True:
            while ready:
                check = ready.popleft()
                stats.lag.append(clock() - check.due)
                stats.runs += 1
                stats.in_flight += 1
                try:
                    await self._run(check)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("scheduled run of %r failed", check.key)
                finally:
                    stats.in_flight -= 1
                    self._release(check.key)
                    if stats.in_flight == 0 and self._drained is not None:
                        self._drained.set()
            future: asyncio.Future[None] = loop.create_future()
            self._idle.append(future)
            await future

    def _release(self, key: Hashable) -> None:
        """The run of ``key`` ended (or was dropped): put its entry back into the heap if it was parked, with
        the slots that came due while it was busy counted as missed, as a dispatch would have counted them."""
        self._busy.discard(key)
        entry = self._entries.get(key)
        if entry is None or not entry.parked:
            return
        entry.parked = False
        newest = math.floor((self._clock() - entry.phase) / entry.interval)  # the newest slot due now
        if newest >= entry.slot:
            self.stats.missed += newest - entry.slot + 1
            entry.slot = newest + 1
        self._push(entry)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Dispatch nothing more; let running checks finish for up to ``grace_s``, then cancel them."""
        self._stopping = True
        self._wake()
        dropped = list(self._ready)
        self._ready.clear()  # queued but not started: dropped
        for check in dropped:
            self._release(check.key)
        if self.stats.in_flight:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await self._drained.wait()
            self._drained = None
        await self._cancel_runners()

    async def _cancel_runners(self) -> None:
        runners = list(self._runners)
        for task in runners:
            task.cancel()
        for task in runners:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._idle.clear()
        dropped = list(self._ready)
        self._ready.clear()
        for key in [check.key for check in dropped] + list(self._busy):
            self._release(key)
