"""The lifecycle of a SpectraMonitor server process: components beside a web server until SIGTERM.

Every long-running command starts some components (worker, alerter, sender, kopf, ...) and a uvicorn
server, reports readiness, and on SIGTERM or SIGINT stops the components in their own order before
the web server goes away.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

import uvicorn
from starlette.applications import Starlette

from spectra.runtime.readiness import Readiness
from spectra.runtime.server_limits import ServerLimits, connection_cap, guarded_protocol, raise_open_files_limit

log = logging.getLogger("spectra")

STOP_GRACE_S = 10.0  # components that have not ended this long after stop() are cancelled


def web_server(app: Starlette, host: str, port: int, limits: ServerLimits | None = None) -> uvicorn.Server:
    """A uvicorn server for `app` within `limits` (safe defaults); raises the open-files limit first."""
    limits = limits or ServerLimits()
    open_files = raise_open_files_limit()
    guarded = guarded_protocol(replace(limits, max_connections=connection_cap(limits.max_connections, open_files)))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded,
        ws="none",  # nothing of ours speaks WebSocket: no upgrade path to guard
        # Forwarded headers only from the proxies named; uvicorn's own default believes loopback.
        proxy_headers=bool(limits.trusted_proxies),
        forwarded_allow_ips=list(limits.trusted_proxies),
        log_level="warning",
        lifespan="off",
        log_config=None,  # uvicorn's records go to our handlers (and their SecretRedactor), not to its own
    )
    return uvicorn.Server(config)


async def serve(
    components: Mapping[str, Coroutine[Any, Any, Any]],
    server: uvicorn.Server,
    *,
    readiness: Readiness,
    stop: Callable[[], Awaitable[None]],
    background: Mapping[str, Coroutine[Any, Any, Any]] | None = None,
) -> int:
    """Run `components`, `background` and `server` until a signal or a component ends; then wind down:
    `background` loops (e.g. a file watcher) are cancelled, `stop()` stops the components in their order,
    and the web server goes last.

    Returns 0 after a clean stop, 1 when a component failed.
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    tasks = [asyncio.create_task(coroutine, name=name) for name, coroutine in components.items()]
    loops = [asyncio.create_task(coroutine, name=name) for name, coroutine in (background or {}).items()]
    tasks.extend(loops)
    tasks.append(asyncio.create_task(server.serve(), name="web"))
    readiness.problem = None
    signalled = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([signalled, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [task for task in done if task is not signalled and task.exception() is not None]
    for task in failed:
        log.error("%s stopped: %s", task.get_name(), task.exception())

    log.info("stopping")
    readiness.problem = "stopping"
    for task in loops:
        task.cancel()
    await stop()
    server.should_exit = True
    pending = [task for task in tasks if not task.done()]
    if pending:
        _, still_running = await asyncio.wait(pending, timeout=STOP_GRACE_S)
        for task in still_running:
            log.warning("%s did not stop within %gs: cancelled", task.get_name(), STOP_GRACE_S)
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    signalled.cancel()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    log.info("stopped")
    return 1 if failed else 0
