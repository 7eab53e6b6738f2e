"""`spectra probe --location NAME`: a cluster probe worker.

Runs the monitors of one location from the shared store, sharing them with the location's other
workers through leases, and serves /healthz, /readyz and /metrics. The egress policy refuses
loopback and private targets unless told otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from spectra.api.secrets import NoSecrets, SecretResolver
from spectra.probe.context import CheckContext
from spectra.probe.egress import EgressGuard, EgressPolicy
from spectra.probe.leases import LeaseAssignment
from spectra.probe.metrics import ProbeMetrics
from spectra.probe.worker import Worker
from spectra.processes.bootstrap import serve_app, with_current_schema
from spectra.runtime.readiness import Readiness
from spectra.store import redacted
from spectra.web.app import AppParts

log = logging.getLogger("spectra.probe")


@dataclass
class ProbeOptions:
    location: str
    database_url: str
    host: str = "0.0.0.0"  # noqa: S104 - a probe pod serves health and metrics to the cluster
    port: int = 8081
    concurrency: int = 1000
    allow_private: bool = False
    secrets: SecretResolver | None = None  # header values from secretKeyRefs (the cluster's Secrets)


async def run_probe(options: ProbeOptions) -> int:
    return await with_current_schema(options.database_url, lambda sessions: _serve(options, sessions))


async def _serve(options: ProbeOptions, sessions: sessionmaker[Session]) -> int:
    policy = EgressPolicy(allow_loopback=options.allow_private, allow_private=options.allow_private)
    metrics = ProbeMetrics()
    worker = Worker(
        options.location,
        sessions,
        CheckContext(egress=EgressGuard(policy), secrets=options.secrets or NoSecrets()),
        assignment=LeaseAssignment(options.location, sessions),
        concurrency=options.concurrency,
        metrics=metrics,
    )
    readiness = Readiness()
    parts = AppParts(sessions, metrics, readiness, loopback_only=False)
    # worker.stop() flushes results and releases leases, so other workers take over at once.
    return await serve_app(
        parts,
        readiness,
        {"worker": worker.run()},
        host=options.host,
        port=options.port,
        stop=worker.stop,
        announce=f"probe worker for location {options.location}: database {redacted(options.database_url)}",
    )
