"""`spectra probe --location NAME`: a cluster probe worker.

Runs the monitors of one location from the shared store, sharing them with the location's other
workers through leases, and serves /healthz, /readyz and /metrics. The egress policy refuses
loopback and private targets unless told otherwise.

/readyz answers 503 with the reason while the database fails the worker's round trips (for 5 s) or
has not answered one for 20 s (frozen), and while its leases have lapsed; checks go on meanwhile as
long as the leases last (SPECTRA_PROBE_OUTAGE_ALLOWANCE_S, default 60 s, see spectra.probe.leases).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from spectra.api.secrets import NoSecrets, SecretResolver
from spectra.domain.egress import EgressGuard, EgressPolicy
from spectra.probe.context import CheckContext
from spectra.probe.database_health import DatabaseHealth
from spectra.probe.leases import DEFAULT_OUTAGE_ALLOWANCE_S, LeaseAssignment
from spectra.probe.metrics import ProbeMetrics
from spectra.probe.worker import Worker
from spectra.probe.writer import ResultWriter
from spectra.processes.bootstrap import serve_app, with_current_schema
from spectra.runtime.readiness import Readiness, ReadinessCheck
from spectra.store import redacted
from spectra.store.environment import seconds_setting
from spectra.web.app import AppParts

log = logging.getLogger("spectra.probe")

OUTAGE_ALLOWANCE_ENV = "SPECTRA_PROBE_OUTAGE_ALLOWANCE_S"


def outage_allowance_s() -> float:
    """How long a worker keeps its leases through a database outage: $SPECTRA_PROBE_OUTAGE_ALLOWANCE_S or 60."""
    return seconds_setting(OUTAGE_ALLOWANCE_ENV, DEFAULT_OUTAGE_ALLOWANCE_S, minimum=0, maximum=3600)


@dataclass
class ProbeOptions:
    location: str
    database_url: str
    host: str = "0.0.0.0"  # noqa: S104 - a probe pod serves health and metrics to the cluster
    port: int = 8081
    concurrency: int = 1000
    allow_private: bool = False
    secrets: SecretResolver | None = None  # header values from secretKeyRefs (the cluster's Secrets)
    outage_allowance_s: float = field(default_factory=outage_allowance_s)


async def run_probe(options: ProbeOptions) -> int:
    return await with_current_schema(options.database_url, lambda sessions: _serve(options, sessions))


async def _serve(options: ProbeOptions, sessions: sessionmaker[Session]) -> int:
    policy = EgressPolicy(allow_loopback=options.allow_private, allow_private=options.allow_private)
    metrics = ProbeMetrics()
    health = DatabaseHealth()  # one for every path to the database: one log line per outage, not one per path
    metrics.watch_database(health)
    assignment = LeaseAssignment(
        options.location, sessions, outage_allowance_s=options.outage_allowance_s, health=health
    )
    worker = Worker(
        options.location,
        sessions,
        CheckContext(egress=EgressGuard(policy), secrets=options.secrets or NoSecrets()),
        assignment=assignment,
        concurrency=options.concurrency,
        writer=ResultWriter(sessions, health=health),
        metrics=metrics,
    )
    readiness = Readiness()
    parts = AppParts(sessions, metrics, probe_readiness(readiness, health, assignment), loopback_only=False)
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


def probe_readiness(process: Readiness, health: DatabaseHealth, assignment: LeaseAssignment) -> ReadinessCheck:
    """/readyz of a probe worker: the process's own state, then the database's, then the leases'."""

    def check() -> str | None:
        problems = [problem for problem in (health.problem(), assignment.problem()) if problem is not None]
        return process() or ("; ".join(problems) if problems else None)

    return check
