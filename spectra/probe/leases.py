"""Which monitors this worker runs: all of them (standalone), or a fair share of its location's (leases).

Workers of one location share its monitors through ``monitor_leases``. Every tick (a quarter of the
lease TTL) a worker, in one transaction: heartbeats into ``probe_workers``, inserts missing lease rows,
counts the live workers, and with one conditional UPDATE per chunk renews the leases it keeps and
claims free ones up to its fair share ``ceil(monitors / live workers)`` (free: no worker, or run out),
so two workers never win the same lease. Leases beyond the share (a new worker joined) are dropped
from the schedule first and released afterwards, each only while its next slot is far enough off that
the new holder (ticking every HUNGRY_TICK_S while short of its share) has it scheduled before that slot,
so a handover misses no slot. A slot only runs while the lease lasts past its due
time plus the check's timeout, so a monitor whose lease moves is never checked twice in one slot.

Time. Every lease time is the database's (``database_now``): a worker writes ``lease_until`` as the
database's now plus the lease's length, and a lease is free when it ran out by the database's clock,
so a node whose clock runs ahead cannot take a healthy peer's leases. The worker's own view of its
leases is a deadline on its monotonic clock, counted from *before* the renewing transaction began: the
database's now was read later than that, so the local deadline always passes first.

Outages. A worker cannot tell a peer that died from a peer cut off from the database, so a lease must
outlast the outages its holder is meant to ride out: ``lease_until`` is now + TTL + the outage
allowance (default 60 s). While renewals fail, the worker keeps running what it held at its last
successful renewal, buffering results, until its local deadline (start of that renewal + TTL +
allowance); no peer can claim those leases before they run out in database time, which is later, so
no slot is checked twice. Longer outages: the leases lapse, slots are skipped and counted
(``spectra_scheduler_skipped_runs_total``), and readiness says so. The price is failover after a
crash (SIGKILL, OOM; a clean stop releases its leases at once): a crashed worker's monitors move after
TTL + allowance. The allowance is written into each lease by its holder, so workers with different
settings stay safe with each other. A failed tick is retried after about a second (with jitter), not
after TTL/4; lock conflicts (deadlocks) inside one are retried at once by ``retry_conflicts``.

The TTL defaults to 1.5 x the shortest interval (at most 30 s), so a joining worker gets its share
within TTL/4; it is raised when a long timeout needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from sqlalchemy.orm import Session

from spectra.probe.database_health import DatabaseHealth, describe
from spectra.probe.database_threads import in_database_thread
from spectra.store.clock import database_now
from spectra.store.engine import retry_conflicts
from spectra.store.worker_leases import (
    ensure_leases,
    forget_worker,
    free_leases,
    held_leases,
    lease_counts,
    live_workers,
    prune_workers,
    release_leases,
    take_leases,
    touch_worker,
)

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]
OnOwned = Callable[[frozenset[int]], None]
NextDue = Callable[[int], float | None]  # when a monitor's next slot is due (epoch seconds), if scheduled

MAX_TTL_S = 30.0
RENEWALS_PER_TTL = 4  # renew every TTL/4: the lease always lasts >= 3/4 TTL past now
_WORKER_ROW_KEEP = timedelta(hours=1)  # rows of workers gone this long are deleted
# How long a worker keeps running its monitors while it cannot renew (see the module's docstring).
DEFAULT_OUTAGE_ALLOWANCE_S = 60.0
RETRY_FIRST_S = 0.5  # a failed tick is retried after this (x 0.5-1.5 jitter), doubling up to RETRY_MAX_S
RETRY_MAX_S = 1.5
# Handing a monitor over: the holder releases it only while its next slot is at least this far off
# (at most half an interval), and a worker short of its share ticks every HUNGRY_TICK_S meanwhile, so
# the new holder has it scheduled before that slot: no slot falls between two workers.
HANDOVER_MARGIN_S = 1.2
HUNGRY_TICK_S = 0.25


@dataclass(frozen=True, slots=True)
class Timing:
    interval_s: float
    timeout_s: float


class Assignment(Protocol):
    """Decides which of its location's monitors a worker runs."""

    @property
    def owned(self) -> frozenset[int]: ...

    @property
    def renewal_failures(self) -> int:
        """Lease renewals that failed so far (the database was away)."""

    def problem(self) -> str | None:
        """Why the assignment keeps the worker from checking what it should (None: it does not)."""

    def set_monitors(self, monitors: Mapping[int, Timing]) -> None:
        """The monitors the location runs now (not paused)."""

    def may_run(self, monitor_id: int, until: float) -> bool:
        """Whether this worker may run a check of ``monitor_id`` that ends by ``until`` (epoch seconds)."""

    async def run(self, on_owned: OnOwned, next_due: NextDue | None = None) -> None:
        """Keep the assignment current until cancelled; ``on_owned`` hears every new owned set, ``next_due``
        says when a monitor's next slot is (to hand monitors over between two slots)."""

    async def release(self) -> None:
        """Give everything up (clean shutdown)."""


class SoloAssignment:
    """Standalone mode: one process owns every monitor of its location; no lease tables."""

    def __init__(self) -> None:
        self._owned: frozenset[int] = frozenset()

    @property
    def owned(self) -> frozenset[int]:
        return self._owned

    @property
    def renewal_failures(self) -> int:
        return 0

    def problem(self) -> str | None:
        return None

    def set_monitors(self, monitors: Mapping[int, Timing]) -> None:
        self._owned = frozenset(monitors)

    def may_run(self, monitor_id: int, until: float) -> bool:
        return monitor_id in self._owned

    async def run(self, on_owned: OnOwned, next_due: NextDue | None = None) -> None:
        await asyncio.Future()  # nothing to renew; runs until cancelled

    async def release(self) -> None:
        self._owned = frozenset()


def default_worker_id() -> str:
    host = socket.gethostname()[:40]
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def lease_ttl(timings: Collection[Timing], max_ttl_s: float = MAX_TTL_S) -> float:
    """1.5 x the shortest interval (capped), but long enough that the longest check fits in 3/4 of it."""
    if not timings:
        return max_ttl_s
    ttl = min(max_ttl_s, 1.5 * min(t.interval_s for t in timings))
    needed = (max(t.timeout_s for t in timings) + 0.25) * RENEWALS_PER_TTL / (RENEWALS_PER_TTL - 1)
    return max(ttl, needed)


class LeaseAssignment:
    """Cluster mode: share the location's monitors with the other live workers through leases."""

    def __init__(
        self,
        location: str,
        session_factory: SessionFactory,
        *,
        worker_id: str | None = None,
        ttl_s: float | None = None,
        max_ttl_s: float = MAX_TTL_S,
        outage_allowance_s: float = DEFAULT_OUTAGE_ALLOWANCE_S,
        health: DatabaseHealth | None = None,
        database_clock: Callable[[Session], datetime] = database_now,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if outage_allowance_s < 0:
            raise ValueError("the outage allowance cannot be negative")
        self.location = location
        self.worker_id = worker_id or default_worker_id()
        self.outage_allowance_s = outage_allowance_s
        self.health = health or DatabaseHealth()
        self._sessions = session_factory
        self._fixed_ttl = ttl_s
        self._max_ttl = max_ttl_s
        self._database_clock = database_clock
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._wanted: dict[int, Timing] = {}
        self._ensured: set[int] = set()  # lease rows known to exist
        self._owned: frozenset[int] = frozenset()
        self._valid_until = -math.inf  # every owned lease lasts until then (monotonic clock, conservative)
        self._to_release: set[int] = set()  # off the schedule, but a failed release left them ours
        self._poke = asyncio.Event()
        self._lock = asyncio.Lock()  # a tick (and its thread) finishes before the release starts
        self._on_owned: OnOwned | None = None
        self._next_due: NextDue = lambda monitor_id: None
        self._hungry = False  # short of its share while another worker holds more than its own
        self._stopped = False
        self.renewal_failures = 0  # ticks that failed (each is retried within about a second)
        self.lost = 0  # leases found taken by another worker (ours had lapsed)

    @property
    def owned(self) -> frozenset[int]:
        return self._owned

    @property
    def ttl_s(self) -> float:
        return self._fixed_ttl if self._fixed_ttl is not None else lease_ttl(list(self._wanted.values()), self._max_ttl)

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / RENEWALS_PER_TTL

    @property
    def valid_for_s(self) -> float:
        """How much longer the owned leases last, by this worker's conservative view (<= 0: lapsed)."""
        return self._valid_until - self._monotonic()

    @property
    def lapsed(self) -> bool:
        """Monitors are assigned to this worker but their leases ran out: their slots are skipped."""
        return bool(self._owned) and self.valid_for_s <= 0

    def problem(self) -> str | None:
        if self.lapsed:
            return f"leases lapsed: {len(self._owned)} monitor(s) not checked until a renewal succeeds"
        return None

    def set_monitors(self, monitors: Mapping[int, Timing]) -> None:
        self._wanted = dict(monitors)
        self._set_owned(self._owned & self._wanted.keys())  # gone or paused: stop at once
        self._poke.set()  # claim new ones now rather than at the next renewal

    def may_run(self, monitor_id: int, until: float) -> bool:
        # `until` is on the wall clock (slot times); the lease is on the monotonic one: compare durations.
        return monitor_id in self._owned and until - self._wall_clock() < self.valid_for_s

    async def run(self, on_owned: OnOwned, next_due: NextDue | None = None) -> None:
        self._on_owned = on_owned
        if next_due is not None:
            self._next_due = next_due
        failures = 0
        while not self._stopped:
            self._poke.clear()
            try:
                await self.tick()
            except Exception as error:  # the database is away: run what we hold while it lasts
                failures += 1
                self.renewal_failures += 1
                self.health.failed("lease renewal", error)
                # Soon, so the first tick after the database returns is at most about a second late;
                # jittered, so the workers of a location do not come back in step.
                pause = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures - 1)) * (0.5 + random.random())  # noqa: S311
            else:
                failures = 0
                pause = HUNGRY_TICK_S if self._hungry else self.renew_every_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._poke.wait()

    async def tick(self) -> None:
        """One round: heartbeat, renew, claim up to the fair share, release the excess."""
        async with self._lock:
            if not self._stopped:
                await self._tick()

    async def _tick(self) -> None:
        started = self._monotonic()  # before the database reads its now: our deadline passes first
        length_s = self.ttl_s + self.outage_allowance_s
        if self._to_release:
            await in_database_thread(retry_conflicts, partial(self._release, frozenset(self._to_release)))
            self._to_release.clear()
        wanted = frozenset(self._wanted)
        missing = wanted - self._ensured
        soon = self._due_soon()
        held, kept, self._hungry = await in_database_thread(
            retry_conflicts, partial(self._sync, wanted, missing, soon, length_s)
        )
        self.health.succeeded()
        self._ensured |= missing
        lost = (self._owned & wanted) - held
        if lost:
            self.lost += len(lost)
            log.warning("%d lease(s) of %s were taken by another worker after ours lapsed", len(lost), self.location)
        self._valid_until = started + length_s
        # The excess goes off the schedule before anyone else can take it (and what stopped being wanted
        # while the transaction ran goes with it, released at the next tick).
        self._set_owned(kept & self._wanted.keys())
        excess = held - kept
        if excess:
            self._to_release |= excess
            await in_database_thread(retry_conflicts, partial(self._release, frozenset(excess)))
            self._to_release -= excess

    def _due_soon(self) -> frozenset[int]:
        """Owned monitors whose next slot is too close to hand them over now."""
        now = self._wall_clock()
        soon = set()
        for monitor_id in self._owned:
            due, timing = self._next_due(monitor_id), self._wanted.get(monitor_id)
            if due is not None and timing is not None and due - now < min(HANDOVER_MARGIN_S, timing.interval_s / 2):
                soon.add(monitor_id)
        return frozenset(soon)

    def _sync(
        self, wanted: frozenset[int], missing: frozenset[int], soon: frozenset[int], length_s: float
    ) -> tuple[frozenset[int], frozenset[int], bool]:
        """In a thread, one transaction: returns the leases held afterwards, those to keep running, and
        whether this worker is short of its share while another holds more than its own."""
        with self._sessions() as session, session.begin():
            now = self._database_clock(session)  # no table read: on SQLite the write below comes first
            touch_worker(session, self.worker_id, self.location, now)
            prune_workers(session, self.location, now - max(_WORKER_ROW_KEEP, timedelta(seconds=10 * self.ttl_s)))
            if missing:
                ensure_leases(session, missing, self.location)
            seen_since = now - timedelta(seconds=self.ttl_s)
            live = max(1, live_workers(session, self.location, seen_since))
            share = math.ceil(len(wanted) / live)
            keep = held_leases(session, self.worker_id, self.location) & wanted
            if len(keep) > share:  # hand over the excess, but none whose slot is about to come
                keep -= set(sorted(keep - soon)[: len(keep) - share])
            want = share - len(keep)
            if want > 0:
                free = sorted(free_leases(session, self.location, now) & wanted - keep)
                # A random pick: workers claiming at the same moment mostly go for different rows.
                keep.update(random.sample(free, min(want, len(free))))
            if keep:
                take_leases(
                    session, self.worker_id, self.location, keep, now=now, until=now + timedelta(seconds=length_s)
                )
            held = frozenset(held_leases(session, self.worker_id, self.location))
            kept = held & keep
            # Only live workers hand over: one cut off from the database keeps its leases until they run out.
            others = lease_counts(session, self.location, now, seen_since)
            others.pop(self.worker_id, None)
            hungry = len(kept) < share and any(count > share for count in others.values())
        return held, kept, hungry

    def _release(self, monitor_ids: Collection[int] | None) -> None:
        with self._sessions() as session, session.begin():
            release_leases(session, self.worker_id, self.location, monitor_ids)
            if monitor_ids is None:
                forget_worker(session, self.worker_id)

    def _set_owned(self, owned: frozenset[int]) -> None:
        if owned == self._owned:
            return
        self._owned = owned
        if self._on_owned is not None:
            self._on_owned(owned)

    async def release(self) -> None:
        self._stopped = True
        self._poke.set()
        async with self._lock:
            self._set_owned(frozenset())
            self._valid_until = -math.inf
            try:
                await in_database_thread(retry_conflicts, partial(self._release, None))
            except Exception as error:  # they run out on their own
                log.warning("could not release the leases of %s: %s", self.worker_id, describe(error))
