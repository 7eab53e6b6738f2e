"""A probe that is not running is not a target that is down: stops and CPU starvation page nobody.

`spectra run` (probe, alerter and pager in one process, on SQLite) checks healthy local targets
with `failureThreshold: 1`, so a single false DOWN would open an incident and email Alice through
the SendGrid stand-in. The target answers after ANSWER_DELAY_S, well inside the timeout, so the test
can freeze the process while a check is in flight: its timeout then passes while the probe is
stopped, which is exactly when a probe that cannot tell its own stall from a slow target fails it.
The second case starves the probe of CPU instead (SCHED_IDLE beside busy loops on its core, the
target on another core). Before the fix both ended in DOWN results and incidents.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.factories.manifests import local_monitor, resource, to_yaml
from tests.support.processes import SPECTRA, free_port, get
from tests.support.providers import Providers
from tests.support.waiting import wait_for

ALICE_EMAIL = "alice@example.com"
INTERVAL, TIMEOUT = "4s", "3s"
ANSWER_DELAY_S = 1.0  # in flight for a quarter of each interval; 2 s short of the timeout
MONITORS = 3
FREEZE_S = 6.0  # twice the timeout: a check in flight when the process stops is past its deadline
FREEZES = 3
STARVE_S = 12.0  # three intervals
HOGS = 3
CORES = sorted(os.sched_getaffinity(0))


class SlowTarget:
    """A healthy HTTP target in a thread of the test (not frozen with the probe) that says what is in flight."""

    def __init__(self, core: int | None = None) -> None:
        self.in_flight = 0
        self.answered = 0
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with target._lock:
                    target.in_flight += 1
                try:
                    time.sleep(ANSWER_DELAY_S)
                    body = b"ok"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the probe gave up on this check (before the fix: it timed out while stopped)
                finally:
                    with target._lock:
                        target.in_flight -= 1
                        target.answered += 1

            def log_message(self, format: str, *args: object) -> None:
                """No access log: the test's output is the probe's."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self._serve, args=(core,), daemon=True)
        self._thread.start()

    def _serve(self, core: int | None) -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})  # this thread and the handler threads it starts
        self.server.serve_forever(poll_interval=0.1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


def manifests(port: int) -> str:
    alice = {"displayName": "Alice", "email": ALICE_EMAIL, "channels": ["email"]}
    steps = [{"delay": "0s", "targets": [{"contact": "alice"}], "channels": ["email"]}]
    return to_yaml(
        resource("Contact", "alice", alice),
        resource("EscalationPolicy", "primary", {"steps": steps}),
        *(
            local_monitor(
                f"web-{index}",
                port,
                interval=INTERVAL,
                timeout=TIMEOUT,
                failureThreshold=1,
                escalationPolicyRef={"name": "primary"},
            )
            for index in range(MONITORS)
        ),
    )


class Standalone:
    """`spectra run` of the test's manifests, and what it stored, served and sent."""

    def __init__(self, tmp_path: Path, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.engine = sa.create_engine(f"sqlite:///{tmp_path / 'spectra.db'}")

    def states(self) -> list[str]:
        status, body = get(f"{self.base}/api/v1/monitors")
        return [item["state"] for item in json.loads(body)] if status == 200 else []

    def count(self, sql: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())

    def metric(self, name: str) -> float:
        """The sum of every sample of ``name`` (0 when none)."""
        _, text = get(f"{self.base}/metrics")
        samples = [line.split()[-1] for line in text.splitlines() if line.startswith((f"{name} ", f"{name}{{"))]
        return sum(float(value) for value in samples)


@contextlib.contextmanager
def standalone(
    tmp_path: Path, target: SlowTarget, providers: Providers, prefix: Sequence[str] = ()
) -> Iterator[Standalone]:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "monitors.yaml").write_text(manifests(target.port))
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    env |= providers.env() | {"PYTHONUNBUFFERED": "1", "SPECTRA_SECRET_KEY": "faults-probe-stall-secret-0123456789"}
    log = tmp_path / "spectra.log"
    database = f"sqlite:///{tmp_path / 'spectra.db'}"
    command = [*prefix, SPECTRA, "run", str(folder), "--database", database, "--listen", f"127.0.0.1:{port}"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    run = Standalone(tmp_path, process, port, log)
    try:
        wait_for(lambda: get(f"{run.base}/readyz")[0] == 200 or process.poll() is not None, "readyz", timeout=60)
        assert process.poll() is None, log.read_text()
        wait_for(lambda: run.states() == ["up"] * MONITORS, "every monitor up", timeout=30)
        yield run
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log.read_text()
        assert "Traceback" not in log.read_text()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait()
        run.engine.dispose()


@pytest.fixture
def slow_target() -> Iterator[SlowTarget]:
    target = SlowTarget()
    yield target
    target.close()


@pytest.fixture
def providers() -> Iterator[Providers]:
    fakes = Providers()
    yield fakes
    fakes.close()


def settle(run: Standalone, target: SlowTarget) -> None:
    """Let every monitor be checked again after the last fault, and the alerter act on what it found."""
    answered = target.answered
    wait_for(lambda: target.answered >= answered + 2 * MONITORS, "checks after the fault", timeout=30)
    time.sleep(3)  # the alerter polls every second: a page, had there been a DOWN, would be on its way


def assert_nobody_paged(run: Standalone, providers: Providers) -> None:
    downs = run.count("SELECT COUNT(*) FROM check_results WHERE status = 'down'")
    assert downs == 0, run.log.read_text()[-4000:]
    assert run.count("SELECT COUNT(*) FROM incidents") == 0
    assert providers.emails(ALICE_EMAIL) == []
    assert run.states() == ["up"] * MONITORS


def test_a_probe_frozen_three_times_pages_nobody(tmp_path: Path, slow_target: SlowTarget, providers: Providers) -> None:
    with standalone(tmp_path, slow_target, providers) as run:
        for _ in range(FREEZES):
            # Freeze while a check waits for its answer: the answer comes while nobody is running.
            wait_for(lambda: slow_target.in_flight > 0, "a check in flight", timeout=20, interval=0.02)
            run.process.send_signal(signal.SIGSTOP)
            try:
                time.sleep(FREEZE_S)
            finally:
                run.process.send_signal(signal.SIGCONT)
        settle(run, slow_target)
        assert_nobody_paged(run, providers)
        assert run.metric("spectra_probe_stalls_total") >= FREEZES
        assert run.metric("spectra_checks_voided_total") >= FREEZES
        assert run.count("SELECT COUNT(*) FROM check_results WHERE status = 'up'") > 0


@pytest.mark.skipif(len(CORES) < 2, reason="needs two cores: one to starve the probe on, one for the target")
def test_a_probe_starved_of_cpu_pages_nobody(tmp_path: Path, providers: Providers) -> None:
    probe_core, target_core = CORES[:2]
    target = SlowTarget(core=target_core)
    # SCHED_IDLE on a core with busy loops: the probe runs only now and then, like a throttled pod.
    pinned = ["taskset", "-c", str(probe_core), "chrt", "--idle", "0"]
    try:
        with standalone(tmp_path, target, providers, prefix=pinned) as run:
            hog = ["taskset", "-c", str(probe_core), sys.executable, "-c", "while True: pass"]
            hogs = [subprocess.Popen(hog) for _ in range(HOGS)]
            try:
                time.sleep(STARVE_S)
            finally:
                for process in hogs:
                    process.kill()
                    process.wait()
            settle(run, target)
            assert_nobody_paged(run, providers)
            # The starvation did reach the probe: its loop was seconds late in all, and checks it could not
            # judge were voided (without the fix these were DOWN results and pages). With checks as cheap as
            # they are now, a starved probe may also finish every check within its budget: no void then.
            lag = run.metric("spectra_probe_loop_lag_seconds_sum")
            assert lag >= 1.0 or run.metric("spectra_checks_voided_total") >= 1, lag
    finally:
        target.close()
