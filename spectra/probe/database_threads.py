"""The probe's database calls run on threads of their own, never on asyncio's default executor.

The default executor has min(32, CPUs + 4) threads (6 on two cores) and also resolves host names for
the checks (``loop.getaddrinfo``). A frozen database holds each call's thread until the driver's
timeout (15 s): the writer, the lease renewal, the reload and every heartbeat check's read would fill
that pool, and HTTP checks of healthy targets would time out waiting for DNS, to be stored as DOWN once
the database is back. On this pool a stalled database delays only database work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Final, TypeVar

T = TypeVar("T")

DATABASE_THREADS: Final = 8  # writer, lease tick, reload, paused marks, heartbeat reads, with room to spare
_executor = ThreadPoolExecutor(max_workers=DATABASE_THREADS, thread_name_prefix="spectra-db")


async def in_database_thread(call: Callable[..., T], *args: object) -> T:
    """``call(*args)`` on a database thread (what ``asyncio.to_thread`` does, on the probe's own pool)."""
    return await asyncio.get_running_loop().run_in_executor(_executor, partial(call, *args))
