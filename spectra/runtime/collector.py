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
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from typing import Final

log = logging.getLogger("spectra.runtime")

SETTLE_S: Final = 5.0


async def freeze_once_ready(problem: Callable[[], str | None], *, settle_s: float = SETTLE_S) -> None:
    """Wait until `problem()` says nothing (ready), then `settle_s`, then freeze what is alive; then idle
    until cancelled (a background loop of the process)."""
    while problem() is not None:
        await asyncio.sleep(1.0)
    await asyncio.sleep(settle_s)
    gc.collect()  # what is garbage now should not be frozen with the rest
    gc.freeze()
    log.debug("garbage collector: %d objects loaded at start frozen out of its passes", gc.get_freeze_count())
    await asyncio.Event().wait()
