"""`spectra web` as a cluster runs it: pages from a shared, migrated database; an old schema is refused."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.factories.manifests import components, monitor, status_page, to_yaml
from tests.support.processes import SPECTRA, free_port, get
from tests.support.waiting import wait_for

MANIFESTS = to_yaml(
    monitor("api", url="https://api.example.com/health"),
    status_page(
        "public",
        slug="acme",
        title="Acme status",
        hostnames=["status.acme.example"],
        subscriptions={"enabled": True},
        groups=components("api", group="Core", component="API"),
    ),
)


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    return env | {"SPECTRA_SECRET_KEY": "e2e-web-secret-key-0123456789abcdef", "PYTHONUNBUFFERED": "1"}


def test_web_serves_pages_from_the_shared_database(tmp_path: Path) -> None:
    (tmp_path / "page.yaml").write_text(MANIFESTS)
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    applied = subprocess.run(
        [SPECTRA, "apply", str(tmp_path / "page.yaml"), "--database", database],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "web.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [SPECTRA, "web", "--database", database, "--listen", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env() | {"SPECTRA_PUBLIC_URL": "https://status.acme.example"},
        )
        try:
            wait_for(lambda: get(f"{base}/readyz")[0] == 200, "spectra web to be ready")
            cases = [
                ("/s/acme", None, 200, "Acme status"),
                ("/", "status.acme.example", 200, "Acme status"),
                ("/healthz", "status.acme.example", 200, "ok"),
                ("/", "other.example", 404, ""),
                ("/api/v1/status-pages/acme", None, 200, "Acme status"),
                ("/s/nope", None, 404, ""),
            ]
            for path, host, status, text in cases:
                got_status, body = get(base + path, host=host)
                assert (path, host, got_status) == (path, host, status), body[:300]
                assert text in body
            # Each process exports its own metrics: no probe worker runs here, so no scheduler figures.
            status, metrics = get(f"{base}/metrics")
            assert status == 200
            assert "spectra_checks_total" not in metrics
            assert "spectra_scheduler_lag_seconds" not in metrics
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text()
    assert "Traceback" not in text
    assert f"listening on http://127.0.0.1:{port}" in text


def test_web_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    done = subprocess.run(
        [SPECTRA, "web", "--database", f"sqlite:///{tmp_path / 'empty.db'}", "--listen", f"127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "spectra db upgrade" in done.stderr
