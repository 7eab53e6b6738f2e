"""`spectra run` with tenants' costly expectations (issue 13, class 1) on the real process.

Two hostile monitors pass validation and would each cost CPU-minutes per check: a JSONPath with a
recursive descent and a backtracking filter regex over nested JSON, and a catastrophic `bodyRegex`.
Beside them, a plain monitor every second and one with an ordinary jsonPath. While they run, `/healthz`
keeps answering, the plain monitor keeps its schedule, the hostile ones are DOWN with the budget's
reason, and SIGTERM stops the process (and its evaluator processes) at once with exit 0.
"""

from __future__ import annotations

import functools
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories.manifests import local_monitor, to_yaml
from tests.support.processes import Target, evaluator_pids, get
from tests.support.standalone import Run
from tests.support.waiting import wait_for

WATCH_S = 25.0  # how long /healthz and the plain monitor are watched while the hostile checks run
HOSTILE_TIMING: dict[str, Any] = {"interval": "5s", "timeout": "4s", "failureThreshold": 1}
NESTED_NAMES = {"level": {"items": [{"name": "x" * 40, "tags": ["x" * 40] * 3} for _ in range(50)]}}


def manifests(port: int) -> str:
    def http(name: str, path: str, expect: dict[str, Any] | None, **timing: Any) -> dict[str, Any]:
        body = local_monitor(name, port, path=path, **timing)
        if expect is not None:
            body["spec"]["http"]["expect"] = expect
        return body

    return to_yaml(
        http(
            "filter-regex",
            "/nested.json",
            {"jsonPath": [{"path": "$..[?@ =~ /(x+x+)+y/]", "equals": 1}]},
            **HOSTILE_TIMING,
        ),
        http("catastrophic-regex", "/xs.txt", {"bodyRegex": "(x+x+)+y"}, **HOSTILE_TIMING),
        http("plain", "/index.html", None, interval="1s", timeout="900ms"),
        http("ordinary-json", "/status.json", {"jsonPath": [{"path": "$.status", "equals": "ok"}]}),
    )


def checks_of(database: Path, name: str) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        row = connection.execute(
            "SELECT count(*) FROM check_results JOIN monitors ON monitors.resource_id = check_results.monitor_id"
            " WHERE monitors.name = ?",
            (name,),
        ).fetchone()
    return int(row[0])


@pytest.fixture
def hostile_run(tmp_path: Path, target: Target) -> Iterator[Run]:
    (target.root / "nested.json").write_text(json.dumps(NESTED_NAMES))
    (target.root / "xs.txt").write_text("x" * 5000)
    (target.root / "status.json").write_text(json.dumps({"status": "ok"}))
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "monitors.yaml").write_text(manifests(target.port))
    run = Run(tmp_path, folder)
    try:
        wait_for(lambda: get(f"{run.base}/readyz")[0] == 200 or run.process.poll() is not None, "readyz", timeout=60)
        assert run.process.poll() is None, run.log_text()
        yield run
    finally:
        run.close()


def test_hostile_expectations_are_contained_and_the_rest_keeps_running(hostile_run: Run, tmp_path: Path) -> None:
    run = hostile_run
    database = tmp_path / "spectra.db"
    wait_for(lambda: run.state("plain") == "up", "the plain monitor up", timeout=60)
    before = checks_of(database, "plain")

    latencies: list[float] = []
    failures: list[int] = []
    watch_until = time.monotonic() + WATCH_S
    while time.monotonic() < watch_until:
        started = time.monotonic()
        status, _ = get(f"{run.base}/healthz")  # urllib's timeout: 5 s
        latencies.append(time.monotonic() - started)
        if status != 200:
            failures.append(status)
        time.sleep(0.2)
    slowest = max(latencies)
    assert failures == [], f"/healthz failed {len(failures)} times of {len(latencies)}; slowest answer {slowest:.2f}s"
    assert slowest < 5, f"slowest /healthz answer {slowest:.2f}s"
    after = checks_of(database, "plain")
    # Every second for 25 s; half of that is plenty on a busy machine, and far more than a frozen loop gives.
    assert after - before >= 10, f"the plain monitor was checked {after - before} times in {WATCH_S:g}s"

    for name, step in (("filter-regex", "JSONPath $..[?@ =~ /(x+x+)+y/]"), ("catastrophic-regex", "regex search")):
        reason = wait_for(functools.partial(_reason_when_down, run, name), f"{name} down", timeout=60)
        assert reason == f"{step} exceeded its 1s budget", reason
    wait_for(lambda: run.state("ordinary-json") == "up", "the ordinary jsonPath monitor up", timeout=60)
    assert run.state("plain") == "up"

    # Overrunning ones are killed and started again on next use: one runs within a few seconds.
    evaluators = wait_for(lambda: evaluator_pids(run.process.pid), "an evaluator process", timeout=30)
    stopping = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(timeout=30) == 0, run.log_text()
    stopped_in = time.monotonic() - stopping
    log = run.log_text()
    assert "Traceback" not in log
    assert "Exception ignored" not in log
    assert stopped_in < 15, f"SIGTERM took {stopped_in:.1f}s"
    # The figures, for `pytest -s`: what the assertions above allow is far more than what happens.
    median = sorted(latencies)[len(latencies) // 2]
    print(
        f"/healthz under attack: {len(latencies)} answers, median {median * 1000:.0f} ms, slowest"
        f" {slowest * 1000:.0f} ms; plain monitor checked {after - before} times in {WATCH_S:g} s;"
        f" SIGTERM to exit {stopped_in:.1f} s"
    )
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in evaluators), "the evaluators gone")


def _reason_when_down(run: Run, name: str) -> str | None:
    monitor = run.monitors().get(name, {})
    return monitor.get("reason") if monitor.get("state") == "down" else None
