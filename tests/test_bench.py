"""Smoke test of the benchmark harness: `python -m bench --quick` runs end to end and prints every key.

No assertion here is about speed: that is what the numbers are for. The harness starts its own
targets on 127.0.0.1 and stops them; these tests check the JSON is complete and the checks it ran
succeeded against them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.support.paths import REPO

# Runs the benchmark harness end to end. Under xdist the module runs on one worker (ONE_WORKER_MODULES in
# tests/conftest.py), so the quick report (minutes) is made once, not once on each worker.
pytestmark = pytest.mark.e2e

README = REPO / "bench" / "README.md"

MEASURES = {
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
THROUGHPUT = ["http", "https", "tcp", "dns", "icmp"]
THROUGHPUT_KEYS = {"value", "unit", "target", "met", "checks", "statuses", "duration_s", "concurrency", "latency_ms"}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True, timeout=360, check=False
    )


@pytest.fixture(scope="module")
def quick_report() -> dict[str, Any]:
    done = bench("--quick")
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)  # stdout is exactly one JSON document
    return report


def test_report_has_every_key(quick_report: dict[str, Any]) -> None:
    assert set(quick_report) == {"environment", "summary", *MEASURES.values()}
    assert set(quick_report["summary"]) == set(MEASURES.values())
    environment = quick_report["environment"]
    assert environment["mode"] == "quick"
    assert environment["uvloop"] is True
    assert environment["event_loop"] == "uvloop"
    assert {"python", "cpu_count", "date", "probe_cpu", "target_cpu"} <= set(environment)


@pytest.mark.parametrize("measure", list(MEASURES))
def test_no_measure_failed(quick_report: dict[str, Any], measure: str) -> None:
    result = quick_report[MEASURES[measure]]
    assert "error" not in result, result["error"]


@pytest.mark.parametrize("measure", THROUGHPUT)
def test_throughput_measures_ran_real_checks(quick_report: dict[str, Any], measure: str) -> None:
    result = quick_report[MEASURES[measure]]
    if "skipped" in result:  # dnsmasq not installed, or no ICMP permission: the JSON says so
        assert measure in {"dns", "icmp"}, result
        assert result["skipped"]
        return
    assert set(result) >= THROUGHPUT_KEYS
    assert result["statuses"].get("up", 0) > 0, result["not_up_reasons"]
    assert result["value"] == pytest.approx(result["statuses"]["up"] / result["duration_s"], abs=0.1)


def test_peers_ran_both_probes_against_both_targets(quick_report: dict[str, Any]) -> None:
    """blackbox_exporter and SpectraMonitor each made successful checks of nginx and of the bench's responder,
    with their CPU per 1,000 and the two ratios reported (their values are the bench's to judge, not this test's)."""
    result = quick_report[MEASURES["peers"]]
    if "skipped" in result:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the peers bench was skipped under CI: {result['skipped']}")
        pytest.skip(result["skipped"])
    assert set(result["against"]) == {"nginx", "builtin"}
    for target, compared in result["against"].items():
        for side in ("spectra", "blackbox_exporter"):
            figures = compared[side]
            assert figures["checks_per_s"] > 0, (target, side)
            assert figures["cpu_s_per_1000"] > 0, (target, side)
            assert all(run["failed"] == 0 for run in figures["runs"]), (target, side, figures["runs"])
        assert compared["cpu_ratio"] > 0
        assert compared["rate_ratio"] > 0
    assert result["cpu_ratio"] == result["against"]["nginx"]["cpu_ratio"]
    assert result["target"] == {"cpu_ratio": "<= 1", "rate_ratio": ">= 1"}
    assert "blackbox_exporter" in result["versions"]["blackbox_exporter"]


def test_saturation_ran_spectra_past_its_capacity_and_counted_downs(quick_report: dict[str, Any]) -> None:
    """The saturated `spectra run` checked, was past its core's capacity, and the report counts its downs (the
    bench judges the number; the probe tests hold the mechanism)."""
    result = quick_report[MEASURES["saturation"]]
    assert "error" not in result, result
    assert result["up_checks"] > 0
    assert result["saturated"] is True, result
    assert isinstance(result["down_checks"], int)
    assert result["target"] == "== 0"


def test_targets_from_the_readme_are_next_to_the_numbers(quick_report: dict[str, Any]) -> None:
    assert quick_report[MEASURES["http"]]["target"] == ">= 1500"
    assert quick_report[MEASURES["https"]]["target"] == ">= 500"
    assert quick_report[MEASURES["rss"]]["target"] == "<= 60"
    assert quick_report[MEASURES["scheduling"]]["target"] == {"lag_p99_ms": "<= 20", "missed_runs": "== 0"}


def test_https_handshakes_every_check(quick_report: dict[str, Any]) -> None:
    result = quick_report[MEASURES["https"]]
    counters = result["target_counters"]
    assert counters["tls_connections"] >= result["checks"]  # one TLS connection per check at least
    assert counters["tls_sessions_reused"] == 0
    assert result["fresh_handshake"] is True


def test_scheduling_reports_lag_and_missed_runs(quick_report: dict[str, Any]) -> None:
    result = quick_report[MEASURES["scheduling"]]
    assert result["runs"] > 0
    assert set(result["lag_ms"]) == {"p50", "p99", "p999", "max", "min"}
    assert isinstance(result["missed_runs"], int)
    assert result["monitors_never_run"] == 0
    assert result["duplicate_runs"] == 0
    assert result["scheduler_stats"]["runs"] == result["runs"]


def test_memory_measure_is_scaled_to_10k(quick_report: dict[str, Any]) -> None:
    result = quick_report[MEASURES["rss"]]
    assert result["monitors_loaded"] > 0
    grown = result["rss_after_mb"] - result["rss_before_mb"]
    assert result["value"] == pytest.approx(grown * 10_000 / result["monitors_loaded"], abs=1.5)


def test_run_memory_measured_the_real_process_empty_and_loaded(quick_report: dict[str, Any]) -> None:
    """`spectra run` served twice (one monitor, then 1,000 with --quick), its RSS read until settled;
    the responder answered the loaded process's checks. The figures are the bench's to judge."""
    result = quick_report[MEASURES["run_memory"]]
    assert result["monitors"] == 1000
    assert result["target"] == "<= 60"
    assert result["growth_mb"] == pytest.approx(result["loaded_mb"] - result["empty_mb"], abs=0.11)
    assert result["empty_mb"] > 0
    assert result["loaded_mb"] > 0
    assert result["met"] is (result["growth_mb"] <= 60)
    assert result["waited_s"] >= result["interval_s"]
    assert result["target_requests"] >= result["monitors"]  # every monitor was checked at least once


def test_latency_accuracy_per_injected_delay(quick_report: dict[str, Any]) -> None:
    delays = quick_report[MEASURES["latency"]]["delays"]
    assert set(delays) == {"50ms", "200ms"}
    for entry in delays.values():
        assert entry["up"] == entry["checks"] > 0
        # The reported latency includes the injected delay: it can never be shorter.
        assert entry["min_error_ms"] >= 0


def test_only_runs_the_selection() -> None:
    done = bench("--quick", "--only", "tcp")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert "value" in report[MEASURES["tcp"]]
    for name, key in MEASURES.items():
        if name != "tcp":
            assert report[key] == {"skipped": "not selected (--only)"}


@pytest.mark.parametrize("args", [["--only", "nonsense"], ["--quick", "--full"]])
def test_bad_arguments_are_refused(args: list[str]) -> None:
    done = bench(*args)
    assert done.returncode == 2
    assert done.stdout == ""


def test_statuspage_served_the_page(quick_report: dict[str, Any]) -> None:
    result = quick_report[MEASURES["statuspage"]]
    if "skipped" in result:  # wrk not installed: the JSON says so
        assert "wrk" in result["skipped"]
        return
    assert result["target"] == {"requests_per_s": ">= 1000", "p99_ms": "<= 25"}
    assert result["page"]["components"] == 50
    assert result["page"]["history_days"] == 90
    assert result["page"]["etag"] is True
    for run in ("full_page", "not_modified"):
        assert result[run]["requests"] > 0
        assert result[run]["non_2xx_3xx"] == 0
        assert set(result[run]["latency_ms"]) == {"p50", "p75", "p90", "p99"}
    assert result["not_modified"]["status_of_revalidation"] == 304
    assert result["value"] == result["full_page"]["requests_per_s"]


def test_operator_patched_every_monitor_once_then_paced(quick_report: dict[str, Any]) -> None:
    result = quick_report[MEASURES["operator"]]
    assert result["initial_full_publish"]["patches"] == result["monitors"] == 100
    # What the publisher says it sent is what the API server received.
    steady = round(result["value"] * result["simulated_minutes"])
    assert result["patches_seen_by_api_server"] == result["monitors"] + steady
    assert result["naive_patches_per_minute"] > result["value"]
    assert result["events_per_minute"] > 0


def _readme_targets() -> dict[str, str]:
    """The Targets table of bench/README.md: the key a measure reports -> its target, as written there."""
    section = README.read_text(encoding="utf-8").split("\n## Targets\n", 1)[1].split("\n## ", 1)[0]
    targets = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (key := re.fullmatch(r"`([\w.]+)`", cells[2])):
            targets[key.group(1)] = cells[1]
    return targets


def test_the_readme_holds_the_targets_the_bench_reports() -> None:
    """bench/README.md is where the targets live: what the code compares with must be what it says."""
    from bench import alerting, auth, console, mass_outage, peers, probe, run_memory, saturation, statuspage

    readme = _readme_targets()
    assert set(readme) == {
        MEASURES[name]
        for name in (
            "http",
            "https",
            "scheduling",
            "alerting",
            "mass_outage",
            "statuspage",
            "rss",
            "run_memory",
            "operator",
        )
    } | {f"{MEASURES['auth']}.access_token_check_us", f"{MEASURES['auth']}.api_monitors_with_token"} | {
        f"{MEASURES['console']}.{part}" for part in ("overview_ms", "monitor_page_ms", "sse_delivery_s")
    } | {MEASURES["peers"], MEASURES["saturation"]}

    def written(key: str) -> str:
        return re.sub(r"(\d),(\d{3})", r"\1\2", readme[key])  # 1,500 -> 1500

    for name in ("http", "https", "rss"):
        target = probe.TARGETS[name]
        assert target is not None
        assert written(MEASURES[name]).startswith(target[0]), (name, readme[MEASURES[name]])
    assert written(MEASURES["scheduling"]) == f"<= {probe.LAG_P99_TARGET_MS:g} ms, zero missed runs"
    assert written(MEASURES["saturation"]) == f"== {saturation.TARGET_DOWN_CHECKS}"
    assert written(MEASURES["run_memory"]) == f"<= {run_memory.TARGET_GROWTH_MB:g} MB RSS above the empty process"
    assert written(MEASURES["alerting"]) == f"p95 <= {alerting.TARGET_P95_MS / 1000:g} s"
    assert (
        written(MEASURES["mass_outage"])
        == f"p95 <= {mass_outage.TARGET_P95_S:g} s, max <= {mass_outage.TARGET_MAX_S:g} s"
    )
    assert (
        written(MEASURES["statuspage"]) == f">= {statuspage.TARGET_RPS} req/s, p99 <= {statuspage.TARGET_P99_MS:g} ms"
    )
    assert written(f"{MEASURES['auth']}.access_token_check_us") == f"<= {auth.TARGET_ACCESS_CHECK_US:g} us"
    assert written(f"{MEASURES['auth']}.api_monitors_with_token") == f"<= {auth.TARGET_API_OVERHEAD_PCT:g} %"
    assert written(f"{MEASURES['console']}.overview_ms") == f"p95 <= {console.TARGET_OVERVIEW_P95_MS:g} ms"
    assert written(f"{MEASURES['console']}.monitor_page_ms") == f"p95 <= {console.TARGET_MONITOR_PAGE_P95_MS:g} ms"
    assert written(f"{MEASURES['console']}.sse_delivery_s") == f"max <= {console.TARGET_SSE_MAX_S:g} s"
    assert written(MEASURES["peers"]) == (
        f"CPU per check <= {peers.TARGET_CPU_RATIO:g} x blackbox's, checks/s >= {peers.TARGET_RATE_RATIO:g} x blackbox's"
    )


def test_console_measured_the_pages_and_the_live_update(quick_report: dict[str, Any]) -> None:
    """`--only console`: both pages answered and timed, and every client got every live update."""
    result = quick_report[MEASURES["console"]]
    assert result["database"].startswith("SQLite")
    assert result["overview_ms"]["monitors"] == 1000
    assert result["overview_ms"]["target"] == "<= 150"
    assert result["monitor_page_ms"]["rollup_days"] == 90
    assert result["monitor_page_ms"]["target"] == "<= 50"
    for part in (result["overview_ms"], result["monitor_page_ms"], result["monitor_page_ms"]["chart_90_days"]):
        assert part["samples"] == 10
        assert 0 < part["p50"] <= part["p95"] <= part["max"]
    delivery = result["sse_delivery_s"]
    assert (delivery["clients"], delivery["changes"], delivery["received_by_all"]) == (20, 2, True)
    assert 0 < delivery["p50"] <= delivery["p100"]


def test_auth_costs_measured_each_part(quick_report: dict[str, Any]) -> None:
    """The three parts of `--only auth` ran: token checks, the API served both ways alike, argon2."""
    from spectra.auth import passwords

    result = quick_report[MEASURES["auth"]]
    checks = result["access_token_check_us"]
    assert checks["target"] == "<= 50"
    for sight in ("first_sight", "seen_before"):
        assert checks[sight]["samples"] == 500
        assert 0 < checks[sight]["p50"] <= checks[sight]["p95"] <= checks[sight]["max"]
    api = result["api_monitors_with_token"]
    if "skipped" in api:  # wrk not installed: the JSON says so
        assert "wrk" in api["skipped"]
    else:
        assert api["target"] == "<= 10"
        assert api["monitors"] == 200
        assert len(api["server_cpu_ratio_per_round"]) == api["rounds"] == 2
        for kind in ("open", "api_token"):  # every request of both kinds was answered with the monitors
            assert api[kind]["requests"] > 0
            assert api[kind]["non_2xx_3xx"] == 0
            assert set(api[kind]["latency_ms"]) == {"p50", "p75", "p90", "p99"}
        assert api["token_work_us"]["p50"] > 0
    login = result["login_ms"]
    assert login["parameters"]["memory_kib"] == passwords.MEMORY_COST_KIB
    assert login["stored_hash_prefix"] == (
        f"m={passwords.MEMORY_COST_KIB},t={passwords.TIME_COST},p={passwords.PARALLELISM}"
    )
    assert login["verify"]["samples"] == 3
    assert login["verify"]["p50"] > 0
