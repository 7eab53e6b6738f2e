"""spectra.runtime.collector: what a server loaded at start is frozen out of the collector's passes, once
the process is ready and not before."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from spectra.runtime.collector import freeze_once_ready


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_it_freezes_once_ready_and_not_before(unfrozen: None) -> None:
    problem: list[str | None] = ["starting"]

    async def scenario() -> None:
        task = asyncio.create_task(freeze_once_ready(lambda: problem[0], settle_s=0))
        await asyncio.sleep(1.5)  # a readiness check or two
        assert gc.get_freeze_count() == 0
        problem[0] = None
        async with asyncio.timeout(30):
            while not gc.get_freeze_count():
                await asyncio.sleep(0.05)
        assert not task.done()  # it idles until the process winds down
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert gc.get_freeze_count() > 0
