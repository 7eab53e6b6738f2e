"""The probe benchmarks: checks per second on one core, scheduling lag, memory per monitor, latency accuracy.

Every measure returns a JSON-ready dict with its `value`, its `target` (the targets in bench/README.md)
next to it and `met`. Checks go through the real path: `MonitorSpec.model_validate` -> `CheckRequest` -> `run_check`
with a standalone `CheckContext` that trusts the bench CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import multiprocessing
import os
import ssl
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from spectra.api.monitor import MonitorSpec
from spectra.domain.egress import EgressGuard, EgressPolicy
from spectra.probe.checks import run_check
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import CheckResult


@dataclass(frozen=True)
class Config:
    mode: str
    duration_s: float  # measuring window of each saturating run
    warmup_s: float  # discarded run before it: client, imports, caches
    concurrency: dict[str, int]  # checks in flight per saturating run, by check type
    sched_monitors: int
    sched_interval_s: float
    sched_cycles: int  # full intervals measured after the ramp
    rss_monitors: int
    latency_delays_ms: tuple[int, ...]
    latency_checks: int  # per injected delay
    latency_rate_per_s: float  # checks started per second (open loop)


_CONCURRENCY = {"http": 32, "https": 32, "tcp": 64, "dns": 64, "icmp": 64}
QUICK = Config("quick", 1.0, 0.3, _CONCURRENCY, 500, 2.0, 1, 1_000, (50, 200), 20, 50.0)
# 2,000 monitors every 6 s is the same 333 checks/s as 20,000 every 60 s (see README).
DEFAULT = Config("default", 15.0, 1.5, _CONCURRENCY, 2_000, 6.0, 3, 10_000, (50, 200), 200, 50.0)
FULL = Config("full", 15.0, 2.0, _CONCURRENCY, 20_000, 60.0, 1, 10_000, (50, 200), 500, 50.0)
MODES = {config.mode: config for config in (QUICK, DEFAULT, FULL)}

# Each target, as in the table of bench/README.md; None: no target there, the number is for reference.
TARGETS: dict[str, tuple[str, Callable[[float], bool]] | None] = {
    "http": (">= 1500", lambda v: v >= 1500),
    "https": (">= 500", lambda v: v >= 500),
    "tcp": None,
    "dns": None,
    "icmp": None,
    "rss": ("<= 60", lambda v: v <= 60),
}
LAG_P99_TARGET_MS = 20.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def goal(name: str, value: float | None) -> dict[str, Any]:
    """`target` and `met` for one measure."""
    target = TARGETS.get(name)
    if target is None:
        return {"target": None, "met": None}
    text, test = target
    return {"target": text, "met": None if value is None else test(value)}


def standalone_context(ssl_context: ssl.SSLContext | None = None) -> CheckContext:
    """A context as standalone mode makes it (loopback allowed), trusting `ssl_context`'s CAs."""
    return CheckContext(
        egress=EgressGuard(EgressPolicy.standalone()), ssl_context=ssl_context or ssl.create_default_context()
    )


def monitor(spec: dict[str, Any], name: str, monitor_id: int = 0) -> CheckRequest:
    return CheckRequest("bench", name, MonitorSpec.model_validate(spec), monitor_id=monitor_id)


def http_spec(url: str) -> dict[str, Any]:
    # Realistic expectations, so the assertion path is part of what is measured.
    return {
        "type": "http",
        "interval": "60s",
        "timeout": "10s",
        "http": {"url": url, "expect": {"status": [200], "bodyContains": "ok"}},
    }


@dataclass(frozen=True)
class CoreTimes:
    """Busy and steal seconds of one core so far, from /proc/stat (USER_HZ ticks)."""

    busy: float
    steal: float

    @classmethod
    def read(cls, cpu: int | None) -> CoreTimes | None:
        if cpu is None:
            return None
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{cpu} "):
                user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in line.split()[1:9])
                tick = os.sysconf("SC_CLK_TCK")
                return cls((user + nice + system + irq + softirq) / tick, steal / tick)
        return None


def interference(before: CoreTimes | None, after: CoreTimes | None, own_cpu_s: float, wall_s: float) -> dict[str, Any]:
    """How much of the probe core went to other processes (other tests, the VM host) during a run.

    Well above zero means the number is lower than this code can do on a quiet core.
    """
    if before is None or after is None or wall_s <= 0:
        return {}
    others = max(0.0, after.busy - before.busy - own_cpu_s)
    return {
        "probe_core_used_by_others": round(others / wall_s, 3),
        "probe_core_steal": round((after.steal - before.steal) / wall_s, 3),
    }


# --- saturating runs --------------------------------------------------------------------------


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, result: CheckResult) -> None:
        self.statuses[str(result.status)] += 1
        if result.ok:
            if result.latency_ms is not None:
                self.latencies_ms.append(result.latency_ms)
        else:
            self.reasons[result.reason[:160]] += 1


async def _drive(requests: Sequence[CheckRequest], ctx: CheckContext, concurrency: int, seconds: float) -> Tally:
    """`concurrency` workers check back to back for `seconds`; only checks finished inside the window count."""
    tally = Tally()
    end = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        position = index
        while time.perf_counter() < end:
            result = await run_check(requests[position % len(requests)], ctx)
            position += concurrency
            if time.perf_counter() <= end:
                tally.add(result)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return tally


async def saturate(
    name: str,
    requests: Sequence[CheckRequest],
    ctx: CheckContext,
    config: Config,
    *,
    target_cpu: Callable[[], float] | None = None,
    probe_core: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Checks per second (UP results only) of a saturating run on this process's one core."""
    concurrency = config.concurrency[name]
    try:
        await _drive(requests, ctx, concurrency, config.warmup_s)
        core0 = CoreTimes.read(probe_core)
        cpu0, target0, wall0 = time.process_time(), target_cpu() if target_cpu else 0.0, time.perf_counter()
        tally = await _drive(requests, ctx, concurrency, config.duration_s)
        wall = time.perf_counter() - wall0
        probe_cpu = time.process_time() - cpu0
        core1 = CoreTimes.read(probe_core)
        target_used = (target_cpu() - target0) if target_cpu else None
    finally:
        await ctx.aclose()
    up = tally.statuses.get("up", 0)
    value = up / config.duration_s
    return {
        "value": round(value, 1),
        "unit": "checks/s (UP results only)",
        **goal(name, value),
        "checks": sum(tally.statuses.values()),
        "statuses": dict(tally.statuses),
        "not_up_reasons": dict(tally.reasons.most_common(3)),
        "duration_s": config.duration_s,
        "concurrency": concurrency,
        "latency_ms": {
            "p50": _r(percentile(tally.latencies_ms, 50)),
            "p99": _r(percentile(tally.latencies_ms, 99)),
        },
        # Near 1.0: the probe core was the limit. The target's share shows it was not the bottleneck.
        "probe_cpu_utilisation": round(probe_cpu / wall, 3),
        "up_checks_per_probe_cpu_s": round(up / probe_cpu, 1) if probe_cpu else None,
        "target_cpu_utilisation": None if target_used is None else round(target_used / wall, 3),
        **interference(core0, core1, probe_cpu, wall),
        **(extra or {}),
    }


# --- latency accuracy -------------------------------------------------------------------------


async def latency_accuracy(
    http_port: int, ssl_context: ssl.SSLContext, config: Config, probe_core: int | None = None
) -> dict[str, Any]:
    """HTTP checks against `/delay/<ms>`: how far the reported latency is from the injected delay.

    Checks start at a steady rate (open loop), as a scheduler spreads them over an interval; a burst
    of simultaneous checks would measure queueing on the probe core instead of the timer.
    """
    ctx = standalone_context(ssl_context)
    delays: dict[str, Any] = {}
    core0, cpu0, wall0 = CoreTimes.read(probe_core), time.process_time(), time.perf_counter()
    try:
        for delay in config.latency_delays_ms:
            request = monitor(http_spec(f"http://127.0.0.1:{http_port}/delay/{delay}"), f"delay-{delay}")
            await run_check(request, ctx)  # warm the client
            tasks = []
            for _ in range(config.latency_checks):
                tasks.append(asyncio.create_task(run_check(request, ctx)))
                await asyncio.sleep(1 / config.latency_rate_per_s)
            results = await asyncio.gather(*tasks)
            errors = [r.latency_ms - delay for r in results if r.ok and r.latency_ms is not None]
            delays[f"{delay}ms"] = {
                "injected_ms": delay,
                "checks": len(results),
                "up": sum(r.ok for r in results),
                "mean_error_ms": _r(sum(errors) / len(errors) if errors else None, 3),
                "p50_error_ms": _r(percentile(errors, 50), 3),
                "p99_error_ms": _r(percentile(errors, 99), 3),
                "min_error_ms": _r(min(errors, default=None), 3),
                "max_error_ms": _r(max(errors, default=None), 3),
            }
    finally:
        await ctx.aclose()
    return {
        "delays": delays,
        "checks_started_per_s": config.latency_rate_per_s,
        **interference(core0, CoreTimes.read(probe_core), time.process_time() - cpu0, time.perf_counter() - wall0),
        "target": None,
        "met": None,
        "note": "error = reported latency_ms - injected server delay. It includes a loopback TCP connect, "
        "sending the request and reading the response on a fresh connection, and the server's timer. "
        "No target (bench/README.md lists none).",
    }


# --- scheduling -------------------------------------------------------------------------------


def _stat(stats: Any, *names: str) -> Any:
    """A scheduler statistic by the first name that exists (a method is called)."""
    for name in names:
        value = getattr(stats, name, None)
        if value is not None:
            return value() if callable(value) else value
    return None


async def scheduling(
    tcp_port: int | None, config: Config, run_mode: str, probe_core: int | None = None
) -> dict[str, Any]:
    """Monitors ramped into the Scheduler while it runs; lag of every run and missed slots.

    run_mode "tcp": each run records its lag, then runs a real TCP connect check against the local
    target through run_check. "sleep": it records its lag and sleeps 5 ms (no network at all).
    """
    from spectra.probe.scheduler import ScheduledCheck, Scheduler

    interval = config.sched_interval_s
    ctx = standalone_context() if run_mode == "tcp" else None
    runs = RunLog(interval)

    async def run(check: ScheduledCheck) -> None:
        runs.record(check.key, check.slot, check.due)
        if ctx is not None:
            runs.statuses[str((await run_check(check.payload, ctx)).status)] += 1
        else:
            await asyncio.sleep(0.005)

    port = tcp_port or 1
    spec = MonitorSpec.model_validate(
        {"type": "tcp", "interval": f"{interval:g}s", "timeout": "1s", "tcp": {"host": "127.0.0.1", "port": port}}
    )
    scheduler = Scheduler(run)
    task = asyncio.create_task(scheduler.run())
    added: dict[Hashable, float] = {}
    core0, cpu0, wall0 = CoreTimes.read(probe_core), time.process_time(), time.perf_counter()
    try:
        with GcPauses() as gc_pauses:
            ramp_started = time.time()
            for i in range(config.sched_monitors):
                key: Hashable = ("bench", f"m-{i}")
                scheduler.upsert(key, interval, CheckRequest("bench", f"m-{i}", spec, monitor_id=i))
                added[key] = time.time()
                if i % 500 == 499:
                    await asyncio.sleep(0)  # a loader feeding a running scheduler, not one blocking insert
            ramp_s = time.time() - ramp_started
            await asyncio.sleep(config.sched_cycles * interval + 1.0)
            stop = time.time()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if ctx is not None:
            await ctx.aclose()
    wall = time.perf_counter() - wall0
    probe_cpu = time.process_time() - cpu0
    core1 = CoreTimes.read(probe_core)

    missed, never_ran = count_missed(added, runs.slots, runs.phases, interval, stop - 1.0)
    stats = scheduler.stats
    scheduler_missed = _stat(stats, "missed")
    lags_ms = [lag * 1000 for lag in runs.lags]
    p99 = percentile(lags_ms, 99)
    met = p99 is not None and p99 <= LAG_P99_TARGET_MS and missed == 0 and not scheduler_missed
    return {
        "monitors": config.sched_monitors,
        "interval_s": interval,
        "checks_per_s": round(config.sched_monitors / interval, 1),
        "equivalent_to": "20,000 monitors / 60 s (333 checks/s)",
        "measured_s": round(stop - ramp_started, 1),
        "ramp_s": round(ramp_s, 3),
        "run_function": (
            "records lag, then a real TCP connect check via run_check against the local target"
            if run_mode == "tcp"
            else "records lag, then sleeps 5 ms"
        ),
        "runs": len(runs.lags),
        "statuses": dict(runs.statuses),
        "lag_ms": {
            "p50": _r(percentile(lags_ms, 50), 3),
            "p99": _r(p99, 3),
            "p999": _r(percentile(lags_ms, 99.9), 3),
            "max": _r(max(lags_ms, default=None), 3),
            "min": _r(min(lags_ms, default=None), 3),
        },
        "missed_runs": missed,
        "monitors_never_run": never_ran,
        "duplicate_runs": runs.duplicates,
        "scheduler_stats": {
            "runs": _stat(stats, "runs"),
            "missed": scheduler_missed,
            "lag_p50_ms": _ms(_stat(stats, "p50", "lag_p50")),
            "lag_p99_ms": _ms(_stat(stats, "p99", "lag_p99")),
            "lag_p999_ms": _ms(_stat(stats, "p999", "lag_p999")),
        },
        "probe_cpu_utilisation": round(probe_cpu / wall, 3),
        **interference(core0, core1, probe_cpu, wall),
        "gc_pauses": gc_pauses.summary(),
        "target": {"lag_p99_ms": f"<= {LAG_P99_TARGET_MS:g}", "missed_runs": "== 0"},
        "met": met,
    }


class GcPauses:
    """Garbage-collector pauses while active: a full collection over many live objects stalls the loop."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = defaultdict(list)
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._started) * 1000)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, Any]:
        return {
            f"gen{gen}": {"count": len(ms), "max_ms": _r(max(ms), 3), "total_ms": _r(sum(ms), 3)}
            for gen, ms in sorted(self.pauses.items())
        }


@dataclass
class RunLog:
    """What the scheduled runs saw: lag (start - due, seconds), slots per key, each key's phase."""

    interval: float
    lags: list[float] = field(default_factory=list)
    slots: dict[Hashable, set[int]] = field(default_factory=lambda: defaultdict(set))
    phases: dict[Hashable, float] = field(default_factory=dict)
    duplicates: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    def record(self, key: Hashable, slot: int, due: float) -> None:
        self.lags.append(time.time() - due)
        seen = self.slots[key]
        self.duplicates += slot in seen
        seen.add(slot)
        self.phases[key] = due - slot * self.interval


def count_missed(
    added: dict[Hashable, float],
    slots: dict[Hashable, set[int]],
    phases: dict[Hashable, float],
    interval: float,
    until: float,
) -> tuple[int, int]:
    """Slots that should have run and did not, and monitors that never ran.

    A slot is expected from the first due at or after the monitor was added up to the last due at or
    before `until` (a second before the run stopped, so a due slot had time to start); every one of
    them must have run exactly once.
    """
    missed = never_ran = 0
    for key, added_at in added.items():
        seen = slots.get(key, set())
        if not seen:
            never_ran += 1
            missed += max(0, math.floor((until - added_at) / interval))
            continue
        phase = phases[key]
        first = min(math.ceil((added_at - phase) / interval), *seen)
        last = math.floor((until - phase) / interval)
        missed += sum(1 for slot in range(first, last + 1) if slot not in seen)
    return missed, never_ran


def _ms(seconds: Any) -> float | None:
    return round(seconds * 1000, 3) if isinstance(seconds, int | float) else None


# --- memory -----------------------------------------------------------------------------------


def vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# The monitor mix held in memory: mostly HTTP, as in practice; each with its own target.
_MIX = (("http", 70), ("tcp", 10), ("dns", 10), ("tls", 5), ("icmp", 5))


def mixed_spec(i: int) -> dict[str, Any]:
    kind = i % 100
    base: dict[str, Any] = {"interval": "60s", "timeout": "10s", "locations": ["eu-west"]}
    if kind < 70:
        url = f"https://service-{i}.example.com/health?probe={i}"
        expect = {"status": [200], "bodyContains": "ok", "maxResponseTime": "2s"}
        return {**base, "type": "http", "http": {"url": url, "expect": expect}}
    if kind < 80:
        return {**base, "type": "tcp", "tcp": {"host": f"db-{i}.example.com", "port": 5432}}
    if kind < 90:
        dns = {"name": f"host-{i}.example.com", "recordType": "A", "expect": {"values": [f"10.0.{i % 256}.1"]}}
        return {**base, "type": "dns", "dns": dns}
    if kind < 95:
        return {**base, "type": "tls", "tls": {"host": f"www-{i}.example.com", "port": 443}}
    return {**base, "type": "icmp", "icmp": {"host": f"10.1.{i % 256}.{i % 250 + 1}", "count": 3}}


async def _hold_monitors(count: int) -> dict[str, Any]:
    from spectra.probe.scheduler import ScheduledCheck, Scheduler

    async def run(check: ScheduledCheck) -> None:  # never reached: the scheduler is not started
        return None

    for module in ("http", "tcp", "dns", "tls", "icmp"):  # code is not per monitor: load it first
        __import__(f"spectra.probe.checks.{module}")
    scheduler = Scheduler(run)
    for i in range(50):  # warm pydantic's and the scheduler's lazily built parts, then drop them
        scheduler.upsert(("warm", i), 60.0, CheckRequest("warm", f"w-{i}", MonitorSpec.model_validate(mixed_spec(i))))
    for i in range(50):
        scheduler.remove(("warm", i))
    gc.collect()
    before = vm_rss_mb()
    for i in range(count):
        request = CheckRequest("bench", f"monitor-{i}", MonitorSpec.model_validate(mixed_spec(i)), monitor_id=i)
        scheduler.upsert((request.namespace, request.name), 60.0, request)
    gc.collect()
    after = vm_rss_mb()
    return {"before": before, "after": after}


def _rss_child(conn: Connection, count: int) -> None:
    import uvloop

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            conn.send(runner.run(_hold_monitors(count)))
    except Exception as exc:  # reported in the JSON by the parent
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def rss_per_10k(config: Config) -> dict[str, Any]:
    """RSS growth of a fresh process (spawned, same core) that loads `rss_monitors` monitors, per 10,000."""
    spawn = multiprocessing.get_context("spawn")
    parent, child = spawn.Pipe()
    process = spawn.Process(target=_rss_child, args=(child, config.rss_monitors), name="bench-rss", daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(120):
            raise RuntimeError("the memory child did not answer within 120 s")
        answer: dict[str, Any] = parent.recv()
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
    if "error" in answer:
        raise RuntimeError(answer["error"])
    grown = answer["after"] - answer["before"]
    value = grown * 10_000 / config.rss_monitors
    return {
        "value": round(value, 1),
        "unit": "MB RSS per 10,000 monitors",
        **goal("rss", value),
        "monitors_loaded": config.rss_monitors,
        "rss_before_mb": round(answer["before"], 1),
        "rss_after_mb": round(answer["after"], 1),
        "mix_percent": dict(_MIX),
        "held": "validated MonitorSpec + CheckRequest + Scheduler entry per monitor (scheduler not started)",
        "note": "VmRSS after minus before loading, in a fresh process that imported every checker first; "
        "browser excluded" + ("" if config.rss_monitors == 10_000 else f"; scaled from {config.rss_monitors}"),
    }
