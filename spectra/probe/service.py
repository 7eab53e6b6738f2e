"""`spectra probe --location NAME`: a cluster probe worker.

Runs the monitors of one location from the shared store, sharing them with the location's other
workers through leases, and serves /healthz, /readyz and /metrics. The egress policy refuses
loopback and private targets unless told otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

import uvicorn

from spectra.probe.context import CheckContext
from spectra.probe.egress import EgressGuard, EgressPolicy
from spectra.probe.leases import LeaseAssignment
from spectra.probe.worker import Worker
from spectra.store import current_revision, head_revision, make_engine, redacted, session_factory
from spectra.web.app import Runtime, create_app
from spectra.web.metrics import ProbeMetrics

log = logging.getLogger("spectra.probe")


@dataclass
class ProbeOptions:
    location: str
    database_url: str
    host: str = "0.0.0.0"  # noqa: S104 - a probe pod serves health and metrics to the cluster
    port: int = 8081
    concurrency: int = 1000
    allow_private: bool = False


async def run_probe(options: ProbeOptions) -> int:
    engine = make_engine(options.database_url)
    sessions = session_factory(engine)
    revision = await asyncio.to_thread(current_revision, engine)
    if revision != head_revision():
        log.error(
            "database %s is at revision %s, expected %s: run `spectra db upgrade`",
            redacted(options.database_url),
            revision,
            head_revision(),
        )
        engine.dispose()
        return 1
    policy = EgressPolicy(allow_loopback=options.allow_private, allow_private=options.allow_private)
    metrics = ProbeMetrics()
    worker = Worker(
        options.location,
        sessions,
        CheckContext(egress=EgressGuard(policy)),
        assignment=LeaseAssignment(options.location, sessions),
        concurrency=options.concurrency,
        metrics=metrics,
    )
    stopping = asyncio.Event()
    ready: list[str | None] = ["starting"]
    runtime = Runtime(sessions, metrics, lambda: ready[0], loopback_only=False)
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host=options.host, port=options.port, log_level="warning", lifespan="off")
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    tasks = [asyncio.create_task(worker.run(), name="worker"), asyncio.create_task(server.serve(), name="web")]
    log.info(
        "probe worker for location %s: database %s, listening on %s:%d",
        options.location,
        redacted(options.database_url),
        options.host,
        options.port,
    )
    ready[0] = None
    stop = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [task for task in done if task is not stop and task.exception() is not None]
    for task in failed:
        log.error("%s stopped: %s", task.get_name(), task.exception())
    ready[0] = "stopping"
    server.should_exit = True
    await worker.stop()  # flushes results and releases leases so other workers take over at once
    await asyncio.gather(*tasks, return_exceptions=True)
    stop.cancel()
    engine.dispose()
    log.info("stopped")
    return 1 if failed else 0
