"""Cluster processes for the fault tests: `spectra alerter` replicas on MariaDB with the provider stand-ins,
monitors written down or up the way the probe writer writes them, and ack links minted with the shared key.

The alerter is started as the cluster runs it (its own process, its own log file), optionally under
`faketime` (Debian's libfaketime) to put its clock ahead or behind the database's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import sqlalchemy as sa

from spectra.store import Monitor, make_engine, save_states, session_factory
from spectra.store.clock import database_now
from spectra.tokens import Purpose, Tokens
from tests.factories.store import state_row
from tests.support.db_proxy import DatabaseProxy
from tests.support.processes import SPECTRA, free_port, get, run_spectra
from tests.support.providers import Providers
from tests.support.services import in_ci
from tests.support.waiting import wait_for

SECRET_KEY: Final = "fault-tests-secret-key-0123456789abcdef"
PUBLIC_URL: Final = "http://127.0.0.1:9"  # links in pages; the tests post to the alerter they started
# libfaketime preloaded into the process itself (not the `faketime` wrapper, which would stand between the
# test and the process's signals). The multi-threaded variant: the alerter runs database work in threads.
LIBFAKETIME: Final = "/usr/lib/*/faketime/libfaketimeMT.so.1"  # the directory names the architecture


def faketime_env(offset: str) -> dict[str, str]:
    """Environment that shifts a process's clocks by ``offset`` (e.g. "+10s"); libfaketime from Debian's faketime."""
    found = sorted(Path("/").glob(LIBFAKETIME.lstrip("/")))
    if not found:
        message = "libfaketime is missing: apt-get install faketime (scripts/test installs it)"
        if in_ci():
            raise AssertionError(message)
        pytest.skip(message)
    return {"LD_PRELOAD": str(found[0]), "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@dataclass
class Alerter:
    """One `spectra alerter` process: its port, its log, and how to stop it."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        return get(f"{self.base}/readyz")[0] == 200

    def metrics(self) -> str:
        return get(f"{self.base}/metrics")[1]

    def metric(self, name: str) -> float:
        """The value of an unlabelled sample `name` on /metrics (0 when absent)."""
        for line in self.metrics().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        return 0.0

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# To show that a fault test fails on an older checkout: point the spectra processes (not the test) at it,
# e.g. SPECTRA_FAULTS_CHILD_PYTHONPATH=/tmp/old-checkout (a `git worktree` of the older commit).
CHILD_PYTHONPATH_ENV: Final = "SPECTRA_FAULTS_CHILD_PYTHONPATH"


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a spectra process: ours without SPECTRA_/provider settings, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    older = os.environ.get(CHILD_PYTHONPATH_ENV)
    if older:
        env["PYTHONPATH"] = older
    return env | extra


def start_alerter(database_url: str, log: Path, providers: Providers, *, clock_offset: str | None = None) -> Alerter:
    """Start `spectra alerter` on a free port; `clock_offset` (e.g. "+10s") runs it under faketime."""
    port = free_port()
    env = (
        child_env()
        | providers.env()
        | {
            "PYTHONUNBUFFERED": "1",
            "SPECTRA_SECRET_KEY": SECRET_KEY,
            "SPECTRA_PUBLIC_URL": PUBLIC_URL,
        }
    )
    command = [SPECTRA, "alerter", "--database", database_url, "--listen", f"127.0.0.1:{port}"]
    if clock_offset is not None:
        env |= faketime_env(clock_offset)
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    alerter = Alerter(process, port, log)
    wait_for(lambda: get(f"{alerter.base}/healthz")[0] == 200 or process.poll() is not None, "alerter up", timeout=60)
    assert process.poll() is None, alerter.text()
    return alerter


def apply(database_url: str, manifests: str, folder: Path) -> None:
    path = folder / "manifests.yaml"
    path.write_text(manifests)
    done = run_spectra("apply", str(path), "--database", database_url, env=child_env())
    assert done.returncode == 0, done.stderr


@dataclass
class Store:
    """Direct access to the database the processes share (what the probe writer would write)."""

    url: str
    engine: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.url)
        self.sessions = session_factory(self.engine)
        columns = {column["name"] for column in sa.inspect(self.engine).get_columns("monitor_states")}
        self.has_reported_at = "reported_at" in columns

    def close(self) -> None:
        self.engine.dispose()

    def monitor_ids(self) -> dict[str, int]:
        with self.sessions() as session:
            return {str(name): int(rid) for rid, name in session.execute(sa.select(Monitor.resource_id, Monitor.name))}

    def report(self, states: Mapping[int, str], location: str = "default") -> None:
        """Write each monitor's state as just checked, in the database's time (as the probe writer does)."""
        with self.sessions.begin() as session:
            now = database_now(session)
            # reported_at: only on a schema that has it (an older checkout's has not; see CHILD_PYTHONPATH_ENV)
            stored = {"reported_at": now} if self.has_reported_at else {}
            save_states(session, [state_row(id_, location, state, at=now, **stored) for id_, state in states.items()])

    def rows(self, sql: str, **params: Any) -> list[sa.Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()


def ack_url(alerter: Alerter, incident_id: int) -> str:
    return f"{alerter.base}/ack/{Tokens(SECRET_KEY).make(Purpose.ACK, {'i': incident_id})}"


def post_form(url: str, form: Mapping[str, str], timeout: float = 30) -> tuple[int, str]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def monitors_yaml(names: Iterable[str], policy: str = "primary", interval: str = "60s") -> str:
    """Monitors nobody probes (the test writes their states): a closed port, checked rarely."""
    return "".join(
        f"""---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {{name: {name}}}
spec:
  type: http
  interval: {interval}
  escalationPolicyRef: {{name: {policy}}}
  http: {{url: "http://127.0.0.1:9/{name}"}}
"""
        for name in names
    )


class Cluster:
    """One fault test's database and the processes it starts against it; `close()` stops them all.

    `apply(manifests)` applies and returns the `Store`; `alerter(...)` starts a replica (its log in the
    test's folder), through `proxy` when given, with its clock shifted by `clock_offset`.
    """

    def __init__(self, mariadb_url: str, folder: Path, providers: Providers) -> None:
        self.url = mariadb_url
        self.folder = folder
        self.providers = providers
        self.alerters: list[Alerter] = []
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.url)
        return self._store

    def apply(self, manifests: str) -> Store:
        apply(self.url, manifests, self.folder)
        return self.store

    def alerter(
        self, name: str = "alerter", *, proxy: DatabaseProxy | None = None, clock_offset: str | None = None
    ) -> Alerter:
        url = proxy.url(self.url) if proxy is not None else self.url
        alerter = start_alerter(url, self.folder / f"{name}.log", self.providers, clock_offset=clock_offset)
        self.alerters.append(alerter)
        return alerter

    def close(self) -> None:
        for alerter in self.alerters:
            alerter.stop()
        if self._store is not None:
            self._store.close()
