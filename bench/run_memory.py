"""What 10,000 monitors cost `spectra run` in memory: the real process, empty and loaded.

Two runs of the real `spectra run` (a subprocess pinned to the harness core, SQLite in a temporary
folder), one after the other: "empty" holds one http monitor, "loaded" MONITORS generated http monitors
(one YAML file, each `interval: 60s` and `timeout: 5s`, its own URL on the bench's responder, `status: [200]` and
`bodyContains: ok`). The responder (bench.targets.Targets) runs on the other core. VmRSS is read from
/proc every second once the process serves (its manifests are then loaded and applied): for at least
two intervals plus 10 s (every monitor checked twice, two of the minutely rollups done; one interval
plus 2 s with --quick), then
until it stops rising (less than SETTLED_MB over the last 20 s, 4 with --quick), at most as long again.
`growth_mb` is the loaded process's settled RSS over the empty one's. Target (bench/README.md):
<= 60 MB at 10,000 monitors.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import spectra_run
from bench.statuspage import _fetch, _free_port
from bench.targets import BenchCA, Targets

TARGET_GROWTH_MB = 60.0
SETTLED_MB = 1.0  # RSS rose less than this over the size's `window_s`: settled
SECRET_KEY = "bench-run-memory-secret-key-0123456789abcdef"  # noqa: S105 - a throw-away key for a throw-away database


@dataclass(frozen=True)
class Size:
    monitors: int
    interval_s: int
    margin_s: int  # after the first interval: a second round of checks and the first two rollups (each minute)
    empty_s: int  # how long the empty process is watched at least
    window_s: int  # RSS rose less than SETTLED_MB over this many seconds: settled


SIZES = {
    "quick": Size(monitors=1_000, interval_s=10, margin_s=2, empty_s=4, window_s=4),
    "default": Size(monitors=10_000, interval_s=60, margin_s=70, empty_s=20, window_s=20),
    "full": Size(monitors=10_000, interval_s=60, margin_s=70, empty_s=20, window_s=20),
}


def manifest(count: int, interval_s: int, target_port: int) -> str:
    """`count` http monitors, one document each, every one with its own URL."""
    documents = [
        f"""apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata:
  name: svc-{i:05d}
spec:
  type: http
  interval: {interval_s}s
  timeout: 5s
  http:
    url: http://127.0.0.1:{target_port}/health?m={i}
    expect:
      status: [200]
      bodyContains: ok
"""
        for i in range(count)
    ]
    return "---\n".join(documents)


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def settled_rss(folder: Path, text: str, at_least_s: int, window_s: int, cpu: int | None) -> dict[str, Any]:
    """Start `spectra run` on `text`, wait until it serves, then watch its RSS until it settles."""
    (folder / "manifests").mkdir(parents=True)
    (folder / "manifests" / "monitors.yaml").write_text(text)
    port = _free_port()
    started = time.monotonic()
    process = spectra_run.start(
        folder / "manifests", f"sqlite:///{folder / 'spectra.db'}", port, cpu=cpu, folder=folder, secret_key=SECRET_KEY
    )
    try:
        while _fetch(f"http://127.0.0.1:{port}/healthz")[0] != 200:
            if process.poll() is not None:
                raise RuntimeError(f"spectra run exited: {(folder / 'run.log').read_text()[-2000:]}")
            if time.monotonic() - started > 300:
                raise RuntimeError("spectra run did not serve within 300 s")
            time.sleep(0.5)
        serving = time.monotonic()
        samples: list[float] = []
        limit = 2 * at_least_s
        while True:
            time.sleep(1.0)
            if process.poll() is not None:
                raise RuntimeError(f"spectra run exited: {(folder / 'run.log').read_text()[-2000:]}")
            samples.append(vm_rss_mb(process.pid))
            watched = time.monotonic() - serving
            window = samples[-window_s:]
            settled = len(window) == window_s and window[-1] - min(window) < SETTLED_MB
            if watched >= at_least_s and (settled or watched >= limit):
                break
    finally:
        spectra_run.stop(process)
    return {
        "rss_mb": round(max(samples[-window_s:]), 1),  # the top of the last window: no lucky dip
        "settled": settled,
        "start_to_serving_s": round(serving - started, 1),
        "watched_s": round(watched, 1),
        "rss_every_10_s": [round(sample, 1) for sample in samples[9::10]],
    }


def measure(mode: str, ca: BenchCA, probe_cpu: int | None, target_cpu: int | None) -> dict[str, Any]:
    size = SIZES[mode]
    with Targets(ca, target_cpu) as targets, tempfile.TemporaryDirectory(prefix="spectra-bench-run-memory-") as tmp:
        folder = Path(tmp)
        port = targets.ports.http
        one, many = manifest(1, size.interval_s, port), manifest(size.monitors, size.interval_s, port)
        empty = settled_rss(folder / "empty", one, size.empty_s, size.window_s, probe_cpu)
        loaded = settled_rss(folder / "loaded", many, size.interval_s + size.margin_s, size.window_s, probe_cpu)
        requests = targets.stats()["requests"]
    growth = loaded["rss_mb"] - empty["rss_mb"]
    return {
        "value": round(growth, 1),
        "unit": "MB RSS of spectra run over the empty process",
        "empty_mb": empty["rss_mb"],
        "loaded_mb": loaded["rss_mb"],
        "growth_mb": round(growth, 1),
        "target": f"<= {TARGET_GROWTH_MB:g}",
        "met": growth <= TARGET_GROWTH_MB,
        "settled": loaded["settled"],
        "monitors": size.monitors,
        "interval_s": size.interval_s,
        "waited_s": loaded["watched_s"],
        "target_requests": requests,
        "empty": empty,
        "loaded": loaded,
        "note": "empty: the same process with one http monitor; SQLite in a temporary folder; both pinned to the "
        "harness core, the responder on the other; RSS is the top of the last "
        f"{size.window_s} s once settled (or after twice the least wait)"
        + ("" if size.monitors == 10_000 else f"; {size.monitors:,} monitors at {size.interval_s} s, not scaled"),
    }


async def run_memory(mode: str, ca: BenchCA, probe_cpu: int | None, target_cpu: int | None) -> dict[str, Any]:
    """The measure, in a thread: its waiting is all sleeps and subprocesses."""
    return await asyncio.to_thread(measure, mode, ca, probe_cpu, target_cpu)
