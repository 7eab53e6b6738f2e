"""Database calls run on the probe's own threads: a stalled database leaves name resolution alone."""

from __future__ import annotations

import asyncio
import threading

from spectra.probe.database_threads import in_database_thread


async def test_blocked_database_calls_leave_the_default_executor_free() -> None:
    stalled = threading.Event()
    # More calls than the default executor has threads (6 on two cores), each held like a frozen query.
    blocked = [asyncio.ensure_future(in_database_thread(stalled.wait, 20)) for _ in range(20)]
    try:
        resolved = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo("127.0.0.1", 80), timeout=10)
        assert resolved  # checks resolve names on the default executor: not stuck behind the database
    finally:
        stalled.set()
        await asyncio.gather(*blocked)
    assert await in_database_thread(sum, [1, 2]) == 3
