"""Saturation: the real `spectra run` on one core with more 1 s monitors than that core can check, every
target healthy. How many checks did it report down? (Target: none.)

A probe that is behind its own schedule cannot tell its lateness from a slow target unless it measures
it (spectra.probe.lag): a check that waited for the busy event loop, or that started far behind its slot
and then ran out of time, is "probe stalled" (no verdict, not stored, not counted toward a threshold),
never DOWN.

- **Target**, on the target core: the bench's own HTTP responder (bench.targets), `200 ok` to everything.
- **Probe**: `spectra run` (probe, alerter, writer, console hub in one process, on SQLite) pinned to the
  probe core with `MONITORS[mode]` http monitors at a 1 s interval and the default timeout (half the
  interval: 0.5 s, the tightest a 1 s monitor gets), about twice what one core checks per second, so the
  core stays at ~100 %.
- After the worker's first checks and a warm-up, a window of `WINDOW_S[mode]` seconds: checks by status
  from the process's /metrics, its CPU seconds (user + system) over the window's wall time
  (`probe_cpu_utilisation`, 1.0 = one core), slots it could not run (`missed_slots`).
- `down_checks` counts every DOWN result stored over the whole run (warm-up and start-up included, from
  the check_results table); `met` needs it to be 0 and the probe to have been saturated
  (`probe_cpu_utilisation` >= SATURATED, or slots missed for being behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

from bench.targets import BenchCA, Targets, cpu_seconds, free_port_outside_ephemeral_range

SPECTRA: Final = str(Path(sys.executable).with_name("spectra"))
MONITORS: Final = {"quick": 5000, "default": 6000, "full": 8000}
WINDOW_S: Final = {"quick": 10.0, "default": 30.0, "full": 60.0}
WARM_UP_S: Final = 5.0
START_TIMEOUT_S: Final = 180.0  # loading thousands of manifests on a busy core takes a while
SATURATED: Final = 0.9  # of one core: the probe was busy all the time
TARGET_DOWN_CHECKS: Final = 0

MONITOR = """\
---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {{name: sat-{i}}}
spec:
  type: http
  interval: 1s
  http:
    url: "http://127.0.0.1:{port}/health?m={i}"
    expect: {{status: [200], bodyContains: ok}}
"""

_SAMPLE = re.compile(r"^(spectra_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$")


def manifests(count: int, port: int) -> str:
    return "".join(MONITOR.format(i=i, port=port) for i in range(count))


def _scrape(url: str) -> dict[str, float]:
    """The process's spectra_* samples, keyed by name and labels as printed."""
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a loopback URL we built
        text = answer.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def _checks(samples: dict[str, float], status: str) -> float:
    return sum(
        value
        for key, value in samples.items()
        if key.startswith("spectra_checks_total{") and f'status="{status}"' in key
    )


async def _scrape_soon(url: str) -> dict[str, float] | None:
    try:
        return await asyncio.to_thread(_scrape, url)
    except OSError:
        return None


def _pinned(cpu: int | None) -> Any:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _stored(database: Path) -> dict[str, int]:
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT status, COUNT(*) FROM check_results GROUP BY status"))
            return {str(status): int(count) for status, count in rows}
    finally:
        engine.dispose()


def _down_reasons(database: Path) -> dict[str, int]:
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT reason, COUNT(*) FROM check_results WHERE status = 'down' "
                    "GROUP BY reason ORDER BY COUNT(*) DESC LIMIT 5"
                )
            )
            return {str(reason): int(count) for reason, count in rows}
    finally:
        engine.dispose()


async def saturation(mode: str, probe_cpu: int | None, target_cpu: int | None) -> dict[str, Any]:
    """Run `spectra run` saturated on `probe_cpu` against healthy targets on `target_cpu`; count its downs."""
    monitors, window_s = MONITORS[mode], WINDOW_S[mode]
    with tempfile.TemporaryDirectory(prefix="bench-saturation-") as folder, Targets(BenchCA(), target_cpu) as targets:
        root = Path(folder)
        manifest = root / "monitors.yaml"
        manifest.write_text(manifests(monitors, targets.ports.http))
        database = root / "spectra.db"
        port = free_port_outside_ephemeral_range()
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        log_path = root / "spectra.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(  # noqa: S603 - our own command, arguments built here
                [SPECTRA, "run", "--database", f"sqlite:///{database}", "--listen", f"127.0.0.1:{port}", str(manifest)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_pinned(probe_cpu),  # noqa: PLW1509 - affinity only, before exec
                env={**os.environ, "SPECTRA_SECRET_KEY": "bench-saturation-" + "k" * 32},
            )
            try:
                window = await _window(process, metrics_url, monitors, window_s)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(process.wait, 30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    await asyncio.to_thread(process.wait, 10)
        stored = _stored(database)
        down_reasons = _down_reasons(database) if stored.get("down") else {}
        if "error" in window:
            window["log_tail"] = log_path.read_text(errors="replace")[-2000:]
    down = stored.get("down", 0)
    saturated = window.get("probe_cpu_utilisation", 0.0) >= SATURATED or window.get("missed_slots", 0) > 0
    return {
        "monitors": monitors,
        "interval_s": 1,
        "timeout_s": 0.5,
        "window_s": window_s,
        **window,
        "stored": stored,
        "down_checks": down,
        "down_reasons": down_reasons,
        "saturated": saturated,
        "target": f"== {TARGET_DOWN_CHECKS}",
        "met": down == TARGET_DOWN_CHECKS and saturated and "error" not in window,
    }


async def _window(process: subprocess.Popen[bytes], metrics_url: str, monitors: int, window_s: float) -> dict[str, Any]:
    """Wait for the worker's first checks and a warm-up, then measure one window of the running process."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            return {"error": f"spectra run exited with {process.returncode} before checking"}
        if time.monotonic() > deadline:
            return {"error": f"no check within {START_TIMEOUT_S:.0f} s"}
        samples = await _scrape_soon(metrics_url)
        if samples is not None and _checks(samples, "up") + _checks(samples, "stalled") >= monitors:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(WARM_UP_S)
    before = await _scrape_soon(metrics_url)
    cpu_before, wall_before = cpu_seconds(process.pid), time.monotonic()
    await asyncio.sleep(window_s)
    after = await _scrape_soon(metrics_url)
    cpu_after, wall_after = cpu_seconds(process.pid), time.monotonic()
    if before is None or after is None:
        return {"error": "/metrics did not answer"}
    wall = wall_after - wall_before

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    up = _checks(after, "up") - _checks(before, "up")
    stalled = _checks(after, "stalled") - _checks(before, "stalled")
    judged = sum(_checks(after, s) - _checks(before, s) for s in ("up", "degraded", "down"))
    return {
        "up_checks": int(up),
        "stalled_checks": int(stalled),
        "window_down_checks": int(_checks(after, "down") - _checks(before, "down")),
        "checks_per_s": round((judged + stalled) / wall, 1),
        "up_checks_per_s": round(up / wall, 1),
        "stalled_share": round(stalled / (judged + stalled), 4) if judged + stalled else 0.0,
        "missed_slots": int(delta("spectra_scheduler_missed_runs_total")),
        "probe_stalls": int(delta("spectra_probe_stalls_total")),
        "loop_lag_mean_s": round(
            delta("spectra_probe_loop_lag_seconds_sum") / max(1.0, delta("spectra_probe_loop_lag_seconds_count")), 4
        ),
        "probe_cpu_utilisation": round((cpu_after - cpu_before) / wall, 3),
    }
