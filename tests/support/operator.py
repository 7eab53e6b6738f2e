"""`spectra operator` as the end-to-end tests run it: a real process with a kubeconfig for the Kubernetes
API emulator (tests/support/kube.py) and its own MariaDB database, and how to read what it wrote."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.factories.manifests import OPERATOR_IMAGE, operator_config
from tests.support.kube import ClusterEmulator
from tests.support.processes import SPECTRA, free_port, get
from tests.support.waiting import wait_for

FINALIZER = "spectra.dev/finalizer"


class Operator:
    """One `spectra operator` process; `start()` after `kill()` runs it again with the same settings and database."""

    def __init__(
        self,
        cluster: ClusterEmulator,
        database: str,
        tmp: Path,
        *,
        retry_seconds: float = 1,
        allow_private_targets: bool = False,
    ) -> None:
        self.cluster = cluster
        self.database = database
        self.tmp = tmp
        self.config = tmp / "operator.yaml"
        self.config.write_text(
            yaml.safe_dump(
                operator_config(
                    instance="spectra",
                    probe={
                        "image": OPERATOR_IMAGE,
                        "monitorsPerReplica": 2,
                        "maxReplicas": 3,
                        "allowPrivateTargets": allow_private_targets,
                    },
                    ingress={"className": "nginx", "tls": True},
                    web={"publicUrl": "https://status.example.test"},
                    status={"intervalSeconds": 0.5, "refreshSeconds": 2, "maxPatchesPerSecond": 200},
                    secretRefreshSeconds=retry_seconds,
                )
            )
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        log = self.tmp / f"operator-{len(self.logs)}.log"
        self.logs.append(log)
        command = [
            SPECTRA,
            "-v",
            "operator",
            "--config",
            str(self.config),
            "--database",
            self.database,
            "--kubeconfig",
            str(self.cluster.kubeconfig),
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self.cluster.env())
        wait_for(lambda: get(f"http://127.0.0.1:{self.port}/readyz")[0] == 200 or self._died(), "operator ready")
        assert self.process.poll() is None, self.log_text()

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    @property
    def pid(self) -> int:
        assert self.process is not None, "the operator is not running"
        return self.process.pid

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def log_text(self, index: int = -1) -> str:
        return self.logs[index].read_text(errors="replace") if self.logs else ""


def condition(cluster: ClusterEmulator, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
    """The Ready condition of an object once the operator has written one ({} before)."""
    body = cluster.get(resource, namespace, name)
    for found in ((body or {}).get("status") or {}).get("conditions") or []:
        if found.get("type") == "Ready":
            return dict(found)
    return {}


def ready(cluster: ClusterEmulator, resource: str, namespace: str | None, name: str) -> bool:
    return condition(cluster, resource, namespace, name).get("status") == "True"


def finalized(cluster: ClusterEmulator, resource: str, namespace: str | None, name: str) -> bool:
    """Ready, and held by our finalizer."""
    body = cluster.get(resource, namespace, name) or {"metadata": {}}
    return ready(cluster, resource, namespace, name) and FINALIZER in body["metadata"].get("finalizers", [])


def status(cluster: ClusterEmulator, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
    """An object's .status ({} while it has none, or no object)."""
    found: dict[str, Any] = (cluster.get(resource, namespace, name) or {}).get("status") or {}
    return found
