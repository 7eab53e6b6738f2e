"""The lifecycle of a SpectraMonitor server process: components beside a web server until SIGTERM.

Every long-running command starts some components (worker, alerter, sender, kopf, ...) and a uvicorn
server, reports readiness, and on SIGTERM or SIGINT stops the components in their own order before
the web server goes away; the exit code is 0 unless a component failed.

SIGTERM and SIGINT belong to :func:`serve` alone while it runs. uvicorn and kopf would each stop their
part at the signal, out of order: uvicorn closes the health server before the components have stopped,
and kopf stops at once and, 5 s later, cancels every task started after it, our components' among them.
So uvicorn's handlers are never installed, kopf's are refused while serving (it stops through its stop
flag, like every component, through `stop()`), and a component someone else cancelled anyway has
stopped, not failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import replace
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette

from spectra.runtime.readiness import Readiness
from spectra.runtime.server_limits import ServerLimits, connection_cap, guarded_protocol, raise_open_files_limit

log = logging.getLogger("spectra")

STOP_GRACE_S = 10.0  # components that have not ended this long after stop() are cancelled
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: :func:`serve` stops it last (`should_exit`). uvicorn's
    handlers would close it at the signal, before the components stopped, and raise the signal again
    when it had closed."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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
    return _Server(config)


async def serve(
    components: Mapping[str, Coroutine[Any, Any, Any]],
    server: uvicorn.Server,
    *,
    readiness: Readiness,
    stop: Callable[[], Awaitable[None]],
    background: Mapping[str, Coroutine[Any, Any, Any]] | None = None,
) -> int:
    """Run `components`, `background` and `server` until SIGTERM, SIGINT or a component ends; then wind
    down: `background` loops (e.g. a file watcher) are cancelled, `stop()` stops the components in their
    order, and the web server goes last.

    Returns 0 after a clean stop, also when a component was cancelled by someone else (kopf cancels
    tasks as it stops); 1 when a component raised, before or during the stop, or `stop()` raised.
    """
    loop = asyncio.get_running_loop()
    signalled: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(sig: signal.Signals) -> None:
        if not signalled.done():
            signalled.set_result(sig)

    with _stop_signals(loop, on_signal):
        tasks = [asyncio.create_task(coroutine, name=name) for name, coroutine in components.items()]
        loops = [asyncio.create_task(coroutine, name=name) for name, coroutine in (background or {}).items()]
        tasks.extend(loops)
        tasks.append(asyncio.create_task(server.serve(), name="web"))
        readiness.problem = None
        await asyncio.wait([signalled, *tasks], return_when=asyncio.FIRST_COMPLETED)
        ended_first = [task for task in tasks if task.done()]
        _report_ended(ended_first, signalled)
        readiness.problem = "stopping"
        for task in loops:
            task.cancel()
        stop_failed = not await _stopped(stop)
        server.should_exit = True
        pending = [task for task in tasks if not task.done()]
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=STOP_GRACE_S)
            for task in still_running:
                log.warning("%s did not stop within %gs: cancelled", task.get_name(), STOP_GRACE_S)
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    late = [task for task in tasks if task not in ended_first and _failure(task) is not None]
    for task in late:
        log.error("%s failed while stopping: %s", task.get_name(), _failure(task), exc_info=_failure(task))
    failed = stop_failed or late or any(_failure(task) is not None for task in ended_first)
    log.info("stopped" if not failed else "stopped after a failure")
    return 1 if failed else 0


def _failure(task: asyncio.Task[Any]) -> BaseException | None:
    """What `task` raised; None when it returned or was cancelled (a cancelled component has stopped,
    whoever cancelled it: kopf cancels tasks that outlive it)."""
    return None if task.cancelled() else task.exception()


def _report_ended(ended: list[asyncio.Task[Any]], signalled: asyncio.Future[signal.Signals]) -> None:
    """Log why the process is stopping: the signal, the components that failed, or those that ended."""
    if signalled.done():
        log.info("%s received: stopping", signalled.result().name)
    for task in ended:
        error = _failure(task)
        if error is not None:
            log.error("%s failed: %s", task.get_name(), error, exc_info=error)
        elif not signalled.done():
            how = "was cancelled" if task.cancelled() else "ended"
            log.warning("%s %s before a stop was asked: stopping", task.get_name(), how)
    log.info("stopping")


async def _stopped(stop: Callable[[], Awaitable[None]]) -> bool:
    """Run `stop()`: False when it raised (logged); the rest of the wind-down runs either way."""
    try:
        await stop()
    except Exception as error:
        log.error("stopping the components failed: %s", error, exc_info=error)
        return False
    return True


@contextlib.contextmanager
def _stop_signals(loop: asyncio.AbstractEventLoop, on_signal: Callable[[signal.Signals], None]) -> Iterator[None]:
    """SIGTERM and SIGINT call `on_signal` and nothing else until the block ends.

    asyncio keeps one handler per signal, and kopf installs its own when it starts (after ours): so
    while the block runs, the loop refuses other handlers for these two signals (logged at debug).
    """
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    install = loop.add_signal_handler

    def refuse_stop_signals(sig: int, callback: Callable[..., object], *args: Any) -> None:
        if sig in STOP_SIGNALS:
            log.debug("%s is handled by the process lifecycle: %r not installed", signal.Signals(sig).name, callback)
            return
        install(sig, callback, *args)

    loop.add_signal_handler = refuse_stop_signals  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        del loop.add_signal_handler  # the loop's own method again
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
