"""`spectra operator`: kopf handlers plus the loops that keep status, children and retries current.

kopf peering (object `spectra`) lets one operator replica handle objects; the loops run only on the
replica holding the database lease `operator`, so two replicas never patch the same status twice. The
one exception, the re-apply of objects waiting for a reference or Secret, runs everywhere: it acts only
on what the replica's own handlers and passes saw.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import kopf
from prometheus_client.core import CounterMetricFamily
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from spectra.domain.leadership import Leadership
from spectra.operator import discovery_sync, handlers
from spectra.operator.apply import Applier
from spectra.operator.child_sync import ChildSync
from spectra.operator.kube import Kube, load_config
from spectra.operator.publisher import StatusPublisher
from spectra.operator.resync import Resync
from spectra.operator.secrets import KubernetesSecrets
from spectra.operator.settings import OperatorSettings
from spectra.operator.waits import Waits
from spectra.processes.bootstrap import server_limits, with_current_schema
from spectra.runtime.health import health_routes
from spectra.runtime.lifecycle import serve, web_server
from spectra.runtime.loop import run_until_stopped
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import Readiness
from spectra.store import redacted
from spectra.store.types import utcnow

log = logging.getLogger("spectra.operator")


@dataclass
class OperatorOptions:
    database_url: str
    settings: OperatorSettings
    host: str = "0.0.0.0"  # noqa: S104 - health for the kubelet
    port: int = 8083
    kubeconfig: str | None = None


async def _every(
    seconds: float, stop: asyncio.Event, leader: Leadership, work: Callable[[], object], name: str
) -> None:
    """Run `work` (sync, in a thread) every `seconds` while this replica holds the operator lease."""

    async def one_pass() -> None:
        if await asyncio.to_thread(leader.is_leader, utcnow()):
            await asyncio.to_thread(work)

    await run_until_stopped(stop, one_pass, every_s=seconds, what=f"{name} pass", log=log)


async def run_operator(options: OperatorOptions) -> int:
    return await with_current_schema(options.database_url, lambda sessions: _serve(options, sessions))


async def _serve(options: OperatorOptions, sessions: sessionmaker[Session]) -> int:
    settings = options.settings
    try:
        limits = server_limits()  # the same web server settings as every process, checked before anything starts
    except ValueError as exc:
        log.error("%s", exc)
        return 1
    kube = Kube(load_config(options.kubeconfig))
    secrets = KubernetesSecrets(kube.read_secret, ttl=min(30.0, settings.secret_refresh_seconds))
    applier = Applier(
        sessions,
        secrets,
        allow_private_targets=settings.probe.allow_private_targets,
        public_url=settings.web.public_url,
    )
    resync = Resync(applier, kube, secrets, Waits())
    registry = kopf.OperatorRegistry()
    handlers.register(registry, resync)
    discovery_sync.register(registry, discovery_sync.DiscoverySync(kube))
    publisher = StatusPublisher(sessions, kube, settings.status, public_url=settings.web.public_url)
    owned = ChildSync(sessions, kube, settings)
    holder = f"{socket.gethostname()}-{os.getpid()}"
    leader = Leadership(sessions, holder, name="operator")
    stop = asyncio.Event()
    kopf_stop: asyncio.Event = asyncio.Event()
    readiness = Readiness()

    async def stop_all() -> None:
        stop.set()
        kopf_stop.set()
        await asyncio.to_thread(leader.release)

    peering = await asyncio.to_thread(kube.peering_exists, settings.peering_name)
    if not peering:
        log.warning(
            "ClusterKopfPeering %r not found: running without peering, so run only one operator replica "
            "(the chart creates it; see docs/operator.md)",
            settings.peering_name,
        )
    log.info(
        "operator: database %s, children in namespace %s, probe image %s",
        redacted(options.database_url),
        settings.namespace,
        settings.probe.image,
    )
    components = {
        "kopf": kopf.operator(
            registry=registry,
            settings=handlers.settings(settings.peering_name),
            clusterwide=True,
            peering_name=settings.peering_name,
            standalone=not peering,
            # Distinct priorities: with equal ones kopf lets every replica act and only warns.
            priority=random.randint(1, 1_000_000),  # noqa: S311 - not a secret
            stop_flag=kopf_stop,
        ),
        "status": publisher.run(stop, lambda: leader.is_leader(utcnow()), resync.objects),
        "children": _every(settings.status.interval_seconds, stop, leader, owned.sync, "children"),
        "retry": _every(settings.secret_refresh_seconds, stop, leader, resync.run_once, "retry"),
        # On every replica, not only the lease holder: it re-applies what this replica's handlers saw wait.
        "converge": resync.converge(stop),
    }
    app = Starlette(routes=health_routes(readiness, OperatorMetrics(publisher)))
    server = web_server(app, options.host, options.port, limits)
    return await serve(components, server, readiness=readiness, stop=stop_all)


class OperatorMetrics(Metrics):
    """What the operator has sent to the API server, read from the publisher at scrape time."""

    def __init__(self, publisher: StatusPublisher) -> None:
        super().__init__()
        self._publisher = publisher
        self.registry.register(self)

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "spectra_operator_status_patches", "Status patches sent.", value=self._publisher.patches
        )
        yield CounterMetricFamily(
            "spectra_operator_events", "Monitor state Events posted.", value=self._publisher.events
        )
