"""Helpers for end-to-end tests: the spectra command, free ports, a target server, plain HTTP requests."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.waiting import wait_for

SPECTRA = str(Path(sys.executable).with_name("spectra"))


def run_spectra(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the installed `spectra` command to completion; its exit code, stdout and stderr."""
    return subprocess.run(
        [SPECTRA, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Target:
    """A real HTTP server in its own process that the test stops and starts."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.root = tmp / "www"
        self.root.mkdir()
        (self.root / "index.html").write_text("hello")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1", "--directory", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _connects(self.port), "target to listen")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def get(url: str, method: str = "GET", host: str | None = None) -> tuple[int, str]:
    """Status and body; 0 when nothing answers (within 5 s). `host` sets the Host header (name-based pages)."""
    request = urllib.request.Request(url, method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""
