"""Peers: SpectraMonitor's check engine and Prometheus blackbox_exporter doing the same plain HTTP checks
on the same core, against the same targets, in one run.

- **Targets**, on the target core: nginx (Debian's package) answering `GET /health` with `200 ok` from a
  `return` directive (one worker, no access log), and the bench's own responder (bench.targets).
- **blackbox_exporter** (Debian's prometheus-blackbox-exporter) pinned to the probe core, with one module
  that asks what SpectraMonitor's monitors ask: status 200 and a body matching `ok`, IPv4, no redirects.
  Each of its probes opens a fresh connection, as each SpectraMonitor check does. Probes are asked for by
  `wrk -t1 -c32` on the target core (as Prometheus would scrape it), with a Lua script counting answers
  without `probe_success 1`: only successful probes count.
- **SpectraMonitor**: the check engine of the `http` measure (`run_check` with a standalone context, 32
  checks in flight) in this process, on the probe core; only UP results count.

Each side runs `runs` times (3; 1 with `--quick`) for `window_s` seconds (5; 1 with `--quick`) after a
warm-up, the two alternating. `checks_per_s` are successful checks per second of the window;
`cpu_s_per_1000` the probe process's CPU seconds (user + system) per 1,000 of them. Per target, the medians
and `cpu_ratio` = SpectraMonitor's `cpu_s_per_1000` over blackbox's (<= 1.0: cheaper per check) and
`rate_ratio` = checks/s over probes/s (>= 1.0: faster). `met` needs both against nginx.

nginx and the exporter are installed with apt-get when missing (and this is root); otherwise skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import probe
from bench.targets import BenchCA, Targets, cpu_seconds, free_port_outside_ephemeral_range, pin

NGINX = "/usr/sbin/nginx"
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
PACKAGES = ("nginx-light", "prometheus-blackbox-exporter")
CONNECTIONS = 32
TARGET_CPU_RATIO = 1.0  # SpectraMonitor's CPU per check over blackbox's: at most this
TARGET_RATE_RATIO = 1.0  # SpectraMonitor's checks/s over blackbox's: at least this

BLACKBOX_CONFIG = """\
modules:
  bench_http:
    prober: http
    timeout: 10s
    http:
      valid_status_codes: [200]
      method: GET
      no_follow_redirects: true
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      fail_if_body_not_matches_regexp: ["ok"]
"""

NGINX_CONFIG = """\
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /health {{ default_type text/plain; return 200 "ok\\n"; }}
  }}
}}
"""

# Counts answers that are not a successful probe; wrk's own count is every answer.
WRK_SCRIPT = """\
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) failed = 0 end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, "probe_success 1", 1, true) then failed = failed + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("failed") end
  io.write(string.format("FAILED %d\\n", total))
end
"""


@dataclass(frozen=True)
class Run:
    checks_per_s: float
    cpu_s_per_1000: float | None
    failed: int

    def as_dict(self) -> dict[str, Any]:
        return {"checks_per_s": self.checks_per_s, "cpu_s_per_1000": self.cpu_s_per_1000, "failed": self.failed}


def ensure_installed() -> str | None:
    """None when nginx and the exporter are there (installed now if need be); else why they are not."""
    if os.path.exists(NGINX) and os.path.exists(BLACKBOX):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"needs {' and '.join(PACKAGES)} (apt-get install {' '.join(PACKAGES)})"
    done = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],  # noqa: S607 - apt-get from PATH
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        timeout=600,
    )
    if done.returncode != 0 or not (os.path.exists(NGINX) and os.path.exists(BLACKBOX)):
        return f"apt-get install {' '.join(PACKAGES)} failed: {done.stderr.strip()[-300:]}"
    return None


def _pinned(cpu: int | None) -> Any:
    return lambda: pin(cpu)


@contextlib.contextmanager
def _process(command: list[str], cpu: int | None, ready_port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server process pinned to `cpu`, up once `ready_port` accepts; stopped (and reaped) on exit."""
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_pinned(cpu),  # noqa: PLW1509 - only the affinity, then exec
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}: {log.read_text()[-500:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", ready_port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not listen on {ready_port} within 15 s")
            time.sleep(0.05)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _version(binary: str) -> str:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


@dataclass(frozen=True)
class Exporter:
    process: subprocess.Popen[bytes]
    port: int
    script: Path  # wrk's Lua script that counts failed probes


def _blackbox_run(url: str, exporter: Exporter, seconds: float, cpu: int | None) -> Run:
    """wrk asks the exporter for probes of `url` for `seconds`; its CPU per successful probe."""
    probe_url = f"http://127.0.0.1:{exporter.port}/probe?module=bench_http&target={url}"
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s",
               str(exporter.script), probe_url]  # fmt: skip
    before = cpu_seconds(exporter.process.pid)
    done = subprocess.run(command, capture_output=True, text=True, check=False, preexec_fn=_pinned(cpu))  # noqa: S603
    used = cpu_seconds(exporter.process.pid) - before
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip()[-300:]}")
    answered = re.search(r"(\d+) requests in ([\d.]+)(m?s)", done.stdout)
    failed = re.search(r"FAILED (\d+)", done.stdout)
    if answered is None or failed is None:
        raise RuntimeError(f"could not read wrk's output: {done.stdout[-300:]!r}")
    window = float(answered.group(2)) / (1000 if answered.group(3) == "ms" else 1)
    good = int(answered.group(1)) - int(failed.group(1))
    # The exporter's CPU is taken over wrk's whole life (a few ms longer than its window): a little more
    # than the window's work, never less.
    return Run(round(good / window, 1), round(used / good * 1000, 3) if good else None, int(failed.group(1)))


async def _spectra_run(url: str, client_ssl: Any, window_s: float, warmup_s: float, cpu: int | None) -> Run:
    requests = [probe.monitor(probe.http_spec(url), f"peer-{i}", i) for i in range(16)]
    config = probe.Config("peers", window_s, warmup_s, {"http": CONNECTIONS}, 0, 1.0, 0, 0, (), 0, 1.0)
    result = await probe.saturate("http", requests, probe.standalone_context(client_ssl), config, probe_core=cpu)
    rate = result["up_checks_per_probe_cpu_s"]
    checks = sum(result["statuses"].values())
    return Run(result["value"], round(1000 / rate, 3) if rate else None, checks - result["statuses"].get("up", 0))


def _median(runs: list[Run], key: str) -> float | None:
    values = [getattr(run, key) for run in runs if getattr(run, key) is not None]
    return round(statistics.median(values), 3) if values else None


def _compare(spectra: list[Run], blackbox: list[Run]) -> dict[str, Any]:
    ours_cpu, theirs_cpu = _median(spectra, "cpu_s_per_1000"), _median(blackbox, "cpu_s_per_1000")
    ours_rate, theirs_rate = _median(spectra, "checks_per_s"), _median(blackbox, "checks_per_s")
    cpu_ratio = round(ours_cpu / theirs_cpu, 3) if ours_cpu and theirs_cpu else None
    rate_ratio = round(ours_rate / theirs_rate, 3) if ours_rate and theirs_rate else None
    return {
        "spectra": {"checks_per_s": ours_rate, "cpu_s_per_1000": ours_cpu, "runs": [r.as_dict() for r in spectra]},
        "blackbox_exporter": {
            "checks_per_s": theirs_rate,
            "cpu_s_per_1000": theirs_cpu,
            "runs": [r.as_dict() for r in blackbox],
        },
        "cpu_ratio": cpu_ratio,
        "rate_ratio": rate_ratio,
        "met": cpu_ratio is not None
        and rate_ratio is not None
        and cpu_ratio <= TARGET_CPU_RATIO
        and rate_ratio >= TARGET_RATE_RATIO,
    }


async def peers(
    mode: str, client_ssl: Any, ca: BenchCA, probe_cpu: int | None, target_cpu: int | None
) -> dict[str, Any]:
    missing = await asyncio.to_thread(ensure_installed)
    if missing is not None:
        return {"skipped": missing, "met": None}
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)", "met": None}
    quick = mode == "quick"
    runs, window_s, warmup_s = (1, 1.0, 0.3) if quick else (3, 5.0, 1.0)
    with tempfile.TemporaryDirectory(prefix="spectra-bench-peers-") as name, contextlib.ExitStack() as stack:
        folder = Path(name)
        nginx_port, blackbox_port = free_port_outside_ephemeral_range(), free_port_outside_ephemeral_range()
        (folder / "nginx.conf").write_text(NGINX_CONFIG.format(folder=folder, port=nginx_port))
        (folder / "blackbox.yml").write_text(BLACKBOX_CONFIG)
        script = folder / "count.lua"
        script.write_text(WRK_SCRIPT)
        nginx = [NGINX, "-c", str(folder / "nginx.conf"), "-p", str(folder)]
        stack.enter_context(_process(nginx, target_cpu, nginx_port, folder / "nginx.out"))
        listen = f"--web.listen-address=127.0.0.1:{blackbox_port}"
        blackbox = [BLACKBOX, f"--config.file={folder / 'blackbox.yml'}", listen]
        process = stack.enter_context(_process(blackbox, probe_cpu, blackbox_port, folder / "blackbox.out"))
        exporter = Exporter(process, blackbox_port, script)
        builtin = stack.enter_context(Targets(ca, target_cpu))
        urls = {
            "nginx": f"http://127.0.0.1:{nginx_port}/health",
            "builtin": f"http://127.0.0.1:{builtin.ports.http}/health",
        }
        against: dict[str, Any] = {}
        for target, url in urls.items():
            ours: list[Run] = []
            theirs: list[Run] = []
            await asyncio.to_thread(_blackbox_run, url, exporter, warmup_s, target_cpu)
            for _ in range(runs):
                theirs.append(await asyncio.to_thread(_blackbox_run, url, exporter, window_s, target_cpu))
                ours.append(await _spectra_run(url, client_ssl, window_s, warmup_s, probe_cpu))
            against[target] = _compare(ours, theirs)
        versions = {"blackbox_exporter": _version(BLACKBOX), "nginx": _nginx_version()}
    return {
        "against": against,
        "cpu_ratio": against["nginx"]["cpu_ratio"],
        "rate_ratio": against["nginx"]["rate_ratio"],
        "target": {"cpu_ratio": f"<= {TARGET_CPU_RATIO:g}", "rate_ratio": f">= {TARGET_RATE_RATIO:g}"},
        "met": against["nginx"]["met"],
        "runs": runs,
        "window_s": window_s,
        "connections": CONNECTIONS,
        "versions": versions,
        "load_generator": "wrk -t1 on the target core asks the exporter for probes; the harness runs its own checks",
    }


def _nginx_version() -> str:
    done = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False)  # noqa: S603
    return done.stderr.strip() or done.stdout.strip()
