"""A fixed number of turns at a shared resource, handed out round-robin among tenants.

The evaluator processes are few (two per worker) and a tenant chooses what each of its evaluations costs
(up to the budget). Taken first come, first served, a tenant with many costly monitors keeps every
process busy and everyone else's checks queue behind all of its work. Here each tenant with someone
waiting gets the next free turn in rotation, so another tenant's check waits for at most one turn of each
busy tenant, however many the busy one has queued.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque


class FairTurns:
    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("at least one slot")
        self._free = slots
        # Tenants with someone waiting, in the order they are served next; each with its waiters in order.
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        """How many are waiting for a turn."""
        return sum(len(queue) for queue in self._waiting.values())

    async def acquire(self, tenant: str) -> None:
        """Take one turn for ``tenant``, waiting for one when none is free; give it back with `release`."""
        if self._free and not self._waiting:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant, deque()).append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # the turn came as the waiter was cancelled: pass it on
            else:
                self._forget(tenant, granted)
            raise

    def release(self) -> None:
        """Give a turn back: to the next tenant in rotation with someone waiting, else to the free ones."""
        while self._waiting:
            tenant, queue = next(iter(self._waiting.items()))
            granted = queue.popleft()
            if queue:
                self._waiting.move_to_end(tenant)  # its next waiter comes after every other tenant's
            else:
                del self._waiting[tenant]
            if not granted.done():
                granted.set_result(None)
                return
        self._free += 1

    def _forget(self, tenant: str, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(tenant)
        if queue is None:
            return
        try:
            queue.remove(granted)
        except ValueError:
            return
        if not queue:
            del self._waiting[tenant]
