"""The garbage collector in a long-running server: what is loaded at start is frozen out of its passes.

CPython's full collections scan every tracked object and run whenever a quarter more objects have lived
long than at the last one. A web process holds hundreds of thousands of objects that live as long as it
does (modules, routes, templates, compiled SQL, the live hub's copy of every monitor); requests keep
promoting short-lived ones, so a full pass ran about once a second under load and took 100-150 ms at
10,000 monitors, stalling whatever request it fell in (`python -m bench --only console`). `gc.freeze()`
moves everything alive at that moment out of the collector's sight (as the CPython docs advise after a
server's start): the passes that remain scan only what came later and take a few milliseconds.

`freeze_once_ready` does it once, after the process has started and become ready (its manifests applied,
its hub loaded), and lets the loaded state settle first.

Starting also leaves freed memory behind: parsing and applying 10,000 manifests, the first load of every
monitor and the hub's first read free tens of megabytes that glibc's allocator keeps mapped, in holes it
gives back only when asked (`malloc_trim`); so does running, more slowly (each batch of results, each
rollup, each read of the hub frees what it allocated, and the holes between live blocks stay mapped).
`release_freed_memory` asks, once the process is ready, then every TRIM_EVERY_S, and after each reload: at
10,000 monitors that keeps 10-15 MB of RSS from a ~70 MB heap, in a thread, in about a millisecond when
little was freed (11 ms for 60 MB). It is a no-op where the C library has no such call (musl, macOS).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable
from functools import cache
from typing import Final

log = logging.getLogger("spectra.runtime")

SETTLE_S: Final = 5.0
# Once the long-lived objects are frozen, what the collector still sees is each request's and each check's
# short-lived objects; refcounting frees nearly all of them, and the default young-generation threshold
# (700 allocations) made a saturated probe spend ~20 % of its CPU in collections that found little
# (10,000 monitors at 1 s; 6 % with this threshold).
YOUNG_THRESHOLD: Final = 10_000
TRIM_EVERY_S: Final = 15.0


async def freeze_once_ready(problem: Callable[[], str | None], *, settle_s: float = SETTLE_S) -> None:
    """Wait until `problem()` says nothing (ready), then `settle_s`, then freeze what is alive; then give
    freed memory back every TRIM_EVERY_S until cancelled (a background loop of the process)."""
    while problem() is not None:
        await asyncio.sleep(1.0)
    await asyncio.sleep(settle_s)
    gc.collect()  # what is garbage now should not be frozen with the rest
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    log.debug("garbage collector: %d objects loaded at start frozen out of its passes", gc.get_freeze_count())
    while await asyncio.to_thread(release_freed_memory):
        await asyncio.sleep(TRIM_EVERY_S)
    await asyncio.Event().wait()  # nothing to ask the C library: idle until cancelled


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    library = ctypes.CDLL(name) if name else None
    return getattr(library, "malloc_trim", None)


def release_freed_memory() -> bool:
    """Give the pages the C allocator holds free back to the system (glibc); whether it could ask."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)  # 0: keep no padding at the top of the heap; returns whether anything was given back
    return True
