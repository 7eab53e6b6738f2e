"""spectra.runtime.collector: what a server loaded at start is frozen out of the collector's passes, once
the process is ready and not before; freed memory goes back to the system then and every minute."""

from __future__ import annotations

import asyncio
import gc
import platform
import subprocess
import sys
from collections.abc import Iterator

import pytest

from spectra.runtime import collector
from spectra.runtime.collector import freeze_once_ready, release_freed_memory


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


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


def test_after_freezing_it_gives_freed_memory_back_every_so_often(
    unfrozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def release() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(collector, "release_freed_memory", release)
    monkeypatch.setattr(collector, "TRIM_EVERY_S", 0.01)

    async def scenario() -> None:
        task = asyncio.create_task(freeze_once_ready(lambda: None, settle_s=0))
        async with asyncio.timeout(30):
            while len(calls) < 3:
                await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD  # young passes are rarer once the rest is frozen


# A process that frees most of 200 MB of C-allocated blocks (bytes over pymalloc's 512-byte limit) but
# keeps every 64th: the holes stay mapped until the allocator is asked to give them back.
HOLES = """
import sys
from spectra.runtime.collector import release_freed_memory

def anon_kib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

blocks = [bytes(2048) for _ in range(100_000)]
kept = blocks[::64]
del blocks
before = anon_kib()
asked = release_freed_memory()
print(asked, before, anon_kib())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_memory_goes_back_to_the_system() -> None:
    out = subprocess.run([sys.executable, "-c", HOLES], capture_output=True, text=True, check=True).stdout.split()
    asked, before_kib, after_kib = out[0] == "True", int(out[1]), int(out[2])
    assert asked
    assert before_kib - after_kib > 100_000  # most of the ~200 MB freed came back


def test_releasing_is_safe_to_ask_any_time() -> None:
    assert release_freed_memory() is (platform.libc_ver()[0] == "glibc")
    assert release_freed_memory() is (platform.libc_ver()[0] == "glibc")
