"""A cluster `spectra alerter` (MariaDB, Secrets from a Kubernetes API, the SendGrid stand-in) pages an
escalation policy whose webhook and Slack URLs, from a tenant's Secret, point inside: at a server on
127.0.0.1 in several spellings and at the metadata address.

Strict (the default): every such delivery is refused and recorded dead with one reason that names no
address or port, nothing reaches the internal server, and the email page of the same step still goes
out. With `SPECTRA_ALLOW_PRIVATE_TARGETS` (the chart's `alerter.allowPrivateTargets`) the same internal
server receives the webhook, and the metadata address stays refused.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.factories.manifests import resource, to_yaml
from tests.support.cluster import PUBLIC_URL, SECRET_KEY, Alerter, Store, apply, child_env, monitors_yaml
from tests.support.kube import ClusterEmulator
from tests.support.processes import SPECTRA, free_port, get
from tests.support.providers import Providers
from tests.support.waiting import wait_for

ALICE = "alice@example.com"
HOOK_TOKEN = "internal-hook-token-5f0c"


class InternalServer:
    """An HTTP server on 127.0.0.1 standing for something inside the cluster; records every request."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                paths.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[InternalServer]:
    server = InternalServer()
    yield server
    server.close()


@pytest.fixture
def kubernetes(tmp_path: Path) -> Iterator[ClusterEmulator]:
    """The Kubernetes API the alerter reads Secrets from (kubectl is not needed here)."""
    with ClusterEmulator(None, tmp_path / "kube") as emulator:
        yield emulator


def hook_urls(port: int) -> dict[str, str]:
    return {
        "loopback": f"http://127.0.0.1:{port}/{HOOK_TOKEN}",
        "mapped": f"http://[::ffff:127.0.0.1]:{port}/{HOOK_TOKEN}/mapped",
        "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    }


def manifests(urls: dict[str, str]) -> str:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hooks", "namespace": "default"}}
    targets = [
        {"contact": "alice"},
        {"webhook": {"urlFrom": {"secretKeyRef": {"name": "hooks", "key": "loopback"}}}},
        {"webhook": {"urlFrom": {"secretKeyRef": {"name": "hooks", "key": "metadata"}}}},
        {"slack": {"webhookFrom": {"secretKeyRef": {"name": "hooks", "key": "mapped"}}}},
    ]
    return to_yaml(
        secret | {"stringData": urls},
        resource("Contact", "alice", {"displayName": "Alice", "email": ALICE, "channels": ["email"]}),
        resource("EscalationPolicy", "primary", {"steps": [{"delay": "0s", "targets": targets}]}),
    ) + monitors_yaml(["api"])


def start_alerter(
    url: str, log: Path, providers: Providers, kubernetes: ClusterEmulator, extra: dict[str, str]
) -> Alerter:
    port = free_port()
    env = child_env(
        PYTHONUNBUFFERED="1",
        SPECTRA_SECRET_KEY=SECRET_KEY,
        SPECTRA_PUBLIC_URL=PUBLIC_URL,
        SPECTRA_SECRETS="kubernetes",
        KUBECONFIG=str(kubernetes.kubeconfig),
        **providers.env(),
        **extra,
    )
    command = [SPECTRA, "alerter", "--database", url, "--listen", f"127.0.0.1:{port}"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    alerter = Alerter(process, port, log)
    wait_for(lambda: get(f"{alerter.base}/healthz")[0] == 200 or process.poll() is not None, "alerter up", timeout=60)
    assert process.poll() is None, alerter.text()
    return alerter


def page_api_down(
    mariadb_url: str,
    tmp_path: Path,
    providers: Providers,
    kubernetes: ClusterEmulator,
    internal: InternalServer,
    extra_env: dict[str, str],
) -> tuple[Store, Alerter]:
    """Apply the set, start the alerter, report `api` down, and wait until alice's email page went out
    and every webhook and Slack row of the step has an outcome."""
    urls = hook_urls(internal.port)
    kubernetes.create(
        "v1/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hooks", "namespace": "default"},
            "stringData": urls,
        },
    )
    apply(mariadb_url, manifests(urls), tmp_path)
    store = Store(mariadb_url)
    alerter = start_alerter(mariadb_url, tmp_path / "alerter.log", providers, kubernetes, extra_env)
    wait_for(alerter.ready, "alerter ready", timeout=60)
    store.report({store.monitor_ids()["api"]: "down"})
    wait_for(lambda: providers.emails(ALICE), "alice's email page", timeout=60)
    wait_for(
        lambda: (
            store.scalar(
                "SELECT COUNT(*) FROM notifications WHERE channel IN ('webhook', 'slack') AND status IN ('sent', 'dead')"
            )
            == 3
        ),
        "an outcome for each webhook and Slack delivery",
        timeout=60,
    )
    return store, alerter


def outcomes(store: Store) -> dict[str, tuple[str, str | None]]:
    """Each webhook and Slack row by its Secret key: (status, last error)."""
    rows = store.rows("SELECT recipient, status, last_error FROM notifications WHERE channel IN ('webhook', 'slack')")
    return {str(row.recipient).rsplit("/", 1)[1]: (str(row.status), row.last_error) for row in rows}


def everything_recorded(store: Store, alerter: Alerter) -> str:
    """Every notification and attempt row and the alerter's log: where an address or port could leak."""
    tables = [
        repr(store.rows(f"SELECT * FROM {table}"))
        for table in ("notifications", "notification_attempts", "incident_events")
    ]
    return "\n".join([*tables, alerter.text()])


def test_strict_alerter_refuses_internal_webhooks_and_records_one_reason(
    mariadb_url: str,
    tmp_path: Path,
    providers: Providers,
    kubernetes: ClusterEmulator,
    internal: InternalServer,
) -> None:
    store, alerter = page_api_down(mariadb_url, tmp_path, providers, kubernetes, internal, {})
    try:
        assert outcomes(store) == {
            "loopback": ("dead", "webhook delivery refused by the egress policy"),
            "metadata": ("dead", "webhook delivery refused by the egress policy"),
            "mapped": ("dead", "Slack delivery refused by the egress policy"),
        }
        assert internal.paths == []  # nothing reached the internal server
        recorded = everything_recorded(store, alerter)
        for leak in (HOOK_TOKEN, f":{internal.port}", "169.254.169.254", "ConnectionRefused", "Traceback"):
            assert leak not in recorded
        assert store.scalar("SELECT COUNT(*) FROM notification_attempts WHERE outcome = 'failed'") == 3
    finally:
        alerter.stop()
        store.close()
    assert alerter.process.returncode == 0


def test_alerter_allowed_private_targets_delivers_inside_but_never_to_metadata(
    mariadb_url: str,
    tmp_path: Path,
    providers: Providers,
    kubernetes: ClusterEmulator,
    internal: InternalServer,
) -> None:
    allowed = {"SPECTRA_ALLOW_PRIVATE_TARGETS": "true"}
    store, alerter = page_api_down(mariadb_url, tmp_path, providers, kubernetes, internal, allowed)
    try:
        found = outcomes(store)
        assert found["loopback"][0] == "sent"
        assert found["mapped"][0] == "sent"
        assert found["metadata"] == ("dead", "webhook delivery refused by the egress policy")
        assert sorted(internal.paths) == [f"/{HOOK_TOKEN}", f"/{HOOK_TOKEN}/mapped"]
    finally:
        alerter.stop()
        store.close()
    assert alerter.process.returncode == 0
