"""Helpers for end-to-end tests: the spectra command, free ports, a target server, plain HTTP requests."""

from __future__ import annotations

import os
import random
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


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports handed to processes come from below the kernel's ephemeral range, so no socket bound to port 0
# (a server inside a test on the other pytest worker) can take one between this check and the process's
# own bind; each worker draws from its own stripe of that range, so two workers never pick the same one.
_PORTS = range(15000, _ephemeral_low())
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
_draw = random.Random()


def free_port(*types: int) -> int:
    """A loopback port that is free for every socket type given (TCP by default) right now."""
    kinds = types or (socket.SOCK_STREAM,)
    for _ in range(500):
        port = _draw.randrange(_PORTS.start, _PORTS.stop)
        if port % _WORKERS != _WORKER % _WORKERS:
            continue
        try:
            for kind in kinds:
                with socket.socket(socket.AF_INET, kind) as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found")


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


def evaluator_pids(parent: int) -> set[int]:
    """The evaluator processes (spectra.probe.evaluator) that process `parent` started, from /proc (Linux)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        if int(ppid) == parent and b"spectra.probe.evaluator" in command:
            found.add(int(entry.name))
    return found
