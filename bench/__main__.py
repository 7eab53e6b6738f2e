"""`python -m bench [--quick | --full] [--only NAME,...]`: one JSON document on stdout, progress on stderr.

This process is the probe: it pins itself to one core. The targets run in a child process pinned to
the other core (and dnsmasq beside them), so "per core" means what it says.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import datetime
import functools
import json
import os
import platform
import ssl
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from bench import alerting, auth, console, mass_outage, operator, peers, probe, run_memory, saturation, statuspage
from bench.targets import BenchCA, Ports, Targets, cpu_seconds, dnsmasq, pin
from spectra.probe.context import CheckRequest

KEYS = {
    "http": "http_checks_per_s_one_core",
    "https": "https_fresh_handshake_checks_per_s_one_core",
    "tcp": "tcp_checks_per_s_one_core",
    "dns": "dns_checks_per_s_one_core",
    "icmp": "icmp_checks_per_s_one_core",
    "scheduling": "scheduling",
    "rss": "rss_mb_per_10k_monitors",
    "run_memory": "run_rss_growth_mb",
    "latency": "latency_accuracy",
    "alerting": "alert_latency_ms",
    "mass_outage": "mass_outage_first_page_s",
    "statuspage": "statuspage_requests_per_s_one_core",
    "operator": "operator_status_patches_per_minute",
    "auth": "auth_costs",
    "console": "console_server_times",
    "peers": "peers_http_checks",
    "saturation": "saturation_false_downs",
}
NEEDS_TARGETS = {"http", "https", "tcp", "latency", "scheduling"}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny configuration (~20 s), for the smoke test")
    size.add_argument("--full", action="store_true", help="scheduling at the real 20,000 monitors / 60 s")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(KEYS)}")
    parser.add_argument(
        "--sched-run",
        choices=("tcp", "sleep"),
        default="tcp",
        help="what each scheduled run does after recording its lag (default: a real TCP check)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="write a cProfile file per measure into DIR (slows the checks: numbers are then not comparable)",
    )
    parser.add_argument("--concurrency", type=int, help="checks in flight in every saturating run (default: per type)")
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    args.selected = [name.strip() for name in args.only.split(",") if name.strip()] or list(KEYS)
    if "alerting" in args.selected and "mass_outage" not in args.selected:
        args.selected.append("mass_outage")  # `--only alerting`: single-outage latency and the mass outage
    unknown = sorted(set(args.selected) - set(KEYS))
    if unknown:
        parser.error(f"unknown measure(s) {', '.join(unknown)}; choose from {', '.join(KEYS)}")
    return args


def environment(config: probe.Config, probe_cpu: int | None, target_cpu: int | None) -> dict[str, Any]:
    import aiohttp
    import httpx

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": config.mode,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "uvloop": True,
        "uvloop_version": getattr(uvloop, "__version__", None),
        "event_loop": type(asyncio.get_running_loop()).__module__,
        "cpu_count": os.cpu_count(),
        "probe_cpu": probe_cpu,
        "target_cpu": target_cpu,
        "pinned": probe_cpu is not None,
        "platform": platform.platform(),
        "openssl": ssl.OPENSSL_VERSION,
        "aiohttp": aiohttp.__version__,
        "httpx": httpx.__version__,
        "loadavg_at_start": _loadavg(),
    }


def _loadavg() -> str | None:
    """Other work on the machine (parallel test runs) lowers the numbers; this says whether there was any."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


def specs(kind: str, ports: Ports | None, dns_port: int | None = None) -> list[dict[str, Any]]:
    """Sixteen monitors of one kind against the local targets (distinct URLs for http and https)."""
    if kind == "dns":
        dns = {"name": "bench.test", "server": f"127.0.0.1:{dns_port}", "expect": {"values": ["127.0.0.1"]}}
        return [{"type": "dns", "timeout": "10s", "dns": dns}] * 16
    if kind == "icmp":
        # One echo per check: the throughput of checks, not of the pinger's spacing between echoes.
        return [{"type": "icmp", "timeout": "10s", "icmp": {"host": "127.0.0.1", "count": 1}}] * 16
    assert ports is not None, f"{kind} needs the target process"
    if kind == "http":
        return [probe.http_spec(f"http://127.0.0.1:{ports.http}/m/{i}") for i in range(16)]
    if kind == "https":
        return [probe.http_spec(f"https://127.0.0.1:{ports.https}/m/{i}") for i in range(16)]
    return [{"type": "tcp", "timeout": "10s", "tcp": {"host": "127.0.0.1", "port": ports.tcp}}] * 16


def requests_for(kind: str, ports: Ports | None, dns_port: int | None = None) -> list[CheckRequest]:
    return [probe.monitor(spec, f"{kind}-{i}", i) for i, spec in enumerate(specs(kind, ports, dns_port))]


class Harness:
    """Runs the selected measures in order and collects one report."""

    def __init__(self, args: argparse.Namespace, config: probe.Config, cpus: tuple[int | None, int | None]) -> None:
        self.args, self.config = args, config
        self.probe_cpu, self.target_cpu = cpus
        self.ca = BenchCA()
        self.client_ssl = self.ca.client_context()
        self.report: dict[str, Any] = {key: {"skipped": "not selected (--only)"} for key in KEYS.values()}
        self.throughput_budget = (config.duration_s + config.warmup_s) * 3 + 30

    async def measure(self, name: str, body: Callable[[], Awaitable[dict[str, Any]]], budget_s: float) -> None:
        """Run one measure within its time budget; a failure becomes an `error` entry, not a crash."""
        if name not in self.args.selected:
            return
        log(f"{name} ...")
        started = time.perf_counter()
        # cProfile sees this thread only: the event loop and every check (not the rss child process).
        profiler = cProfile.Profile() if self.args.profile else None
        try:
            async with asyncio.timeout(budget_s):
                if profiler is not None:
                    profiler.enable()
                try:
                    result = await body()
                finally:
                    if profiler is not None:
                        profiler.disable()
        except Exception as exc:  # one broken measure must not lose the others
            traceback.print_exc(file=sys.stderr)
            result = {"error": f"{type(exc).__name__}: {exc}", "met": False}
        if profiler is not None:
            path = self.args.profile / f"{name}.prof"
            profiler.dump_stats(path)
            result["profile"] = str(path)
        self.report[KEYS[name]] = result
        log(f"{name} done in {time.perf_counter() - started:.1f} s: {_headline(result)}")

    async def run(self) -> dict[str, Any]:
        environment_ = environment(self.config, self.probe_cpu, self.target_cpu)
        config, selected = self.config, set(self.args.selected)
        with contextlib.ExitStack() as stack:
            if NEEDS_TARGETS & selected:
                targets = stack.enter_context(Targets(self.ca, self.target_cpu))
                for kind in ("http", "https", "tcp"):
                    await self.measure(kind, functools.partial(self.served, kind, targets), self.throughput_budget)
                await self.measure(
                    "latency",
                    lambda: probe.latency_accuracy(targets.ports.http, self.client_ssl, config, self.probe_cpu),
                    120,
                )
                await self.measure(
                    "scheduling",
                    lambda: probe.scheduling(targets.ports.tcp, config, self.args.sched_run, self.probe_cpu),
                    config.sched_cycles * config.sched_interval_s + 120,
                )
        await self.measure("dns", self.dns, self.throughput_budget)
        await self.measure("icmp", self.icmp, self.throughput_budget)
        await self.measure("rss", lambda: asyncio.to_thread(probe.rss_per_10k, config), 180)
        await self.measure(
            "run_memory",
            lambda: run_memory.run_memory(config.mode, self.ca, self.probe_cpu, self.target_cpu),
            120 if config.mode == "quick" else 600,
        )
        await self.measure("alerting", lambda: alerting.alert_latency(config.mode), 600)
        await self.measure("mass_outage", lambda: mass_outage.mass_outage(config.mode), 420)
        await self.measure(
            "statuspage", lambda: statuspage.page_throughput(config.mode, self.probe_cpu, self.target_cpu), 180
        )
        await self.measure("operator", lambda: operator.status_patching(config.mode), 600)
        await self.measure("auth", lambda: auth.auth_costs(config.mode, self.target_cpu), 180)
        await self.measure("console", lambda: console.console_times(config.mode), 300)
        await self.measure(
            "peers", lambda: peers.peers(config.mode, self.client_ssl, self.ca, self.probe_cpu, self.target_cpu), 900
        )
        await self.measure(
            "saturation", lambda: saturation.saturation(config.mode, self.probe_cpu, self.target_cpu), 300
        )
        summary = {key: self.report[key].get("met") for key in KEYS.values()}
        return {"environment": environment_, **self.report, "summary": summary}

    async def served(self, kind: str, targets: Targets) -> dict[str, Any]:
        """A saturating run against the target process, with what the target counted."""
        targets.reset()
        result = await probe.saturate(
            kind,
            requests_for(kind, targets.ports),
            probe.standalone_context(self.client_ssl),
            self.config,
            target_cpu=targets.cpu_seconds,
            probe_core=self.probe_cpu,
        )
        served = targets.stats()
        result["target_counters"] = served
        if kind == "https":
            result["fresh_handshake"] = served["tls_sessions_reused"] == 0
        return result

    async def dns(self) -> dict[str, Any]:
        """dnsmasq on a high loopback port, pinned beside the other targets, answering one A record."""
        with dnsmasq(self.target_cpu) as server:
            if server is None:
                return {"skipped": "dnsmasq is not installed (/usr/sbin/dnsmasq)", "met": None}
            return await probe.saturate(
                "dns",
                requests_for("dns", None, server.port),
                probe.standalone_context(self.client_ssl),
                self.config,
                target_cpu=lambda: cpu_seconds(server.pid),
                probe_core=self.probe_cpu,
                extra={"server": "dnsmasq on 127.0.0.1, pinned to the target core"},
            )

    async def icmp(self) -> dict[str, Any]:
        """ICMP echo to 127.0.0.1 (the kernel answers): needs root or a ping_group_range that includes us."""
        allowed = os.geteuid() == 0
        with contextlib.suppress(OSError, ValueError):
            low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
            allowed = allowed or any(low <= g <= high for g in (os.getegid(), *os.getgroups()))
        if not allowed:
            return {"skipped": "ICMP needs root or net.ipv4.ping_group_range covering this user", "met": None}
        return await probe.saturate(
            "icmp",
            requests_for("icmp", None),
            probe.standalone_context(self.client_ssl),
            self.config,
            probe_core=self.probe_cpu,
            extra={"echoes_per_check": 1, "target_note": "127.0.0.1, answered by the kernel"},
        )


def _headline(result: dict[str, Any]) -> str:
    for key in ("error", "skipped"):
        if key in result:
            return f"{key}: {result[key]}"
    if "value" in result:
        return f"{result['value']} {result.get('unit', '')} (target {result.get('target')}, met {result.get('met')})"
    if "lag_ms" in result:
        return f"lag {result['lag_ms']}, missed {result['missed_runs']}, met {result['met']}"
    parts = {name: part.get("value", part.get("met")) for name, part in result.items() if isinstance(part, dict)}
    if "delays" not in result and "met" in result and parts:  # a measure of parts (auth): each one's value or met
        return f"{json.dumps(parts)} (met {result['met']})"
    return json.dumps(result.get("delays", ""))[:200]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = probe.QUICK if args.quick else probe.FULL if args.full else probe.DEFAULT
    if args.concurrency:
        config = dataclasses.replace(config, concurrency=dict.fromkeys(config.concurrency, args.concurrency))
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    # Decide before pinning: children inherit this process's affinity and re-pin themselves.
    probe_cpu, target_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    pin(probe_cpu)
    started = time.perf_counter()
    log(f"mode {config.mode}; probe on cpu {probe_cpu}, targets on cpu {target_cpu}")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        report = runner.run(Harness(args, config, (probe_cpu, target_cpu)).run())
    report["environment"]["bench_seconds"] = round(time.perf_counter() - started, 1)
    report["environment"]["loadavg_at_end"] = _loadavg()
    if probe_cpu is None:
        report["environment"]["note"] = "fewer than 2 usable cores: nothing pinned, targets share the core"
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    log(f"finished in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
