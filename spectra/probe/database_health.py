"""How a worker's round trips to the database go: one-line logs during an outage, readiness, metrics.

The result writer, the lease renewal and the monitor reload all talk to the database. When it is away
they all fail, over and over: logging each failure buries the log in thousands of lines, logging none
makes an outage (or a frozen database, where nothing fails, it just never answers) silent. Every path
reports here instead. The first failure of an outage is logged with its reason, then at most one line
every ``summary_every_s`` with the count, then one line when the database answers again.

Readiness (:meth:`DatabaseHealth.problem`) says "not ready" while the failures have gone on for
``unreachable_after_s``, or when no round trip succeeded for ``stalled_after_s`` (a frozen database:
the calls hang until the driver's timeout). Checks go on meanwhile while the worker's leases last
(``leases.py``); readiness is what tells an operator the results are only buffered.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger("spectra.probe.database")

SUMMARY_EVERY_S = 30.0
UNREACHABLE_AFTER_S = 5.0  # failing this long: not ready (a single lost round trip is retried at once)
# No round trip succeeded this long: not ready. Lease renewals (at most every 7.5 s) and the reload's
# fingerprint read (every 5 s) keep a healthy worker well inside it.
STALLED_AFTER_S = 20.0


class DatabaseHealth:
    def __init__(
        self,
        *,
        summary_every_s: float = SUMMARY_EVERY_S,
        unreachable_after_s: float = UNREACHABLE_AFTER_S,
        stalled_after_s: float = STALLED_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.summary_every_s = summary_every_s
        self.unreachable_after_s = unreachable_after_s
        self.stalled_after_s = stalled_after_s
        self._clock = clock
        self._last_success = clock()  # starting counts as a success: the schema check just ran
        self._failing_since: float | None = None
        self._last_summary = 0.0
        self._failures: Counter[str] = Counter()  # failed round trips of this outage, by path
        self._last_error = ""
        self.failures_total = 0

    def succeeded(self) -> None:
        """A round trip worked; ends an outage (logged once, with its length and count)."""
        now = self._clock()
        self._last_success = now
        if self._failing_since is None:
            return
        log.info(
            "database reachable again after %.1fs (%d failed attempt(s): %s)",
            now - self._failing_since,
            sum(self._failures.values()),
            _by_path(self._failures),
        )
        self._failing_since = None
        self._failures.clear()

    def failed(self, path: str, error: BaseException) -> None:
        """A round trip of ``path`` (e.g. "lease renewal") failed with ``error``."""
        now = self._clock()
        self.failures_total += 1
        self._failures[path] += 1
        self._last_error = describe(error)
        if self._failing_since is None:
            self._failing_since = self._last_summary = now
            log.warning("database unavailable (%s): %s; checks go on, results are buffered", path, self._last_error)
            return
        if now - self._last_summary >= self.summary_every_s:
            self._last_summary = now
            log.warning(
                "database still unavailable after %.0fs: %d failed attempt(s) (%s); last: %s",
                now - self._failing_since,
                sum(self._failures.values()),
                _by_path(self._failures),
                self._last_error,
            )

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    @property
    def unreachable_s(self) -> float:
        """How long the current run of failures has lasted (0 while the database answers)."""
        return 0.0 if self._failing_since is None else self._clock() - self._failing_since

    @property
    def last_success_age_s(self) -> float:
        return self._clock() - self._last_success

    def problem(self) -> str | None:
        """Why the worker is not ready as far as its database goes (None: it answers)."""
        unreachable = self.unreachable_s
        if unreachable >= self.unreachable_after_s:
            return f"database unreachable for {unreachable:.0f}s ({self._last_error}); results are buffered"
        age = self.last_success_age_s
        if age >= self.stalled_after_s:
            return f"no answer from the database for {age:.0f}s (stalled?); results are buffered"
        return None


def _by_path(failures: Counter[str]) -> str:
    return ", ".join(f"{path} {count}" for path, count in sorted(failures.items()))


def describe(error: BaseException) -> str:
    """One line about a (database) error, without SQL or parameters."""
    original = getattr(error, "orig", None) or error
    text = str(original).splitlines()[0] if str(original) else ""
    return f"{type(original).__name__}: {text}"[:300]
