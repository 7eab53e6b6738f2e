"""Keeps every object's `.status` current from the store, without flooding the API server.

Each cycle reads the store once (`statuses.collect`, a fixed number of queries whatever the object
count) and patches only objects whose facts changed: major facts (a monitor's state, an open incident,
who is on call, ...) at the next cycle, minor ones (last check time, latency, uptime) at most every
`refreshSeconds` and within half of a cycle's patch budget. Patches are paced by a token bucket
(`maxPatchesPerSecond`), major changes first.
A Monitor whose state changes also gets an Event (Warning MonitorDown, Normal MonitorUp, ...).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from spectra.api import API_VERSION
from spectra.operator.kube import Kube
from spectra.operator.settings import StatusSettings
from spectra.operator.statuses import UPTIME_KEYS, Facts, Key, collect
from spectra.runtime.loop import run_until_stopped
from spectra.store.clock import database_now

log = logging.getLogger("spectra.operator")

UPTIME_EVERY_S = 60.0  # uptime comes from rollups that move once a minute; computing it is half a pass

# Reasons of Monitor Events, by new state.
_EVENTS = {
    "down": ("Warning", "MonitorDown"),
    "degraded": ("Warning", "MonitorDegraded"),
    "up": ("Normal", "MonitorUp"),
    "paused": ("Normal", "MonitorPaused"),
    "maintenance": ("Normal", "MonitorInMaintenance"),
}


@dataclass
class _Published:
    major: dict[str, Any]
    minor: dict[str, Any]
    at: float  # monotonic time of the patch


class TokenBucket:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.clock = clock
        self.last = clock()

    async def take(self) -> None:
        while True:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class StatusPublisher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        kube: Kube,
        settings: StatusSettings,
        *,
        public_url: str | None = None,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.kube = kube
        self.settings = settings
        self.public_url = public_url
        self.clock = clock
        self.monotonic = monotonic
        self.bucket = TokenBucket(settings.max_patches_per_second)
        self._published: dict[Key, _Published] = {}
        self._uptime: dict[Key, dict[str, Any]] = {}
        self._uptime_at: float | None = None
        self.patches = 0  # status patches sent since start (for /metrics and the bench)
        self.events = 0

    def seed(self, objects: Sequence[Mapping[str, Any]]) -> None:
        """Start from what the cluster shows, so a restart does not re-patch every object."""
        for body in objects:
            kind = str(body.get("kind"))
            meta = body.get("metadata") or {}
            status = body.get("status") or {}
            key = (kind, str(meta.get("namespace") or ""), str(meta.get("name")))
            self._published[key] = _Published(major=dict(status), minor=dict(status), at=self.monotonic())

    async def cycle(self) -> int:
        """Read the store once and patch what changed; returns the number of patches sent."""
        mono = self.monotonic()
        with_uptime = self._uptime_at is None or mono - self._uptime_at >= UPTIME_EVERY_S
        facts = await asyncio.to_thread(self._collect, with_uptime)
        if with_uptime:
            self._uptime_at = mono
            self._uptime = {
                key: {name: fact.minor[name] for name in UPTIME_KEYS if name in fact.minor}
                for key, fact in facts.items()
            }
        else:  # the last computed uptime stands in until the next computation
            facts = {key: Facts(fact.major, {**fact.minor, **self._uptime.get(key, {})}) for key, fact in facts.items()}
        for gone in set(self._published) - set(facts):
            del self._published[gone]
        refresh = self.settings.refresh_seconds
        urgent: list[tuple[Key, Facts]] = []
        lazy: list[tuple[Key, Facts]] = []
        for key, fact in facts.items():
            last = self._published.get(key)
            if last is None or _differs(fact.major, last.major):
                urgent.append((key, fact))
            elif _differs(fact.minor, last.minor) and mono - last.at >= refresh:
                lazy.append((key, fact))
        # Refreshes get at most half of one interval's patch budget, the stalest first, so a cycle ends
        # in time and state changes never queue behind a wave of refreshes.
        budget = max(1, int(self.settings.max_patches_per_second * self.settings.interval_seconds / 2))
        lazy.sort(key=lambda item: self._published[item[0]].at)
        sent = 0
        for key, fact in urgent + lazy[:budget]:
            await self.bucket.take()
            if await self._patch(key, fact):
                sent += 1
        return sent

    async def run(
        self,
        stop: asyncio.Event,
        is_leader: Callable[[], bool],
        cluster_objects: Callable[[], Sequence[Mapping[str, Any]]],
    ) -> None:
        """A cycle every interval while this replica leads, until `stop`. On taking the lead it first seeds
        from `cluster_objects()` (what the cluster shows), so a new leader does not re-patch everything."""
        seeded = False

        async def one_cycle() -> None:
            nonlocal seeded
            if not await asyncio.to_thread(is_leader):
                seeded = False  # another replica publishes meanwhile: start from the cluster again
                return
            if not seeded:
                self.seed(await asyncio.to_thread(cluster_objects))
                seeded = True
            await self.cycle()

        await run_until_stopped(stop, one_cycle, every_s=self.settings.interval_seconds, what="status pass", log=log)

    def _collect(self, uptime: bool = True) -> dict[Key, Facts]:
        with self.sessions() as session:
            # The database's clock by default: "still reporting" compares with times the probes stored.
            now = self.clock() if self.clock is not None else database_now(session)
            return collect(session, now, public_url=self.public_url, source="cluster", uptime=uptime)

    async def _patch(self, key: Key, fact: Facts) -> bool:
        kind, namespace, name = key
        previous = self._published.get(key)
        found = await asyncio.to_thread(self.kube.patch_status, kind, namespace, name, fact.merged())
        if not found:
            self._published.pop(key, None)
            return False
        self.patches += 1
        self._published[key] = _Published(major=dict(fact.major), minor=dict(fact.minor), at=self.monotonic())
        if kind == "Monitor" and previous is not None:
            old, new = previous.major.get("state"), fact.major.get("state")
            if new != old and new in _EVENTS and old is not None:
                type_, reason = _EVENTS[str(new)]
                involved = {"apiVersion": API_VERSION, "kind": kind, "namespace": namespace, "name": name}
                message = f"Monitor {namespace}/{name} is {new} (was {old})"
                await asyncio.to_thread(self.kube.event, involved, type_=type_, reason=reason, message=message)
                self.events += 1
        return True


def _differs(new: Mapping[str, Any], published: Mapping[str, Any]) -> bool:
    """Whether any fact in `new` differs from what was published (other status keys are not ours)."""
    return any(published.get(key) != value for key, value in new.items())
