"""Which monitors this worker runs: all of them (standalone), or a fair share of its location's (leases).

Workers of one location share its monitors through ``monitor_leases``. Every tick (a quarter of the
lease TTL) a worker, in one transaction: heartbeats into ``probe_workers``, inserts missing lease rows,
renews all its leases with one UPDATE, counts the live workers, and claims free leases up to its fair
share ``ceil(monitors / live workers)`` with a conditional UPDATE (free: no worker, or run out), so two
workers never win the same lease. Leases beyond the share (a new worker joined) are dropped from the
schedule first and released afterwards. A slot only runs while the lease lasts past its due time plus
the check's timeout, so a monitor whose lease moves is never checked twice in one slot.

A worker that dies stops renewing: its leases run out after the TTL and the others take them at
their next tick. The TTL defaults to 1.5 x the shortest interval (at most 30 s), so monitors move
within TTL + TTL/4 <= two intervals; it is raised when a long timeout needs it.
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
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from spectra.store.worker_leases import (
    claim_leases,
    ensure_leases,
    forget_worker,
    free_leases,
    held_leases,
    live_workers,
    prune_workers,
    release_leases,
    renew_leases,
    touch_worker,
)

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]
OnOwned = Callable[[frozenset[int]], None]

MAX_TTL_S = 30.0
RENEWALS_PER_TTL = 4  # renew every TTL/4: the lease always lasts >= 3/4 TTL past now
_WORKER_ROW_KEEP = timedelta(hours=1)  # rows of workers gone this long are deleted


@dataclass(frozen=True)
class Timing:
    interval_s: float
    timeout_s: float


class Assignment(Protocol):
    """Decides which of its location's monitors a worker runs."""

    @property
    def owned(self) -> frozenset[int]: ...

    def set_monitors(self, monitors: Mapping[int, Timing]) -> None:
        """The monitors the location runs now (not paused)."""

    def may_run(self, monitor_id: int, until: float) -> bool:
        """Whether this worker may run a check of ``monitor_id`` that ends by ``until`` (epoch seconds)."""

    async def run(self, on_owned: OnOwned) -> None:
        """Keep the assignment current until cancelled; ``on_owned`` hears every new owned set."""

    async def release(self) -> None:
        """Give everything up (clean shutdown)."""


class SoloAssignment:
    """Standalone mode: one process owns every monitor of its location; no lease tables."""

    def __init__(self) -> None:
        self._owned: frozenset[int] = frozenset()

    @property
    def owned(self) -> frozenset[int]:
        return self._owned

    def set_monitors(self, monitors: Mapping[int, Timing]) -> None:
        self._owned = frozenset(monitors)

    def may_run(self, monitor_id: int, until: float) -> bool:
        return monitor_id in self._owned

    async def run(self, on_owned: OnOwned) -> None:
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.location = location
        self.worker_id = worker_id or default_worker_id()
        self._sessions = session_factory
        self._fixed_ttl = ttl_s
        self._max_ttl = max_ttl_s
        self._clock = clock
        self._wanted: dict[int, Timing] = {}
        self._ensured: set[int] = set()  # lease rows known to exist
        self._owned: frozenset[int] = frozenset()
        self._until = 0.0  # every owned lease lasts until then (epoch seconds)
        self._poke = asyncio.Event()
        self._lock = asyncio.Lock()  # a tick (and its thread) finishes before the release starts
        self._on_owned: OnOwned | None = None
        self._stopped = False

    @property
    def owned(self) -> frozenset[int]:
        return self._owned

    @property
    def ttl_s(self) -> float:
        return self._fixed_ttl if self._fixed_ttl is not None else lease_ttl(list(self._wanted.values()), self._max_ttl)

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / RENEWALS_PER_TTL

    def set_monitors(self, monitors: Mapping[int, Timing]) -> None:
        self._wanted = dict(monitors)
        self._set_owned(self._owned & self._wanted.keys())  # gone or paused: stop at once
        self._poke.set()  # claim new ones now rather than at the next renewal

    def may_run(self, monitor_id: int, until: float) -> bool:
        return monitor_id in self._owned and self._until > until

    async def run(self, on_owned: OnOwned) -> None:
        self._on_owned = on_owned
        while not self._stopped:
            self._poke.clear()
            try:
                await self.tick()
            except Exception as error:  # the database is down: leases run out, checks pause
                log.warning("lease renewal for %s failed: %s: %s", self.location, type(error).__name__, error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.renew_every_s):
                    await self._poke.wait()

    async def tick(self) -> None:
        """One round: heartbeat, renew, claim up to the fair share, release the excess."""
        async with self._lock:
            if not self._stopped:
                await self._tick()

    async def _tick(self) -> None:
        now = self._clock()
        until = now + self.ttl_s
        wanted = frozenset(self._wanted)
        missing = wanted - self._ensured
        held, share = await asyncio.to_thread(self._sync, now, until, wanted, missing)
        self._ensured |= missing
        self._until = until
        keep = held & wanted
        excess = held - wanted
        if len(keep) > share:
            dropped = frozenset(sorted(keep)[share:])
            keep -= dropped
            excess |= dropped
        self._set_owned(keep)  # off the schedule before anyone else can take them
        if excess:
            await asyncio.to_thread(self._release, excess)

    def _sync(
        self, now: float, until: float, wanted: frozenset[int], missing: frozenset[int]
    ) -> tuple[frozenset[int], int]:
        """In a thread, one transaction: returns the leases held afterwards and the fair share."""
        now_dt, until_dt = _dt(now), _dt(until)
        with self._sessions() as session, session.begin():
            # A write first: on SQLite it takes the lock before the reads below.
            touch_worker(session, self.worker_id, self.location, now_dt)
            if missing:
                ensure_leases(session, missing, self.location)
            renew_leases(session, self.worker_id, self.location, until_dt)
            live = max(1, live_workers(session, self.location, _dt(now - self.ttl_s)))
            share = math.ceil(len(wanted) / live)
            held = held_leases(session, self.worker_id, self.location)
            want = share - len(held & wanted)
            if want > 0:
                free = sorted(free_leases(session, self.location, now_dt) & wanted)
                # A random pick: workers claiming at the same moment mostly go for different rows.
                picked = random.sample(free, min(want, len(free)))
                if picked and claim_leases(session, self.worker_id, self.location, picked, now=now_dt, until=until_dt):
                    held = held_leases(session, self.worker_id, self.location)
            prune_workers(session, self.location, now_dt - max(_WORKER_ROW_KEEP, timedelta(seconds=10 * self.ttl_s)))
        return frozenset(held), share

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
            self._until = 0.0
            try:
                await asyncio.to_thread(self._release, None)
            except Exception as error:  # they run out on their own
                log.warning("could not release the leases of %s: %s: %s", self.worker_id, type(error).__name__, error)


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
