"""The "run until stopped" loop of every periodic component: a pass, a pause, again, until told to stop.

A failed pass is logged and the next one tries again (a database that is away for a minute must not end
a loop for good); the pause ends early when the stop event is set, so components stop promptly.

Failures are reported by `FailureLog`: the first failure of a streak is logged (with its traceback when it
is not a database or network error, which are expected in operation and say all in one line), the same
failure again at most once per `repeat_every_s` with a count, and the recovery once. A two-minute database
outage is a handful of lines per loop, not thousands of tracebacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from sqlalchemy.exc import DBAPIError

REPEAT_EVERY_S: Final = 30.0
# Failures of the environment, not of our code: one line says it all.
EXPECTED_ERRORS: Final = (DBAPIError, OSError, TimeoutError)


class FailureLog:
    """Rate-limited reporting of one loop's failures (see the module docstring)."""

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        *,
        traceback: bool = True,
        repeat_every_s: float = REPEAT_EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self._log = log
        self._traceback = traceback
        self._repeat_every_s = repeat_every_s
        self._monotonic = monotonic
        self.streak = 0  # failures since the last success
        self.failing_since: float | None = None
        self._last_logged = 0.0
        self._unlogged = 0

    @property
    def failing_for_s(self) -> float:
        """How long the current streak of failures has lasted (0 when the last pass succeeded)."""
        return 0.0 if self.failing_since is None else self._monotonic() - self.failing_since

    def failed(self, error: BaseException) -> None:
        now = self._monotonic()
        self.streak += 1
        if self.failing_since is None:
            self.failing_since = now
        elif now - self._last_logged < self._repeat_every_s:
            self._unlogged += 1
            return
        self._last_logged = now
        summary = _one_line(error)
        if self.streak == 1:
            if self._traceback and not isinstance(error, EXPECTED_ERRORS):
                self._log.error("%s failed; retrying: %s", self.what, summary, exc_info=error)
            else:
                self._log.warning("%s failed: %s", self.what, summary)
        else:
            self._log.warning(
                "%s still failing after %.0f s (%d failures, %d not logged): %s",
                self.what,
                now - self.failing_since,
                self.streak,
                self._unlogged,
                summary,
            )
        self._unlogged = 0

    def succeeded(self) -> None:
        if self.failing_since is not None:
            self._log.warning(
                "%s recovered after %.0f s (%d failures)",
                self.what,
                self._monotonic() - self.failing_since,
                self.streak,
            )
        self.streak = 0
        self.failing_since = None
        self._unlogged = 0


def _one_line(error: BaseException) -> str:
    """The error's type and first line; DBAPI errors without the SQL statement and parameters."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        text = f"{type(error.orig).__name__}: {error.orig}"
    else:
        text = f"{type(error).__name__}: {error}"
    return text.splitlines()[0][:500] if text else type(error).__name__


async def run_until_stopped(
    stopping: asyncio.Event,
    one_pass: Callable[[], Awaitable[object]],
    *,
    every_s: float,
    what: str,
    log: logging.Logger,
    traceback: bool = True,
    failures: FailureLog | None = None,
) -> None:
    """Await `one_pass()` every `every_s` seconds until `stopping` is set.

    A pass that raises is reported through `failures` (made here from `what`, `log` and `traceback` when
    not given; pass one to read its state, e.g. for readiness) and retried at the next period.
    """
    failures = failures or FailureLog(what, log, traceback=traceback)
    while not stopping.is_set():
        try:
            await one_pass()
        except Exception as error:
            failures.failed(error)
        else:
            failures.succeeded()
        # asyncio.timeout, not wait_for: wait_for (3.11) runs the wait as a task of its own, which kopf,
        # as it stops, cancels among the tasks started after it, and the loop would end cancelled.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_s):
                await stopping.wait()
