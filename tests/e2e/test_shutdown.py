"""SIGTERM to every long-running command: exit 0, no traceback, no ERROR line, within the grace period
(issue 14, part 4).

Each command runs as a real process, as its other end-to-end tests start it, is ready (`/readyz` 200)
and has done real work (a check written, a page sent, a status page served, objects reconciled) before
SIGTERM. kopf and uvicorn install signal handlers of their own; the operator is also stopped while kopf
is busy with objects applied a moment before.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from spectra.store import upgrade
from tests.e2e.test_probe_service import start_probe
from tests.e2e.test_web_command import MANIFESTS as STATUS_PAGE
from tests.factories.manifests import OPERATOR_IMAGE, local_monitor, operator_cluster, operator_config, to_yaml
from tests.faults.test_alerter_faults import ALICE, contact_and_policy
from tests.support.cluster import Cluster, child_env, monitors_yaml
from tests.support.kube import MONITORS, ClusterEmulator
from tests.support.operator import Operator, ready
from tests.support.paths import EXAMPLES
from tests.support.processes import SPECTRA, Target, free_port, get, run_spectra
from tests.support.providers import Providers
from tests.support.standalone import Run
from tests.support.waiting import wait_for

# Kubernetes' default terminationGracePeriodSeconds: neither the chart nor the probe Deployments the
# operator makes set another, so SIGKILL follows SIGTERM after 30 s.
GRACE_S = 30.0
ERROR_LINE = re.compile(r"^\S+ \S+ (?:ERROR|CRITICAL) .*$", re.MULTILINE)  # our log format: time, level, logger


@dataclass
class Running:
    """A started command: its process and the file its output goes to."""

    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def ready_at(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200 or process.poll() is not None, what, timeout=60)


def killed_at_the_end(request: pytest.FixtureRequest, process: subprocess.Popen[bytes]) -> None:
    def kill() -> None:
        if process.poll() is None:
            process.kill()
            process.wait()

    request.addfinalizer(kill)


def rows(url: str, sql: str) -> list[sa.Row[object]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)))
    finally:
        engine.dispose()


# --- the commands, started and busy -------------------------------------------------------------------------


def standalone(request: pytest.FixtureRequest, tmp: Path) -> Running:
    """`spectra run DIR`: the monitor of a local target is up."""
    target: Target = request.getfixturevalue("target")
    folder = tmp / "manifests"
    folder.mkdir()
    (folder / "monitors.yaml").write_text(to_yaml(local_monitor("web", target.port)))
    run = Run(tmp, folder)
    request.addfinalizer(run.close)
    ready_at(run.port, run.process, "spectra run ready")
    wait_for(lambda: run.state("web") == "up" or run.process.poll() is not None, "spectra run: web up", timeout=60)
    return Running(run.process, run.log)


def probe(request: pytest.FixtureRequest, tmp: Path) -> Running:
    """`spectra probe` on MariaDB: the monitor's results are written."""
    target: Target = request.getfixturevalue("target")
    url: str = request.getfixturevalue("mariadb_url")
    (tmp / "monitors.yaml").write_text(to_yaml(local_monitor("web", target.port)))
    applied = run_spectra("apply", str(tmp / "monitors.yaml"), "--database", url)  # migrates, as `db upgrade`
    assert applied.returncode == 0, applied.stderr
    process, port = start_probe(url, tmp / "probe.log")
    killed_at_the_end(request, process)
    ready_at(port, process, "spectra probe ready")
    wait_for(lambda: rows(url, "SELECT 1 FROM monitor_states WHERE state = 'up'"), "a check result written", timeout=60)
    return Running(process, tmp / "probe.log")


def alerter(request: pytest.FixtureRequest, tmp: Path) -> Running:
    """`spectra alerter` on MariaDB: a monitor reported down is paged by email."""
    url: str = request.getfixturevalue("mariadb_url")
    providers: Providers = request.getfixturevalue("providers")
    cluster = Cluster(url, tmp, providers)
    request.addfinalizer(cluster.close)
    store = cluster.apply(contact_and_policy(0) + monitors_yaml(["web"]))
    started = cluster.alerter()
    wait_for(started.ready, "spectra alerter ready", timeout=60)
    store.report({store.monitor_ids()["web"]: "down"})
    wait_for(lambda: providers.emails(ALICE), "the page by email", timeout=60)
    return Running(started.process, started.log)


def web(request: pytest.FixtureRequest, tmp: Path) -> Running:
    """`spectra web`: a status page is served from the shared database."""
    database = f"sqlite:///{tmp / 'shared.db'}"
    (tmp / "page.yaml").write_text(STATUS_PAGE)
    applied = run_spectra("apply", str(tmp / "page.yaml"), "--database", database, env=child_env())
    assert applied.returncode == 0, applied.stderr
    port = free_port()
    log = tmp / "web.log"
    env = child_env(SPECTRA_SECRET_KEY="e2e-shutdown-secret-key-0123456789abcdef", PYTHONUNBUFFERED="1")
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [SPECTRA, "web", "--database", database, "--listen", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    killed_at_the_end(request, process)
    ready_at(port, process, "spectra web ready")
    status, page = get(f"http://127.0.0.1:{port}/s/acme")
    assert status == 200, page[:300]
    return Running(process, log)


def started_operator(request: pytest.FixtureRequest, tmp: Path) -> tuple[Operator, ClusterEmulator]:
    """`spectra operator` against the Kubernetes API emulator, on a migrated MariaDB database, ready."""
    cluster: ClusterEmulator = request.getfixturevalue("cluster")
    url: str = request.getfixturevalue("mariadb_url")
    engine = sa.create_engine(url)
    upgrade(engine)  # the operator refuses an old schema
    engine.dispose()
    cluster.kubectl("apply", "-f", "-", input=to_yaml(*operator_cluster()))
    running = Operator(cluster, url, tmp)
    # The settings the chart ships (status every 10 s, retries every 60 s), not the e2e tests' fast ones:
    # SIGTERM finds the loops in pauses longer than the 5 s after which kopf, as it stops, cancels tasks.
    running.config.write_text(yaml.safe_dump(operator_config(instance="spectra", probe={"image": OPERATOR_IMAGE})))
    request.addfinalizer(running.kill)
    running.start()
    return running, cluster


def operator(request: pytest.FixtureRequest, tmp: Path) -> Running:
    """`spectra operator`: a Monitor applied with kubectl is reconciled and Ready."""
    running, cluster = started_operator(request, tmp)
    target: Target = request.getfixturevalue("target")
    cluster.kubectl("apply", "-f", "-", input=to_yaml(local_monitor("web", target.port)))
    wait_for(lambda: ready(cluster, MONITORS, "default", "web"), "Monitor web Ready", timeout=60)
    assert running.process is not None
    return Running(running.process, running.logs[-1])


def operator_busy(request: pytest.FixtureRequest, tmp: Path) -> Running:
    """`spectra operator` while kopf is busy: every example applied, SIGTERM at the first one reconciled."""
    running, cluster = started_operator(request, tmp)
    for folder in sorted(path for path in EXAMPLES.iterdir() if path.is_dir()):
        cluster.kubectl("apply", "-f", str(folder))
    wait_for(lambda: "applied " in running.log_text(), "the operator applying the examples", timeout=60)
    assert running.process is not None
    return Running(running.process, running.logs[-1])


COMMANDS: dict[str, Callable[[pytest.FixtureRequest, Path], Running]] = {
    "run": standalone,
    "probe": probe,
    "alerter": alerter,
    "web": web,
    "operator": operator,
    "operator-busy": operator_busy,
}
MARKS = {  # fixtures asked for inside the case are not seen by tests/conftest.py: their tiers are named here
    "probe": (pytest.mark.mariadb,),
    "alerter": (pytest.mark.mariadb,),
    "operator": (pytest.mark.mariadb, pytest.mark.kube),
    "operator-busy": (pytest.mark.mariadb, pytest.mark.kube),
}


@pytest.mark.parametrize("command", [pytest.param(name, marks=MARKS.get(name, ())) for name in COMMANDS])
def test_sigterm_exits_0_without_traceback_within_the_grace_period(
    command: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    running = COMMANDS[command](request, tmp_path)
    assert running.process.poll() is None, running.text()[-8000:]

    sent = time.monotonic()
    running.process.send_signal(signal.SIGTERM)
    code = running.process.wait(timeout=GRACE_S)
    took_s = time.monotonic() - sent

    text = running.text()
    print(f"{command}: exit {code}, {took_s:.1f} s after SIGTERM")  # the figure, shown with -s or on failure
    assert code == 0, text[-8000:]
    assert "Traceback" not in text, text[-8000:]
    assert ERROR_LINE.findall(text) == []
    assert "SIGTERM received: stopping" in text
    assert text.rstrip().endswith("stopped"), text[-2000:]
