"""`spectra run` and `spectra check` as users run them: real processes, a real target going down and up."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories.manifests import heartbeat_monitor, monitor, secret, to_yaml
from tests.factories.monitors import LOCAL_INTERVAL, LOCAL_TIMEOUT, tcp_spec
from tests.support.paths import EXAMPLES
from tests.support.processes import SPECTRA, Target, get
from tests.support.standalone import Run
from tests.support.waiting import wait_for

TOKEN = "e2e-heartbeat-token-0123456789abcdef"


def example_01(port: int) -> str:
    """examples/01-http-monitor as shipped, pointed at the test's target and sped up for the test."""
    text = (EXAMPLES / "01-http-monitor" / "monitor.yaml").read_text()
    for old, new in (
        ("127.0.0.1:8000", f"127.0.0.1:{port}"),
        ("interval: 30s", f"interval: {LOCAL_INTERVAL}"),
        ("timeout: 5s", f"timeout: {LOCAL_TIMEOUT}"),
    ):
        assert old in text, f"examples/01-http-monitor changed: {old!r} is gone"
        text = text.replace(old, new)
    return text


# Appended to example_01: a heartbeat monitor whose token is in Secret tokens, key backup.
HEARTBEAT = "---\n" + to_yaml(
    heartbeat_monitor("backup", "tokens", "backup", interval="2s", grace="1s"), secret("tokens", backup=TOKEN)
)


@pytest.fixture
def spectra_run(tmp_path: Path, target: Target) -> Iterator[Run]:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "monitors.yaml").write_text(example_01(target.port) + HEARTBEAT)
    run = Run(tmp_path, folder)
    try:
        wait_for(lambda: get(f"{run.base}/readyz")[0] == 200 or run.process.poll() is not None, "readyz")
        assert run.process.poll() is None, run.log_text()
        yield run
    finally:
        run.close()


def test_detects_target_down_and_back_up(spectra_run: Run, target: Target) -> None:
    run = spectra_run
    wait_for(lambda: run.state("local-web") == "up", "monitor up")
    item = run.monitors()["local-web"]
    assert item["namespace"] == "default"
    assert item["type"] == "http"
    assert item["latencyMs"] is not None
    assert item["lastCheck"]

    target.stop()
    wait_for(lambda: run.state("local-web") == "down", "monitor down")
    assert "default/local-web" in run.log_text()
    assert "-> down" in run.log_text()

    target.start()
    wait_for(lambda: run.state("local-web") == "up", "monitor up again")
    wait_for(lambda: "down -> up" in run.log_text(), "log line for recovery")

    status, metrics = get(f"{run.base}/metrics")
    assert status == 200
    assert 'spectra_checks_total{status="down",type="http"}' in metrics
    assert 'spectra_checks_total{status="up",type="http"}' in metrics
    assert "spectra_scheduler_lag_seconds_bucket" in metrics
    assert get(f"{run.base}/healthz") == (200, "ok\n")


def test_heartbeat_push(spectra_run: Run) -> None:
    run = spectra_run
    wait_for(lambda: run.state("backup") == "down", "heartbeat down: no push within interval + grace")
    assert get(f"{run.base}/api/v1/heartbeat/not-the-token", "POST")[0] == 404
    assert get(f"{run.base}/api/v1/heartbeat/{TOKEN}", "POST") == (200, "ok\n")
    wait_for(lambda: run.state("backup") == "up", "heartbeat monitor up after a push")
    assert get(f"{run.base}/api/v1/heartbeat/{TOKEN}")[0] == 200  # cron jobs use GET
    assert TOKEN not in json.dumps(run.monitors())
    assert TOKEN not in run.log_text()


def _refused_at_least(run: Run, count: int) -> bool:
    return run.log_text().count("reload refused") >= count


HOSTILE_DOCUMENTS = (
    "kind: List\nitems: &i\n  - kind: List\n    items: *i\n",
    "apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {name: d}\nspec: " + "[" * 5000 + "]" * 5000 + "\n",
    "apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {name: h}\n"
    "spec: {type: http, interval: 99999999999999999999h, http: {url: 'https://example.com'}}\n",
    "\x1fkind: Monitor\n",  # a control character the YAML reader refuses before any document
    "!!set {a}: 1\n",  # a key YAML allows and a manifest never means
    # A second heartbeat monitor with the token of `backup`: the store holds each token once.
    to_yaml(heartbeat_monitor("copy", "tokens", "backup", interval="2s", grace="1s")),
)


def test_reload_on_change_keeps_running_and_refuses_bad_sets(spectra_run: Run, target: Target, tmp_path: Path) -> None:
    run = spectra_run
    wait_for(lambda: run.state("local-web") == "up", "monitor up")
    manifests = tmp_path / "manifests"
    (manifests / "second.yaml").write_text(to_yaml(monitor("second", **tcp_spec(target.port))))
    wait_for(lambda: run.state("second") == "up", "new monitor checked after reload")

    (manifests / "broken.yaml").write_text(
        "apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {name: b}\nspec: {}\n"
    )
    wait_for(lambda: "reload refused" in run.log_text(), "refused reload")
    assert "broken.yaml: Monitor/default/b: spec.type: required field is missing" in run.log_text()
    assert set(run.monitors()) == {"local-web", "backup", "second"}

    # Hostile files (a List that contains itself, nesting thousands deep, a huge duration, ...) are refused the same way.
    for number, hostile in enumerate(HOSTILE_DOCUMENTS, start=2):
        (manifests / "broken.yaml").write_text(hostile)
        refusals = functools.partial(_refused_at_least, run, number)
        wait_for(refusals, f"hostile document {number - 1} refused")
    assert run.process.poll() is None
    assert set(run.monitors()) == {"local-web", "backup", "second"}

    (manifests / "broken.yaml").unlink()
    (manifests / "second.yaml").unlink()
    wait_for(lambda: "second" not in run.monitors(), "removed monitor gone")
    assert run.state("local-web") == "up"


def test_sigterm_stops_cleanly(spectra_run: Run) -> None:
    run = spectra_run
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(timeout=15) == 0
    assert "stopped" in run.log_text()
    assert "Traceback" not in run.log_text()


def test_invalid_manifests_do_not_start(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {name: x}\nspec: {type: http}\n"
    )
    done = subprocess.run(
        [SPECTRA, "run", str(tmp_path / "bad.yaml"), "--database", f"sqlite:///{tmp_path / 'db.sqlite'}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "spec.http: type is http but the http block is missing" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_command(tmp_path: Path, target: Target) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "m.yaml").write_text(example_01(target.port) + HEARTBEAT)
    done = subprocess.run([SPECTRA, "check", str(folder)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["MONITOR", "TYPE", "RESULT", "LATENCY", "REASON"]
    assert any(line.startswith("default/local-web") and " up " in line for line in lines)
    assert any("heartbeat" in line and "skipped" in line for line in lines)

    target.stop()
    done = subprocess.run([SPECTRA, "check", str(folder)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "connection refused" in done.stdout.lower()
    assert "1 down" in done.stderr


def test_check_strict_egress_refuses_loopback(tmp_path: Path, target: Target) -> None:
    (tmp_path / "m.yaml").write_text(example_01(target.port) + HEARTBEAT)
    done = subprocess.run(
        [SPECTRA, "check", "--strict-egress", str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "egress policy" in done.stdout


def authenticated(port: int) -> str:
    """Appended to example_01: a monitor whose Authorization header comes from a Secret not in the folder."""
    header = {
        "name": "Authorization",
        "valueFrom": {"secretKeyRef": {"name": "api-credentials", "key": "authorization"}},
    }
    http = {"url": f"http://127.0.0.1:{port}/", "headers": [header]}
    return "---\n" + to_yaml(monitor("private-api", http=http))


def test_check_skip_secrets_skips_monitors_whose_secret_lives_elsewhere(tmp_path: Path, target: Target) -> None:
    (tmp_path / "m.yaml").write_text(example_01(target.port) + authenticated(target.port))
    refused = subprocess.run([SPECTRA, "check", str(tmp_path)], capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1
    assert "Secret 'api-credentials' does not exist" in refused.stdout
    done = subprocess.run(
        [SPECTRA, "check", "--skip-secrets", str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("default/local-web") and " up " in line for line in lines)
    skipped = next(line for line in lines if line.startswith("default/private-api"))
    assert "skipped" in skipped
    assert "spec.http.headers[0].valueFrom.secretKeyRef names Secret 'api-credentials'" in skipped
