"""Status patching at scale: how many `.status` patches the operator sends per minute for N monitors.

The real StatusPublisher reads a real store (SQLite file) and patches real objects over HTTP in the
Kubernetes API emulator the tests use (kmock, tests/support/kube.py). Time is simulated so half an hour
take seconds: every 10 s cycle a third of the monitors get a new check (30 s interval, so lastCheck,
latency and uptime move for every monitor twice a minute) and 1 % of the monitors change state per
minute. The count that matters is patches per minute in the steady state (after the first full
publish), compared with patching every object whose status changed at all ("naive").
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SIZES = {"quick": (100, 2), "default": (1000, 30), "full": (10000, 20)}  # monitors, simulated minutes
CYCLE_S = 10.0
CHECK_INTERVAL_S = 30.0
FLIPS_PER_MINUTE = 0.01  # share of monitors that change state each minute


def _measure(mode: str) -> dict[str, Any]:  # noqa: PLR0915 - one scenario, read top to bottom
    from spectra.api import parse_object
    from spectra.operator.kube import Kube, load_config
    from spectra.operator.publisher import StatusPublisher, TokenBucket
    from spectra.operator.settings import StatusSettings
    from spectra.reconcile import CLUSTER_SOURCE, apply_one
    from spectra.store import Monitor as MonitorRow
    from spectra.store import make_engine, save_states, session_factory, upgrade
    from tests.factories.manifests import monitor
    from tests.support.kube import MONITORS, ClusterEmulator

    monitors, minutes = SIZES[mode]
    rng = random.Random(7)  # noqa: S311 - simulated latencies, reproducible
    with tempfile.TemporaryDirectory() as tmp, ClusterEmulator(None, Path(tmp) / "cluster") as cluster:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        names = [f"m{i:05d}" for i in range(monitors)]
        with sessions() as session:
            for name in names:
                body = monitor(name, url=f"https://example.com/{name}")
                cluster.create(MONITORS, body)
                apply_one(session, parse_object(body), CLUSTER_SOURCE)
            session.commit()
            ids = dict(session.query(MonitorRow.name, MonitorRow.resource_id).all())

        start = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
        now = start
        state = dict.fromkeys(names, "up")

        def write_checks(names_checked: list[str]) -> None:
            rows = [
                {
                    "monitor_id": ids[name],
                    "location": "default",
                    "state": state[name],
                    "last_status": state[name],
                    "consecutive_failures": 3 if state[name] == "down" else 0,
                    "consecutive_successes": 0 if state[name] == "down" else 3,
                    "last_check_at": now,
                    "last_latency_ms": round(rng.uniform(20, 80), 1),
                    "last_reason": "",
                    "changed_at": now,
                    "facts": None,
                }
                for name in names_checked
            ]
            with sessions() as session:
                save_states(session, rows)
                session.commit()

        write_checks(names)
        _seed_rollups(engine, list(ids.values()), start)
        settings = StatusSettings()  # the defaults: 10 s cycles, 300 s refresh, 20 patches/s

        kube = Kube(load_config(str(cluster.kubeconfig)))
        publisher = StatusPublisher(
            sessions,
            kube,
            settings,
            clock=lambda: now,
            monotonic=lambda: (now - start).total_seconds(),  # noqa: PLW0108 - `now` moves; read it late
        )
        # Time is simulated: the bucket's real-time pacing is left out (it would only stretch the run);
        # how many patches a cycle may send, which follows from the same settings, is kept.
        publisher.bucket = TokenBucket(1e9)
        loop = asyncio.new_event_loop()
        try:
            started = time.perf_counter()
            initial = loop.run_until_complete(publisher.cycle())
            initial_s = time.perf_counter() - started
            patches: list[int] = []
            naive: list[int] = []
            cycle_ms: list[float] = []
            previous = {key: fact.merged() for key, fact in publisher._collect().items()}
            cycles = int(minutes * 60 / CYCLE_S)
            owed = 0.0  # state changes due, carried between cycles
            for cycle in range(cycles):
                now = start + timedelta(seconds=CYCLE_S * (cycle + 1))
                owed += monitors * FLIPS_PER_MINUTE * CYCLE_S / 60
                flips = rng.sample(names, int(owed))
                owed -= int(owed)
                for name in flips:
                    state[name] = "down" if state[name] == "up" else "up"
                share = int(CHECK_INTERVAL_S / CYCLE_S)
                checked = [name for i, name in enumerate(names) if i % share == cycle % share]
                write_checks(sorted(set(checked) | set(flips)))
                facts = {key: fact.merged() for key, fact in publisher._collect().items()}
                naive.append(sum(1 for key, merged in facts.items() if previous.get(key) != merged))
                previous = facts
                started = time.perf_counter()
                patches.append(loop.run_until_complete(publisher.cycle()))
                cycle_ms.append((time.perf_counter() - started) * 1000)
            collect_ms = {}
            for label, uptime in (("with_uptime", True), ("without_uptime", False)):
                timings = []
                for _ in range(3):
                    started = time.perf_counter()
                    publisher._collect(uptime)
                    timings.append((time.perf_counter() - started) * 1000)
                collect_ms[label] = round(statistics.median(timings), 1)
        finally:
            loop.close()
            engine.dispose()
        per_minute = sum(patches) / minutes
        naive_per_minute = sum(naive) / minutes
        return {
            "value": round(per_minute, 1),
            "unit": "status patches per minute (steady state)",
            "monitors": monitors,
            "simulated_minutes": minutes,
            "naive_patches_per_minute": round(naive_per_minute, 1),
            "reduction": round(naive_per_minute / per_minute, 1) if per_minute else None,
            "events_per_minute": round(publisher.events / minutes, 1),
            "state_changes_per_minute": round(monitors * FLIPS_PER_MINUTE, 1),
            "initial_full_publish": {
                "patches": initial,
                "seconds_unpaced": round(initial_s, 2),
                "seconds_at_max_patches_per_second": round(initial / settings.max_patches_per_second, 1),
            },
            "patches_seen_by_api_server": cluster.status_patches(MONITORS),
            "store_read_ms": collect_ms,
            "cycle_ms": {
                "p50": round(statistics.median(cycle_ms), 1),
                "max": round(max(cycle_ms), 1),
            },
            "settings": {
                "interval_s": settings.interval_seconds,
                "refresh_s": settings.refresh_seconds,
                "max_patches_per_second": settings.max_patches_per_second,
            },
            "target": "no flood: steady state well below one patch per monitor per minute",
            "met": per_minute < monitors,
        }


def _seed_rollups(engine: Any, monitor_ids: list[int], now: datetime) -> None:
    """24 hourly and 30 daily rollups per monitor, as a month of history leaves (what uptime reads)."""
    from sqlalchemy import insert

    from spectra.store import DailyRollup, HourlyRollup

    hour = now.replace(minute=0, second=0, microsecond=0)
    buckets = ((HourlyRollup, timedelta(hours=1), 24, 120), (DailyRollup, timedelta(days=1), 30, 2880))
    for model, step, count, checks in buckets:
        rows = [
            {
                "monitor_id": monitor_id,
                "location": "default",
                "bucket_start": hour - step * back,
                "checks_total": checks,
                "checks_up": checks - (monitor_id + back) % 3,
                "checks_degraded": 0,
                "checks_down": (monitor_id + back) % 3,
                "latency_count": checks,
                "latency_sum_ms": 40.0 * checks,
                "latency_max_ms": 300.0,
            }
            for monitor_id in monitor_ids
            for back in range(count)
        ]
        with engine.begin() as connection:
            for chunk in range(0, len(rows), 20_000):
                connection.execute(insert(model.__table__), rows[chunk : chunk + 20_000])


async def status_patching(mode: str) -> dict[str, Any]:
    return await asyncio.to_thread(_measure, mode)
