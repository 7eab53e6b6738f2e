"""`spectra run`: the whole pipeline in one process on SQLite (or any store URL).

Manifests are loaded, validated and applied through the same loader the operator uses; a probe worker
checks the monitors; the alerter opens incidents and escalates, and the sender delivers its notifications
(to the console without provider keys); the web app serves health, metrics, the monitor API, ack links and
the Twilio webhooks; status pages are served and their page-events loop (auto incidents, subscriber
mails) runs beside the alerter. Changed manifests are re-applied without dropping schedules; a set with errors is
reported and the last good one kept. The admins Organizations name in `spec.admins` are invited as they appear;
while no platform admin has an account, each start logs a one-time link that sets one up.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from prometheus_client import Counter
from sqlalchemy import Engine, func, select

from spectra.auth.accounts import first_admin_link, invite_declared_admins, link_url
from spectra.console.monitors.hub import MonitorHub
from spectra.console.routes import console_routes
from spectra.domain.egress import EgressGuard, EgressPolicy
from spectra.manifests import ManifestSet, discover, load_paths
from spectra.probe.context import CheckContext
from spectra.probe.leases import SoloAssignment
from spectra.probe.metrics import ProbeMetrics
from spectra.probe.worker import Worker
from spectra.processes.alerting_side import AlertingSide
from spectra.processes.bootstrap import is_loopback, public_url, serve_app
from spectra.reconcile import MANIFEST_SOURCE, apply_set
from spectra.runtime.collector import release_freed_memory
from spectra.runtime.readiness import Readiness
from spectra.store import Monitor as MonitorRow
from spectra.store import make_engine, redacted, session_factory, upgrade
from spectra.store.engine import retry_conflicts, write_transaction
from spectra.tokens import Purpose
from spectra.web.app import AppParts

log = logging.getLogger("spectra.run")

DEFAULT_LOCATION = "default"


@dataclass
class Options:
    paths: Sequence[Path]
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    concurrency: int = 500
    poll_interval_s: float = 1.0
    artifacts_dir: Path = field(default_factory=lambda: Path("artifacts"))
    # Base of the links in notifications and of the Twilio signature check; default http://HOST:PORT.
    public_url: str | None = None


class RunMetrics(ProbeMetrics):
    """The worker's metrics and the manifest reloads of `spectra run`."""

    def __init__(self) -> None:
        super().__init__()
        self.config_reloads = Counter(
            "spectra_config_reloads_total", "Manifest reloads, by outcome.", ["outcome"], registry=self.registry
        )


class CurrentSecrets:
    """The Secrets of the last good manifest set; reloads swap them underneath running checks.

    Only the Secrets are kept: the parsed resources are in the store once applied (about 4 KB a monitor
    held for nothing otherwise)."""

    def __init__(self, manifests: ManifestSet) -> None:
        self.use(manifests)

    def use(self, manifests: ManifestSet) -> None:
        self._secrets = dict(manifests.secrets)

    def get(self, namespace: str, name: str, key: str) -> str | None:
        secret = self._secrets.get((namespace, name))
        return None if secret is None else secret.data.get(key)


def fingerprint(paths: Sequence[Path]) -> frozenset[tuple[str, int, int]]:
    """What a reload compares: every manifest file with its mtime and size (added and removed files too)."""
    files, _ = discover(paths)
    stamps = set()
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        stamps.add((str(path), stat.st_mtime_ns, stat.st_size))
    return frozenset(stamps)


class Standalone:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.engine: Engine = make_engine(options.database_url)
        self.sessions = session_factory(self.engine)
        self.metrics = RunMetrics()
        self.readiness = Readiness()
        self.secrets: CurrentSecrets | None = None
        self.worker: Worker | None = None
        self.links_base = public_url(options.public_url, options.host, options.port)

    def _apply(self, manifests: ManifestSet) -> str:
        """Apply the set in one transaction; run again after a lock conflict (a MariaDB deadlock with the
        probe's writer). On SQLite it takes the write lock first: it reads before it writes, and the
        writer commits every few hundred milliseconds."""
        return retry_conflicts(partial(self._apply_once, manifests))

    def _apply_once(self, manifests: ManifestSet) -> str:
        with write_transaction(self.sessions) as session:
            report = apply_set(
                session,
                [item.resource for item in manifests.resources],
                MANIFEST_SOURCE,
                secrets=manifests,
                files=manifests.source_files(self.options.paths),
            )
            admins = invite_declared_admins(session, now=datetime.now(UTC), public_url=self.links_base)
        for organization, email in admins.invited:
            log.info("Organization %s: invited %s as an admin (spec.admins)", organization, email)
        for organization, email, why in admins.refused:
            log.warning("Organization %s: %s in spec.admins was not invited: %s", organization, email, why)
        return str(report)

    def _first_admin_link(self) -> str | None:
        with self.sessions() as session:
            token = first_admin_link(session, now=datetime.now(UTC))
        return link_url(self.links_base, Purpose.SETUP, token) if token is not None else None

    def _monitor_count(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(MonitorRow)) or 0)

    async def run(self) -> int:
        options = self.options
        manifests = load_paths(options.paths)
        for error in manifests.errors:
            log.error("%s", error)
        if manifests.errors:
            log.error("%d error(s) in the manifests: not starting", len(manifests.errors))
            return 1
        await asyncio.to_thread(upgrade, self.engine)
        log.info("applied %s: %s", ", ".join(map(str, options.paths)), await asyncio.to_thread(self._apply, manifests))
        setup = await asyncio.to_thread(self._first_admin_link)
        if setup is not None:
            # As Jupyter prints its token: the way in while nobody can manage the platform. Signed with
            # SPECTRA_SECRET_KEY (or this process's own key), so a restart may need the newest link.
            log.warning("no platform admin yet: set up the first one at %s (once, within 7 days)", setup)

        self.secrets = CurrentSecrets(manifests)
        # This frame lives as long as the process: drop the parsed set, and collect its cycles (YAML
        # loader, ORM states) before the worker freezes what is alive after its first load.
        del manifests
        gc.collect()
        ctx = CheckContext(
            egress=EgressGuard(EgressPolicy.standalone()), secrets=self.secrets, artifacts_dir=options.artifacts_dir
        )
        self.worker = Worker(
            DEFAULT_LOCATION,
            self.sessions,
            ctx,
            assignment=SoloAssignment(),
            concurrency=options.concurrency,
            metrics=self.metrics,
        )
        side = AlertingSide(
            self.sessions,
            self.secrets,
            self.links_base,
            egress=EgressPolicy.standalone(),  # deliveries may reach this machine and its network, as probes may
            registry=self.metrics.registry,
        )
        readiness = self.readiness
        hub = MonitorHub(self.sessions)  # the console's live updates: one reader of state changes
        parts = AppParts(
            self.sessions,
            self.metrics,
            lambda: readiness() or side.problem(),
            loopback_only=is_loopback(options.host),
            routes=[*console_routes(self.sessions, hub=hub), *side.routes(self.sessions)],  # the pages' `/` last
            sign_in=True,
        )
        worker = self.worker
        monitors = await asyncio.to_thread(self._monitor_count)
        code = await serve_app(
            parts,
            self.readiness,
            {"worker": worker.run(), **side.components()},
            host=options.host,
            port=options.port,
            stop=lambda: side.stop(before_alerter=worker.stop),
            announce=f"spectra run: {monitors} monitor(s), database {redacted(options.database_url)}",
            background={"watch": self._watch(fingerprint(options.paths)), "console-events": hub.run()},
        )
        self.engine.dispose()
        return code

    async def _watch(self, seen: frozenset[tuple[str, int, int]]) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval_s)
            current = await asyncio.to_thread(fingerprint, self.options.paths)
            if current != seen:
                seen = current
                await self.reload()

    async def reload(self) -> None:
        try:
            manifests = await asyncio.to_thread(load_paths, self.options.paths)
        except Exception as exc:  # a bug of ours on hostile input must not end `spectra run`
            log.exception("reload refused: the manifests could not be read (%s); still running the last good ones", exc)
            self.metrics.config_reloads.labels("refused").inc()
            return
        if manifests.errors:
            for error in manifests.errors:
                log.error("%s", error)
            log.error("reload refused: %d error(s); still running the last good manifests", len(manifests.errors))
            self.metrics.config_reloads.labels("refused").inc()
            return
        try:
            report = await asyncio.to_thread(self._apply, manifests)  # one transaction: all of it or nothing
        except Exception as exc:  # a conflict the checks above missed must not end `spectra run` either
            log.exception("reload refused: the manifests could not be applied (%s); still running the last good", exc)
            self.metrics.config_reloads.labels("refused").inc()
            return
        if self.secrets is not None:
            self.secrets.use(manifests)
        if self.worker is not None:
            await self.worker.refresh()
        del manifests
        await asyncio.to_thread(release_freed_memory)  # what parsing and applying them freed
        self.metrics.config_reloads.labels("applied").inc()
        log.info("reloaded: %s", report)
