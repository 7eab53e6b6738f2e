"""The "run until stopped" loop of every periodic component: a pass, a pause, again, until told to stop.

A failed pass is logged and the next one tries again (a database that is away for a minute must not end
a loop for good); the pause ends early when the stop event is set, so components stop promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


async def run_until_stopped(
    stopping: asyncio.Event,
    one_pass: Callable[[], Awaitable[object]],
    *,
    every_s: float,
    what: str,
    log: logging.Logger,
    traceback: bool = True,
) -> None:
    """Await `one_pass()` every `every_s` seconds until `stopping` is set.

    A pass that raises is logged as "`what` failed" (with the traceback unless `traceback=False`, for
    passes whose usual failure is a database that is away) and retried at the next period.
    """
    while not stopping.is_set():
        try:
            await one_pass()
        except Exception as error:
            if traceback:
                log.exception("%s failed; retrying", what)
            else:
                log.warning("%s failed: %s: %s", what, type(error).__name__, error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=every_s)
