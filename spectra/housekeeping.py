"""Rollups and retention of check results, run in the background of `spectra run` and `spectra alerter`.

Every minute the hourly and daily buckets of the last two hours are recomputed from raw results
(idempotent, so late results are picked up and two processes doing it at once do no harm); every
hour the retention policy prunes raw results and old rollups, the expired records of handled webhook
requests go, and the hourly jobs the process hands in run (trial reminders). Status pages and uptime
figures read the rollups, so without this they would have no history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from spectra.runtime.loop import run_until_stopped
from spectra.store import RetentionPolicy, rollup, utcnow
from spectra.store.engine import write_transaction
from spectra.store.webhook_requests import prune_webhook_requests

log = logging.getLogger(__name__)

ROLLUP_EVERY = timedelta(minutes=1)
ROLLUP_LOOKBACK = timedelta(hours=2)
PRUNE_EVERY = timedelta(hours=1)


class Housekeeping:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        retention: RetentionPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        prunes: Mapping[str, Callable[[Session, datetime], int]] | None = None,
        hourly: Mapping[str, Callable[[Session, datetime], int]] | None = None,
    ) -> None:
        """`prunes`: more expired rows to forget each hour, by what they are (sessions, throttles, ...);
        `hourly`: more work to do each hour, by what it does ("trial reminders queued"), each returning how
        much it did. Both from floors this module may not import (the process assembles them)."""
        self._sessions = session_factory
        self.retention = retention or RetentionPolicy()
        self._prunes = dict(prunes or {})
        self._hourly = dict(hourly or {})
        self._clock = clock
        self._last_prune: datetime | None = None
        self._stopping = asyncio.Event()

    def once(self) -> None:
        """One pass: roll up the recent past; prune and run the hourly jobs when an hour has passed since
        they last all succeeded (a failure makes the next pass, a minute later, run them again)."""
        now = self._clock()
        # Every part reads, then writes: on SQLite it would fail ("database is locked") whenever the
        # probe's writer committed in between, i.e. nearly always under load; so each holds the write lock.
        with write_transaction(self._sessions) as session:
            rollup(session, now - ROLLUP_LOOKBACK, now + timedelta(seconds=1))
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return
        with write_transaction(self._sessions) as session:
            counts = self.retention.apply(session, now)
            forgotten = prune_webhook_requests(session, now)
        if forgotten:
            log.info("retention: forgot %d expired webhook requests", forgotten)
        if counts.raw or counts.hourly or counts.daily:
            log.info(
                "retention: pruned %d raw results, %d hourly, %d daily rollups", counts.raw, counts.hourly, counts.daily
            )
        for what, prune in self._prunes.items():
            with write_transaction(self._sessions) as session:
                pruned = prune(session, now)
            if pruned:
                log.info("retention: forgot %d expired %s", pruned, what)
        for what, job in self._hourly.items():
            with write_transaction(self._sessions) as session:
                done = job(session, now)
            if done:
                log.info("housekeeping: %s: %d", what, done)
        self._last_prune = now

    async def run(self) -> None:
        # The usual failure is a database that is away: one line, and the next pass tries again.
        await run_until_stopped(
            self._stopping,
            lambda: asyncio.to_thread(self.once),
            every_s=ROLLUP_EVERY.total_seconds(),
            what="housekeeping",
            log=log,
            traceback=False,
        )

    async def stop(self) -> None:
        self._stopping.set()
