"""Waiting for something to become true, with a generous deadline (never a sub-second budget: the
machine has 2 cores and is sometimes busy; a condition that holds returns at once anyway)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: str = "condition", *, timeout: float = 20.0, interval: float = 0.1) -> T:
    """Poll until `predicate()` is truthy and return that value; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {value!r}")
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], object | Awaitable[object]], *, timeout: float = 20.0, interval: float = 0.05
) -> None:
    """Wait until `predicate()` (sync or async) is truthy; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
