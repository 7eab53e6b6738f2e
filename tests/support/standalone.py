"""`spectra run` as the tests run it: a real process on a folder of manifests, its output in a file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.processes import SPECTRA, free_port, get
from tests.support.waiting import wait_for


class Run:
    """`spectra run MANIFESTS` on `database` (default: `spectra.db` in `tmp`) with `env` (default: this
    process's environment), listening on a free loopback port; `public_url`: SPECTRA_PUBLIC_URL is that
    address, so the links it mails lead back to it."""

    def __init__(
        self,
        tmp: Path,
        manifests: Path,
        *,
        database: str | None = None,
        env: Mapping[str, str] | None = None,
        public_url: bool = False,
    ) -> None:
        self.port = free_port()
        env = {**(os.environ if env is None else env)}
        if public_url:
            env["SPECTRA_PUBLIC_URL"] = self.base
        self.log = tmp / f"spectra-{self.port}.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [
                SPECTRA,
                "run",
                str(manifests),
                "--database",
                database or f"sqlite:///{tmp / 'spectra.db'}",
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env={**env, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        """Until /readyz answers 200; fails with the log when the process ended instead."""
        wait_for(
            lambda: get(f"{self.base}/readyz")[0] == 200 or self.process.poll() is not None,
            "spectra run to be ready",
            timeout=timeout,
        )
        assert self.process.poll() is None, self.log_text()

    def monitors(self) -> dict[str, dict[str, Any]]:
        status, body = get(f"{self.base}/api/v1/monitors")
        if status != 200:
            return {}
        return {item["name"]: item for item in json.loads(body)}

    def state(self, name: str) -> str | None:
        return self.monitors().get(name, {}).get("state")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM; the process must exit 0."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout) == 0, self.log_text()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_file.close()
