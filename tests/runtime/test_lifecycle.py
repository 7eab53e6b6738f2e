"""serve(): components beside a real uvicorn server on 127.0.0.1 until a real SIGTERM, stopped in their
order before the web server; the exit code says whether a component failed, not who stopped it (kopf
installs signal handlers of its own and cancels tasks as it stops)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from spectra.runtime.health import health_routes
from spectra.runtime.lifecycle import STOP_SIGNALS, serve, web_server
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import Readiness
from tests.support.processes import free_port
from tests.support.waiting import eventually


@pytest.fixture(autouse=True)
def signal_handlers_restored() -> Iterator[None]:
    """serve() leaves SIGTERM and SIGINT at their defaults when it returns; the test process gets its own back."""
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class Component:
    """Runs until its stop() is called; writes what happens to the shared `events`."""

    def __init__(self, name: str, events: list[str]) -> None:
        self.name = name
        self.events = events
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        self.events.append(f"{self.name} running")
        await self.stopping.wait()
        self.events.append(f"{self.name} ended")

    async def stop(self) -> None:
        self.events.append(f"{self.name} stop")
        self.stopping.set()


class Process:
    """serve() as a command runs it: named components, a real web server with /healthz and /readyz."""

    def __init__(self) -> None:
        self.port = free_port()
        self.events: list[str] = []
        self.readiness = Readiness()
        app = Starlette(routes=health_routes(self.readiness, Metrics()))
        self.server = web_server(app, "127.0.0.1", self.port)

    async def get(self, path: str) -> tuple[int, str]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"http://127.0.0.1:{self.port}{path}")
            return response.status_code, response.text

    async def serve(
        self,
        components: dict[str, Coroutine[Any, Any, Any]],
        stop: Callable[[], Awaitable[None]],
        *,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """serve() until it returns; `then` runs beside it once the web server is up (e.g. sends SIGTERM)."""

        async def when_up() -> None:
            await eventually(lambda: self.server.started, timeout=30)
            if then is not None:
                await then()

        beside = asyncio.create_task(when_up())
        try:
            return await asyncio.wait_for(
                serve(components, self.server, readiness=self.readiness, stop=stop), timeout=60
            )
        finally:
            beside.cancel()


async def sigterm() -> None:
    signal.raise_signal(signal.SIGTERM)


def task_named(name: str) -> asyncio.Task[Any]:
    return next(task for task in asyncio.all_tasks() if task.get_name() == name)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


async def test_sigterm_stops_the_components_in_order_while_the_web_server_answers_then_exits_0(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="spectra")
    process = Process()
    first, second = Component("first", process.events), Component("second", process.events)
    seen_while_stopping: list[tuple[int, str]] = []

    async def stop() -> None:
        # uvicorn took no part in the signal: the web server answers until the components have stopped.
        seen_while_stopping.append(await process.get("/healthz"))
        seen_while_stopping.append(await process.get("/readyz"))
        await first.stop()
        await second.stop()

    async def ready_then_sigterm() -> None:
        assert await process.get("/readyz") == (200, "ready\n")
        await sigterm()

    code = await process.serve({"first": first.run(), "second": second.run()}, stop, then=ready_then_sigterm)

    assert code == 0
    assert process.events == [
        "first running",
        "second running",
        "first stop",
        "second stop",
        "first ended",
        "second ended",
    ]
    assert seen_while_stopping == [(200, "ok\n"), (503, "not ready: stopping\n")]
    assert "SIGTERM received: stopping" in caplog.messages
    assert caplog.messages[-1] == "stopped"
    assert errors(caplog) == []


async def test_a_component_installing_its_own_sigterm_handler_does_not_take_the_signal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As kopf does: its handler would stop it at once, out of order; it stops through its stop flag instead."""
    process = Process()
    own_handler_ran: list[signal.Signals] = []
    other_signal = asyncio.Event()
    stop_flag = asyncio.Event()

    async def kopf_like() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, own_handler_ran.append, sig)
        loop.add_signal_handler(signal.SIGUSR1, other_signal.set)  # other signals are its own to handle
        try:
            signal.raise_signal(signal.SIGUSR1)
            await other_signal.wait()
            await stop_flag.wait()
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
        process.events.append("kopf stopped by its flag")

    async def stop() -> None:
        stop_flag.set()

    code = await process.serve({"kopf": kopf_like()}, stop, then=sigterm)

    assert code == 0
    assert own_handler_ran == []
    assert other_signal.is_set()
    assert process.events == ["kopf stopped by its flag"]
    assert "add_signal_handler" not in vars(asyncio.get_running_loop())  # the loop's own method again
    assert errors(caplog) == []


async def test_a_component_cancelled_by_someone_else_then_sigterm_exits_0(caplog: pytest.LogCaptureFixture) -> None:
    """kopf cancels the tasks that outlive it; a component cancelled so has stopped, it has not failed."""
    process = Process()
    status, other = Component("status", process.events), Component("other", process.events)

    async def cancel_status_then_sigterm() -> None:
        task_named("status").cancel()
        await sigterm()

    code = await process.serve(
        {"status": status.run(), "other": other.run()}, other.stop, then=cancel_status_then_sigterm
    )

    assert code == 0
    assert process.events == ["status running", "other running", "other stop", "other ended"]
    assert errors(caplog) == []


async def test_a_component_cancelled_before_any_signal_stops_the_process_with_0(
    caplog: pytest.LogCaptureFixture,
) -> None:
    process = Process()
    status, other = Component("status", process.events), Component("other", process.events)

    async def cancel_status() -> None:
        task_named("status").cancel()

    code = await process.serve({"status": status.run(), "other": other.run()}, other.stop, then=cancel_status)

    assert code == 0
    assert "status was cancelled before a stop was asked: stopping" in caplog.messages
    assert process.events[-2:] == ["other stop", "other ended"]
    assert errors(caplog) == []


async def test_a_component_that_raised_exits_1_naming_it_and_the_others_are_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    process = Process()
    other = Component("other", process.events)

    async def broken() -> None:
        raise RuntimeError("database schema is gone")

    code = await process.serve({"broken": broken(), "other": other.run()}, other.stop)

    assert code == 1
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.getMessage() for record in failures] == ["broken failed: database schema is gone"]
    assert failures[0].exc_info is not None  # a genuine failure keeps its traceback
    assert process.events[-2:] == ["other stop", "other ended"]


async def test_a_component_that_raises_while_stopping_exits_1(caplog: pytest.LogCaptureFixture) -> None:
    process = Process()
    stopping = asyncio.Event()

    async def flushes_on_stop() -> None:
        await stopping.wait()
        raise OSError("could not flush the last results")

    async def stop() -> None:
        stopping.set()

    code = await process.serve({"writer": flushes_on_stop()}, stop, then=sigterm)

    assert code == 1
    assert errors(caplog) == ["writer failed while stopping: could not flush the last results"]


async def test_a_stop_that_raises_exits_1_and_the_web_server_still_stops(caplog: pytest.LogCaptureFixture) -> None:
    process = Process()
    component = Component("worker", process.events)

    async def stop() -> None:
        await component.stop()
        raise RuntimeError("lease release failed")

    code = await process.serve({"worker": component.run()}, stop, then=sigterm)

    assert code == 1
    assert errors(caplog) == ["stopping the components failed: lease release failed"]
    with pytest.raises(httpx.ConnectError):  # the web server has closed all the same
        await process.get("/healthz")
