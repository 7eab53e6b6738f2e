"""One hub per web process: reads monitor state changes from the store and fans them out to the
overviews connected to `/console/events`.

Every `interval_s` (half a second, so that a change reaches everyone within a second wherever it falls in
the poll) the hub asks the store one cheap question for every client at once: which `monitor_states` rows
changed state in a write stored since its previous poll (`state_stored_at`, the database's time of the
write that changed the state, less `STORED_SLACK` for a write still committing), and keeps only rows
whose state differs from what it knows. Rows re-stored with the same state (every check) are not read,
and the bound moves with the database's clock, whatever the probes' clocks say: a poll costs what changed
in the last few seconds, however many monitors there are or changed at once a while ago. A location that
went silent (judged stale, no write at all) is found by the full read every `FULL_REFRESH_S`. For the
monitors that changed it reads their overview lines and keeps the combined state of every monitor, so the
counts per state of any set of namespaces are known without another query.

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
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import policy
from spectra.store.clock import database_now

from . import service
from .service import MonitorLine

log = logging.getLogger("spectra.console")

STORED_SLACK: Final = timedelta(seconds=5)  # a write's database time may be this much before its commit
FULL_REFRESH_S: Final = 30.0  # every monitor re-read: locations that went silent (judged stale)
CONFIG_CHECK_S: Final = 5.0  # and as soon as monitors were added, removed, edited or paused
INTERVAL_S: Final = 0.5  # a change reaches every client within a second, wherever it falls in the poll
QUEUE_SIZE: Final = 32

Render = Callable[[Sequence[MonitorLine], Mapping[str, int]], str]


@dataclass(eq=False)
class Subscriber:
    namespaces: policy.Namespaces
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False  # too slow: its queue was full


class MonitorHub:
    def __init__(
        self, factory: sessionmaker[Session], *, interval_s: float = INTERVAL_S, autostart: bool = True
    ) -> None:
        self.factory = factory
        self.interval_s = interval_s
        self.autostart = autostart  # start polling on the first subscriber when nobody runs `run`
        self.render: Render | None = None  # set by the views: how a change becomes the message's HTML
        self.subscribers: set[Subscriber] = set()
        self._locations: dict[tuple[int, str], tuple[str, datetime]] = {}
        self._all: dict[int, service.Summary] = {}  # replaced whole, never changed in place (read by pages)
        self._refreshed = 0.0  # time.monotonic() of the last full read
        self._checked = 0.0  # ... and of the last look at the configuration's fingerprint
        self._fingerprint: tuple[object, ...] = ()
        self._polled: datetime | None = None  # the database's time at the start of the last poll
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
        for known in self._all.values():
            if known.namespace in namespaces:
                counts[known.state] = counts.get(known.state, 0) + 1
        return counts

    def snapshot(self, namespaces: policy.Namespaces) -> list[service.Summary] | None:
        """Every monitor of `namespaces` as the hub knows it (current within a poll, silent locations within
        FULL_REFRESH_S); None while the hub does not run (the overview then counts in SQL)."""
        if not self._loaded or time.monotonic() - self._refreshed > 3 * FULL_REFRESH_S:
            return None
        return [item for item in self._all.values() if item.namespace in namespaces]

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
            polled, self._polled = self._polled, database_now(session)
            rows = service.changes_since(session, None if polled is None else polled - STORED_SLACK)
            moved: set[int] = set()
            for row in rows:
                key = (row.monitor_id, row.location)
                if self._locations.get(key) != (row.state, row.changed_at):
                    self._locations[key] = (row.state, row.changed_at)
                    moved.add(row.monitor_id)
            if self._refresh_due(session):
                before = self._all
                self._refresh(session)
                moved.update(
                    i for i, item in self._all.items() if (old := before.get(i)) is None or old.state != item.state
                )
            if not moved:
                return []
            lines = service.lines_by_id(session, moved)
        updated = dict(self._all)
        for line in lines:
            namespace, kind = sys.intern(line.namespace), sys.intern(line.type)  # one copy each, as in summaries
            updated[line.id] = service.Summary(
                line.id, namespace, line.name, kind, line.target, line.state, line.labels
            )
        self._all = updated
        return lines

    def _refresh_due(self, session: Session) -> bool:
        """A full read costs tens of milliseconds at 10,000 monitors (every page served meanwhile waits):
        only every FULL_REFRESH_S, or when the monitors' configuration changed (checked every
        CONFIG_CHECK_S with one cheap query)."""
        elapsed = time.monotonic()
        if elapsed - self._refreshed >= FULL_REFRESH_S:
            return True
        if elapsed - self._checked < CONFIG_CHECK_S:
            return False
        self._checked = elapsed
        return service.config_fingerprint(session) != self._fingerprint

    def _refresh(self, session: Session) -> None:
        self._fingerprint = service.config_fingerprint(session)
        # Keep the objects of monitors whose summary did not change: the read's copies then die young,
        # and the collector's full passes (tens of milliseconds at this size, stalling every request)
        # are not set off by 10,000 fresh long-lived objects each time.
        before = self._all
        self._all = {
            item.id: kept if (kept := before.get(item.id)) == item else item for item in service.summaries(session)
        }
        self._refreshed = self._checked = time.monotonic()

    def _load(self, session: Session) -> None:
        self._polled = database_now(session)
        self._refresh(session)
        for row in service.changes_since(session):
            self._locations[(row.monitor_id, row.location)] = (row.state, row.changed_at)
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
