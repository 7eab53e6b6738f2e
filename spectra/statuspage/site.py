"""The status pages of a process: the snapshot cache, the routes, and the page-events loop.

:class:`StatusPages` owns one :class:`SnapshotCache` and serves it (pages, JSON, feeds, badges, the
subscription links). Its :meth:`run` loop, every ``interval_s``:

- rebuilds the snapshots off the event loop (so a request never waits for the database: the cache's
  ttl is longer than the loop's period);
- with ``events=True`` (``spectra run``, ``spectra alerter``) and while ``leading()`` says this process
  is the active alerter: opens and resolves automatic page incidents (:func:`sync_auto_incidents`),
  queues the subscriber mails for them and for maintenance that just started
  (:func:`notify_subscribers`) in the same transaction, and wakes the sender.

``spectra web`` runs it with ``events=False``: it serves pages and never writes incidents.

A change a person makes in this process (the console, its JSON API) does not wait for a pass: it takes
the process's :func:`serving` pages, queues its subscriber mails in its own transaction
(:meth:`StatusPages.publish`, what a pass does with its events) and, once committed, calls
:meth:`StatusPages.changed`: the snapshots are rebuilt at the next read and the sender is woken. Other
replicas of `spectra web` see it when their snapshots are next rebuilt (every ``interval_s``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute

from spectra.runtime.loop import run_until_stopped
from spectra.runtime.public_url import configured_public_url
from spectra.statuspage.incidents import PageEvent, sync_auto_incidents
from spectra.statuspage.model import PageSnapshot
from spectra.statuspage.notices import PageNotice, maintenance_notices, notify_subscribers
from spectra.statuspage.pages import page_routes
from spectra.statuspage.snapshots import SnapshotCache, build_all
from spectra.statuspage.subscription_routes import subscription_routes
from spectra.store.clock import database_now
from spectra.store.engine import retry_conflicts
from spectra.tokens import Tokens

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0
DEFAULT_TTL_S = 5.0

_serving: list[weakref.ref[StatusPages]] = []  # the last made, by a weak reference


def serving() -> StatusPages | None:
    """The status pages this process serves (the last made), for changes made elsewhere in it."""
    return _serving[0]() if _serving else None


class StatusPages:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        tokens: Tokens,
        public_url: str,
        wake: Callable[[], None] | None = None,
        events: bool = True,
        leading: Callable[[], bool] | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._sessions = session_factory
        self.tokens = tokens
        self.public_url = public_url.rstrip("/")
        self._wake = wake
        self._events = events
        self._leading = leading
        self.interval_s = interval_s
        self._clock = clock
        self.cache = SnapshotCache(session_factory, ttl_s=ttl_s, clock=clock)
        self._stopping = asyncio.Event()
        _serving[:] = [weakref.ref(self)]

    def publish(self, session: Session, events: Sequence[PageEvent], now: datetime) -> int:
        """Queue the subscriber mails of `events` (a person's change) in the caller's transaction, from fresh
        snapshots, as a pass does with its own events; how many."""
        if not events:
            return 0
        return notify_subscribers(session, events, build_all(session, now), self.tokens, self.public_url)

    def changed(self) -> None:
        """After a change committed: rebuild the snapshots at the next read, and wake the sender."""
        self.cache.invalidate()
        if self._wake is not None:
            self._wake()

    def routes(self) -> list[BaseRoute]:
        """Page routes (``/s/{slug}``, ``/`` on a page's hostnames, JSON, feeds, badges) and subscription links."""
        # Feeds' links: from the configured public URL, never from a Host header when one is configured.
        feeds_base = self.public_url if configured_public_url() is not None else None
        routes: list[BaseRoute] = list(page_routes(self.cache, public_url=feeds_base))
        routes += subscription_routes(self.cache, self._sessions, self.tokens, self.public_url, self._wake)
        return routes

    async def run(self) -> None:
        """Loop until :meth:`stop`; a failed pass is logged and the next one tries again."""
        self._stopping.clear()
        await run_until_stopped(self._stopping, self.tick, every_s=self.interval_s, what="status pages pass", log=log)

    async def stop(self) -> None:
        self._stopping.set()

    async def tick(self) -> int:
        """One pass; returns how many subscriber mails it queued."""
        queued = await asyncio.to_thread(self._pass)
        if queued and self._wake is not None:
            self._wake()
        return queued

    def _pass(self) -> int:
        self.cache.refresh()
        if not self._events or (self._leading is not None and not self._leading()):
            return 0
        events: list[PageEvent] = []

        def write() -> int:
            with self._sessions.begin() as session:
                now = self._clock() if self._clock is not None else database_now(session)
                events[:] = sync_auto_incidents(session, now)
                # Fresh snapshots when incidents changed (a page's title, slug, subscription switch).
                snapshots: dict[str, PageSnapshot] = build_all(session, now) if events else self.cache.all()
                notices: list[PageNotice | PageEvent] = [*events, *maintenance_notices(snapshots, now)]
                return notify_subscribers(session, notices, snapshots, self.tokens, self.public_url)

        queued = retry_conflicts(write)
        if events:
            for event in events:
                log.info(
                    "status page %s/%s: incident %s %s", event.page_namespace, event.page_name, event.kind, event.title
                )
            self.cache.refresh()
        return queued
