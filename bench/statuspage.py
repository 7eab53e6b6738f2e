"""Status page serving: one page of 50 components x 90 days of history, `spectra web` on one core, wrk on the other.

The database is a fresh SQLite file: 50 http monitors and a StatusPage (5 groups of 10 components, one
monitor each, historyDays 90) applied through the manifest loader, and 90 daily rollups per monitor
inserted directly (a few bad days, so the bars are not all green). The server is the real
`spectra web` command in a child process pinned to the target core (uvicorn, one worker); the load
generator is `wrk` (keep-alive, a fixed number of connections) pinned to the harness's core. Two runs:
plain GETs of `/s/{slug}` (full HTML, 200), then the same with `If-None-Match: <ETag>` (304).
Target (the table in bench/README.md): >= 1,000 requests/s and p99 <= 25 ms on one core.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.targets import cpu_seconds

COMPONENTS = 50
GROUPS = 5
DAYS = 90
SLUG = "bench"
TARGET_RPS = 1000
TARGET_P99_MS = 25.0
CONNECTIONS = 8  # keep-alive clients; latency ~ connections / throughput (Little's law)


def manifests() -> str:
    docs = []
    for i in range(COMPONENTS):
        docs.append(
            f"apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {{name: svc-{i:02d}}}\n"
            f"spec: {{type: http, interval: 1m, http: {{url: 'https://svc-{i:02d}.example.com/'}}}}\n"
        )
    groups = []
    per_group = COMPONENTS // GROUPS
    for g in range(GROUPS):
        components = "\n".join(
            f"        - name: Service {i:02d}\n          description: The **{i:02d}** service.\n"
            f"          monitors: [svc-{i:02d}]"
            for i in range(g * per_group, (g + 1) * per_group)
        )
        groups.append(f"    - name: Group {g}\n      components:\n{components}")
    page = (
        "apiVersion: spectra.dev/v1alpha1\nkind: StatusPage\nmetadata: {name: bench}\nspec:\n"
        f"  slug: {SLUG}\n  title: Bench Inc. status\n  description: Fifty components, **ninety** days.\n"
        f"  historyDays: {DAYS}\n  subscriptions: {{enabled: true}}\n  groups:\n" + "\n".join(groups) + "\n"
    )
    return "---\n".join([*docs, page])


def seed(folder: Path) -> str:
    """Write the manifests, apply them to a new SQLite file and insert the history; returns the database URL."""
    from sqlalchemy import insert, select

    from spectra.manifests import load_paths
    from spectra.reconcile import MANIFEST_SOURCE, apply_set
    from spectra.store import Monitor as MonitorRow
    from spectra.store import make_engine, session_factory, upgrade
    from spectra.store.results import DAILY

    (folder / "page.yaml").write_text(manifests())
    loaded = load_paths([folder / "page.yaml"])
    if loaded.errors:
        raise RuntimeError("; ".join(map(str, loaded.errors)))
    url = f"sqlite:///{folder / 'bench.db'}"
    engine = make_engine(url)
    try:
        upgrade(engine)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            apply_set(session, [item.resource for item in loaded.resources], MANIFEST_SOURCE, secrets=loaded)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        rng = random.Random(7)  # noqa: S311 - test data, not a secret
        rows = []
        with sessions() as session:
            ids = list(session.scalars(select(MonitorRow.resource_id)))
        for monitor_id in ids:
            for back in range(DAYS):
                down = rng.choice([0] * 12 + [3, 30, 200])
                degraded = rng.choice([0] * 8 + [10])
                rows.append(
                    {
                        "monitor_id": monitor_id,
                        "location": "default",
                        "bucket_start": today - timedelta(days=back),
                        "checks_total": 1440,
                        "checks_up": 1440 - down - degraded,
                        "checks_degraded": degraded,
                        "checks_down": down,
                        "latency_count": 1440 - down,
                        "latency_sum_ms": 40.0 * (1440 - down),
                        "latency_max_ms": 900.0,
                    }
                )
        with engine.begin() as connection:
            connection.execute(insert(DAILY), rows)
    finally:
        engine.dispose()
    return url


def _fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - http://127.0.0.1 only
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    except OSError:
        return 0, {}, b""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return round(float(match.group(1)) * _UNITS[match.group(2)], 3)


def parse_wrk(output: str) -> dict[str, Any]:
    """requests/s, request count, latency percentiles and errors from `wrk --latency` output."""
    percentiles = {f"p{m.group(1)}": _ms(m.group(2)) for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+\w+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    if rps is None or total is None or "p99" not in percentiles:
        raise ValueError(f"could not read wrk's output: {output[-500:]!r}")
    return {
        "requests_per_s": round(float(rps.group(1)), 1),
        "requests": int(total.group(1)),
        "latency_ms": percentiles,
        "non_2xx_3xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else None,
    }


def _wrk(url: str, duration_s: int, connections: int, headers: dict[str, str]) -> dict[str, Any]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [*command, url], capture_output=True, text=True, timeout=duration_s + 30, check=True
    )
    return parse_wrk(done.stdout)


def _server(database_url: str, port: int, cpu: int | None, log: Path) -> subprocess.Popen[bytes]:
    """`spectra web` pinned to `cpu` (set before exec, so every thread it starts is pinned too)."""
    pin = f"import os; os.sched_setaffinity(0, {{{cpu}}}); " if cpu is not None else ""
    code = pin + "from spectra.cli import cli; cli()"
    args = ["web", "--database", database_url, "--listen", f"127.0.0.1:{port}"]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    env |= {"SPECTRA_SECRET_KEY": "bench-statuspage-secret-key-0123456789", "SPECTRA_PUBLIC_URL": "http://127.0.0.1"}
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
            [sys.executable, "-c", code, *args], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _measure(mode: str, probe_cpu: int | None, target_cpu: int | None) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)", "met": None}
    duration_s = 2 if mode == "quick" else 10
    with tempfile.TemporaryDirectory(prefix="spectra-bench-page-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        database_url = seed(folder)
        seed_s = round(time.perf_counter() - started, 2)
        port = _free_port()
        process = _server(database_url, port, target_cpu, folder / "web.log")
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            status, headers, body = 0, dict[str, str](), b""
            while time.monotonic() < deadline and status != 200:
                if process.poll() is not None:
                    raise RuntimeError(f"spectra web exited: {(folder / 'web.log').read_text()[-2000:]}")
                status, headers, body = _fetch(f"{base}/s/{SLUG}")
                if status != 200:
                    time.sleep(0.1)
            if status != 200:
                raise RuntimeError(f"the page did not come up (status {status})")
            etag = headers.get("ETag") or headers.get("etag") or ""
            revalidated, _, _ = _fetch(f"{base}/s/{SLUG}", {"If-None-Match": etag})
            page_bytes = len(body)
            _fetch(f"{base}/s/{SLUG}", {"Accept-Encoding": "gzip"})
            cpu_before = cpu_seconds(process.pid)
            full = _wrk(f"{base}/s/{SLUG}", duration_s, CONNECTIONS, {})
            cpu_full = cpu_seconds(process.pid) - cpu_before
            cpu_before = cpu_seconds(process.pid)
            not_modified = _wrk(f"{base}/s/{SLUG}", duration_s, CONNECTIONS, {"If-None-Match": etag})
            cpu_304 = cpu_seconds(process.pid) - cpu_before
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        full["server_cpu_utilisation"] = round(cpu_full / duration_s, 2)
        not_modified["server_cpu_utilisation"] = round(cpu_304 / duration_s, 2)
        value, p99 = full["requests_per_s"], full["latency_ms"]["p99"]
        return {
            "value": value,
            "unit": "requests/s",
            "target": {"requests_per_s": f">= {TARGET_RPS}", "p99_ms": f"<= {TARGET_P99_MS:g}"},
            "met": value >= TARGET_RPS and p99 <= TARGET_P99_MS and full["non_2xx_3xx"] == 0,
            "latency_ms": full["latency_ms"],
            "full_page": full,
            "not_modified": {**not_modified, "status_of_revalidation": revalidated},
            "page": {
                "components": COMPONENTS,
                "history_days": DAYS,
                "html_bytes": page_bytes,
                "etag": bool(etag),
                "path": f"/s/{SLUG}",
            },
            "duration_s": duration_s,
            "connections": CONNECTIONS,
            "load_generator": "wrk -t1 (keep-alive), pinned to the harness core",
            "server": "spectra web (uvicorn, one process), pinned to the target core",
            "server_cpu": target_cpu,
            "client_cpu": probe_cpu,
            "seed_s": seed_s,
        }


async def page_throughput(mode: str, probe_cpu: int | None, target_cpu: int | None) -> dict[str, Any]:
    return await asyncio.to_thread(_measure, mode, probe_cpu, target_cpu)
