"""One hub per web process: reads monitor state changes from the store and fans them out to the
overviews connected to `/console/events`.

Every `interval_s` (one second) the hub asks the store one cheap question for every client at once:
which `monitor_states` rows changed since a little before the newest change it has seen (`changed_at`
is the probe's time of the check, and results are stored a moment later, so it looks back `LOOKBACK`
and keeps only rows whose state differs from what it knows). For the monitors that changed it reads
their overview lines and keeps the combined state of every monitor, so the counts per state of any set
of namespaces are known without another query.

Each subscriber holds its visible namespaces (the policy's `visible_namespaces`, fixed at connection)
and a bounded queue: a message is rendered once per distinct set of namespaces, and a client whose
queue is full is dropped (its stream ends; the browser reconnects and reloads what it shows), never
making the others wait. When the hub stops, every stream ends.

`spectra run` and `spectra web` run `MonitorHub.run` beside the server; a hub nobody ran starts itself
on the first subscriber (tests, a bare app).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import policy

from . import service
from .service import MonitorLine

log = logging.getLogger("spectra.console")

LOOKBACK: Final = timedelta(minutes=2)
QUEUE_SIZE: Final = 32

Render = Callable[[Sequence[MonitorLine], Mapping[str, int]], str]


@dataclass(eq=False)
class Subscriber:
    namespaces: policy.Namespaces
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False  # too slow: its queue was full


@dataclass(frozen=True)
class _Known:
    namespace: str
    state: str


class MonitorHub:
    def __init__(self, factory: sessionmaker[Session], *, interval_s: float = 1.0, autostart: bool = True) -> None:
        self.factory = factory
        self.interval_s = interval_s
        self.autostart = autostart  # start polling on the first subscriber when nobody runs `run`
        self.render: Render | None = None  # set by the views: how a change becomes the message's HTML
        self.subscribers: set[Subscriber] = set()
        self._locations: dict[tuple[int, str], tuple[str, datetime]] = {}
        self._monitors: dict[int, _Known] = {}
        self._watermark: datetime | None = None
        self._loaded = False
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # clients dropped for being slow, since the start

    @property
    def ready(self) -> bool:
        """Whether the hub knows the store's states (changes from now on reach subscribers)."""
        return self._loaded

    # --- subscribers ------------------------------------------------------------------------------

    def subscribe(self, namespaces: policy.Namespaces) -> Subscriber:
        if self.autostart and not self._running and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="console-events")
        subscriber = Subscriber(namespaces)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def counts(self, namespaces: policy.Namespaces) -> dict[str, int]:
        counts = dict.fromkeys(service.STATES, 0)
        for known in self._monitors.values():
            if known.namespace in namespaces:
                counts[known.state] = counts.get(known.state, 0) + 1
        return counts

    # --- the loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll and fan out until cancelled; then every stream ends."""
        self._running = True
        try:
            while True:
                try:
                    await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a database hiccup must not end the live updates for good
                    log.exception("console events: reading state changes failed; trying again")
                await asyncio.sleep(self.interval_s)
        finally:
            self._running = False
            for subscriber in list(self.subscribers):
                self._close(subscriber)
            self.subscribers.clear()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def tick(self) -> None:
        """One poll: read what changed, tell each subscriber what it may see of it."""
        changed = await asyncio.to_thread(self._read)
        if changed:
            self.publish(changed)

    def _read(self) -> list[MonitorLine]:
        with self.factory() as session:
            if not self._loaded:
                self._load(session)
                return []
            if self._watermark is None:
                rows = service.changes_since(session, None)
            else:
                rows = service.changes_since(session, self._watermark - LOOKBACK)
            moved: set[int] = set()
            for row in rows:
                key = (row.monitor_id, row.location)
                if self._locations.get(key) != (row.state, row.changed_at):
                    self._locations[key] = (row.state, row.changed_at)
                    moved.add(row.monitor_id)
                if self._watermark is None or row.changed_at > self._watermark:
                    self._watermark = row.changed_at
            if not moved:
                return []
            lines = service.lines_by_id(session, moved)
        for line in lines:
            self._monitors[line.id] = _Known(line.namespace, line.state)
        return lines

    def _load(self, session: Session) -> None:
        for item in service.summaries(session):
            self._monitors[item.id] = _Known(item.namespace, item.state)
        for row in service.changes_since(session, None):
            self._locations[(row.monitor_id, row.location)] = (row.state, row.changed_at)
            if self._watermark is None or row.changed_at > self._watermark:
                self._watermark = row.changed_at
        self._loaded = True

    def publish(self, lines: Sequence[MonitorLine]) -> None:
        """Queue each subscriber the message of the `lines` it may see (rendered once per namespace set)."""
        render = self.render
        if render is None:
            return
        messages: dict[object, str | None] = {}
        for subscriber in list(self.subscribers):
            key = subscriber.namespaces
            if key not in messages:
                mine = [line for line in lines if line.namespace in key]
                messages[key] = render(mine, self.counts(key)) if mine else None
            message = messages[key]
            if message is None:
                continue
            try:
                subscriber.queue.put_nowait(message)
            except asyncio.QueueFull:
                subscriber.dropped = True
                self.dropped += 1
                self.subscribers.discard(subscriber)
                log.info("console events: a client too slow to read its updates was dropped")

    def _close(self, subscriber: Subscriber) -> None:
        try:
            subscriber.queue.put_nowait(None)
        except asyncio.QueueFull:
            subscriber.dropped = True
