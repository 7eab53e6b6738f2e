"""What authentication costs: an access-token check, an API token on /api/v1/monitors, a sign-in's argon2.

- Access-token check: `spectra.auth.access_tokens.verify` of tokens never seen before (HMAC and claims
  parsed) and of the same tokens again (remembered: a look-up and the clock check), one call timed at a
  time with the garbage collector off (as timeit does), in this process (the harness core).
  Target (bench/README.md): <= 50 us per request.
- API token on /api/v1/monitors: the real `spectra run` (the only server whose monitor API is also open,
  to loopback) pinned to the target core, over a SQLite file holding MONITORS http monitors with a
  state each and an API token (`spectra.auth.api_tokens.create`, scope read) of the implicit
  organization, which sees every monitor: both answers are the same document. wrk (keep-alive, the
  same connections) alternates runs without and with `Authorization: Bearer`, after a warm-up of each;
  then the token's own work (its check, the policy, the visible namespaces, in a session of its own)
  is timed alone against the same database. Target: that work is <= 10 % of the open request's server
  CPU time (the end-to-end throughputs, latencies and ratios are reported beside it).
- Sign-in: `spectra.auth.passwords` verify (what a sign-in does) and hash (setting a password) with the
  argon2id parameters in use. No target: the parameters are chosen for cost to an attacker.
"""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import spectra_run
from bench.statuspage import _fetch, _free_port, _wrk
from bench.targets import cpu_seconds

TARGET_ACCESS_CHECK_US = 50.0
TARGET_API_OVERHEAD_PCT = 10.0
MONITORS = 200
IDLE_S = 2.0  # the server's own background CPU, measured between warm-up and runs
CONNECTIONS = 8  # as the status page bench: enough to keep one server core busy
INTERVAL = "10m"  # long, so spectra run's own checks (of its /healthz) barely load it during the runs
SECRET_KEY = "bench-auth-secret-key-0123456789abcdef"  # noqa: S105 - a throw-away key for a throw-away database

# Per mode: tokens verified, wrk seconds of warm-up (each kind) and per run, rounds (one open and one
# token run each), sign-ins, hashes.
SIZES = {
    "quick": {"tokens": 500, "warmup_s": 1, "wrk_s": 1, "rounds": 2, "verifies": 3, "hashes": 2},
    "default": {"tokens": 2000, "warmup_s": 2, "wrk_s": 2, "rounds": 6, "verifies": 10, "hashes": 5},
    "full": {"tokens": 5000, "warmup_s": 3, "wrk_s": 3, "rounds": 12, "verifies": 20, "hashes": 10},
}


def _timed_us(call: Callable[[], object], times: int) -> list[float]:
    """Each call's duration in microseconds, the collector off (a collection would land on one call)."""
    samples = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(times):
            started = time.perf_counter_ns()
            call()
            samples.append((time.perf_counter_ns() - started) / 1000)
    finally:
        if enabled:
            gc.enable()
    return samples


def _summary(samples: Sequence[float], digits: int = 1) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), digits),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], digits),
        "min": round(ordered[0], digits),
        "max": round(ordered[-1], digits),
        "samples": len(ordered),
    }


def access_token_checks(count: int) -> dict[str, Any]:
    """verify() of `count` tokens at first sight, then of the same tokens again."""
    from spectra.auth import access_tokens
    from spectra.auth.identity import Principal
    from spectra.store import Role

    keys = access_tokens.Keys.from_secrets([SECRET_KEY])
    now = datetime.now(UTC)
    principal = Principal(
        user_id=42, email="ada@example.com", organization="", role=Role.ADMIN, session_id="bench-session"
    )
    tokens = [access_tokens.issue(principal, now=now, keys=keys) for _ in range(count)]  # a new jti each
    assert len(set(tokens)) == count
    queue = iter(tokens)

    def fresh() -> object:
        return access_tokens.verify(next(queue), now=now, keys=keys)

    first_sight = _timed_us(fresh, count)
    queue = iter(tokens)
    seen_before = _timed_us(fresh, count)
    met = max(_summary(first_sight)["p50"], _summary(seen_before)["p50"]) <= TARGET_ACCESS_CHECK_US
    return {
        "unit": "us per verify",
        "target": f"<= {TARGET_ACCESS_CHECK_US:g}",
        "met": met,
        "first_sight": _summary(first_sight),
        "seen_before": _summary(seen_before),
        "token_chars": len(tokens[0]),
        "note": "first sight: the first request with a token (once per token and process); "
        "seen before: every later one. met: both medians on target",
    }


def login_times(verifies: int, hashes: int) -> dict[str, Any]:
    """argon2id verify (a sign-in) and hash (a new password), in milliseconds."""
    from spectra.auth import passwords

    password = "correct horse battery staple"  # noqa: S105 - the bench's own
    stored = passwords.hash_password(password)
    verify_ms = [us / 1000 for us in _timed_us(lambda: passwords.verify_password(stored, password), verifies)]
    hash_ms = [us / 1000 for us in _timed_us(lambda: passwords.hash_password(password), hashes)]
    return {
        "unit": "ms",
        "target": None,
        "met": None,
        "verify": _summary(verify_ms),
        "hash": _summary(hash_ms),
        "parameters": {
            "type": "argon2id",
            "memory_kib": passwords.MEMORY_COST_KIB,
            "time_cost": passwords.TIME_COST,
            "parallelism": passwords.PARALLELISM,
        },
        "stored_hash_prefix": stored.split("$", 4)[3],  # m=...,t=...,p=... as stored
    }


def manifests(port: int) -> str:
    """MONITORS http monitors of spectra run's own /healthz (the egress guard lets standalone reach loopback)."""
    return "---\n".join(
        f"apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {{name: svc-{i:03d}}}\n"
        f"spec: {{type: http, interval: {INTERVAL}, http: {{url: 'http://127.0.0.1:{port}/healthz?m={i}'}}}}\n"
        for i in range(MONITORS)
    )


def seed(folder: Path, port: int) -> tuple[str, Path, str]:
    """The manifests applied to a new SQLite file, a recent `up` state for each monitor and an API token.

    Returns the database URL, the manifest file and the token's text."""
    from sqlalchemy import insert, select

    from spectra.auth import api_tokens
    from spectra.auth.identity import Principal
    from spectra.manifests import load_paths
    from spectra.reconcile import MANIFEST_SOURCE, apply_set
    from spectra.store import Membership, Role, User, UserStatus, make_engine, session_factory, upgrade
    from spectra.store import Monitor as MonitorRow
    from spectra.store.monitor_states import MONITOR_STATES

    manifest = folder / "monitors.yaml"
    manifest.write_text(manifests(port))
    loaded = load_paths([manifest])
    if loaded.errors:
        raise RuntimeError("; ".join(map(str, loaded.errors)))
    url = f"sqlite:///{folder / 'bench.db'}"
    engine = make_engine(url)
    try:
        upgrade(engine)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            apply_set(session, [item.resource for item in loaded.resources], MANIFEST_SOURCE, secrets=loaded)
        now = datetime.now(UTC)
        with sessions() as session:
            ids = list(session.scalars(select(MonitorRow.resource_id)))
        # As a check would leave them: each monitor answered a moment ago, so the API reports every one.
        states = [
            {
                "monitor_id": monitor_id,
                "location": "default",
                "state": "up",
                "last_status": "up",
                "consecutive_failures": 0,
                "consecutive_successes": 3,
                "last_check_at": now - timedelta(seconds=monitor_id % 60),
                "last_latency_ms": 1.5 + monitor_id % 7,
                "last_reason": "HTTP 200",
                "changed_at": now - timedelta(hours=1),
                "reported_at": now,
                "state_stored_at": now - timedelta(hours=1),
                "facts": None,
            }
            for monitor_id in ids
        ]
        with engine.begin() as connection:
            connection.execute(insert(MONITOR_STATES), states)
        with sessions.begin() as session:
            user = User(email="bench@example.com", status=UserStatus.ACTIVE)
            user.memberships.append(Membership(organization="", role=Role.USER))
            session.add(user)
            session.flush()
            owner = Principal(user_id=user.id, email=user.email, organization="", role=Role.USER)
            token, _ = api_tokens.create(session, owner, name="bench", scopes=("read",), expires_at=None, now=now)
    finally:
        engine.dispose()
    return url, manifest, token


def token_work_us(database_url: str, token: str, count: int) -> dict[str, Any]:
    """What /api/v1/monitors does for a token before the query the open request makes too, in this
    process: a session of its own (begun and committed), the token's check, the policy, the namespaces."""
    from spectra.auth import policy
    from spectra.auth.policy import Action
    from spectra.store import make_engine, session_factory, utcnow
    from spectra.web import bearer

    engine = make_engine(database_url)
    try:
        sessions = session_factory(engine)

        def checked() -> object:
            with sessions.begin() as session:
                principal = bearer.authenticate(session, token, now=utcnow())
                policy.require(principal, Action.MONITORS_READ, organization=principal.organization)
                return policy.visible_namespaces(session, principal)

        checked()  # the first use is recorded (a write); later ones within the minute are not
        summary = _summary(_timed_us(checked, count))
    finally:
        engine.dispose()
    return {**summary, "samples_note": "a session of its own each, SQLite file, in the harness process"}


def _combined(runs: Sequence[dict[str, Any]], duration_s: int, idle_utilisation: float) -> dict[str, Any]:
    """The runs of one kind together: overall requests/s, the median of each latency percentile, and
    the server's CPU time per request without what it spends idle (its probe and alerter loops)."""
    requests = sum(run["requests"] for run in runs)
    seconds = duration_s * len(runs)
    cpu = sum(run["server_cpu_s"] for run in runs) - idle_utilisation * seconds
    return {
        "requests_per_s": round(requests / seconds, 1),
        "requests": requests,
        "latency_ms": {
            name: round(statistics.median(run["latency_ms"][name] for run in runs), 3) for name in runs[0]["latency_ms"]
        },
        "ms_per_request": round(seconds * 1000 / requests, 4),
        "server_cpu_ms_per_request": round(cpu * 1000 / requests, 4),
        "server_cpu_utilisation": round(cpu / seconds, 2),
        "non_2xx_3xx": sum(run["non_2xx_3xx"] for run in runs),
        "runs": [{key: run[key] for key in ("requests_per_s", "latency_ms", "non_2xx_3xx")} for run in runs],
    }


def api_token_overhead(mode: str, target_cpu: int | None) -> dict[str, Any]:
    """wrk against spectra run's /api/v1/monitors, open (loopback) and with the API token, alternating."""
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)", "met": None}
    size = SIZES[mode]
    duration_s, rounds = size["wrk_s"], size["rounds"]
    with tempfile.TemporaryDirectory(prefix="spectra-bench-auth-") as tmp:
        folder = Path(tmp)
        port = _free_port()
        started = time.perf_counter()
        database_url, manifest, token = seed(folder, port)
        seed_s = round(time.perf_counter() - started, 2)
        process = spectra_run.start(manifest, database_url, port, cpu=target_cpu, folder=folder, secret_key=SECRET_KEY)
        url = f"http://127.0.0.1:{port}/api/v1/monitors"
        bearer = {"Authorization": f"Bearer {token}"}
        try:
            deadline = time.monotonic() + 60
            status, body = 0, b""
            while time.monotonic() < deadline and status != 200:
                if process.poll() is not None:
                    raise RuntimeError(f"spectra run exited: {(folder / 'run.log').read_text()[-2000:]}")
                status, _, body = _fetch(url)
                if status != 200:
                    time.sleep(0.2)
            if status != 200:
                raise RuntimeError(f"/api/v1/monitors did not come up (status {status})")
            token_status, _, token_body = _fetch(url, bearer)
            open_names = [(item["namespace"], item["name"]) for item in json.loads(body)]
            token_names = [(item["namespace"], item["name"]) for item in json.loads(token_body)]
            if token_status != 200 or open_names != token_names or len(open_names) != MONITORS:
                raise RuntimeError(f"the two answers differ: {token_status}, {len(open_names)} vs {len(token_names)}")
            runs, idle_utilisation = _alternate(process.pid, url, bearer, size)
        finally:
            spectra_run.stop(process, timeout_s=15)
        token_work = token_work_us(database_url, token, size["tokens"] // 4)
    open_ = _combined(runs["open"], duration_s, idle_utilisation)
    with_token = _combined(runs["api_token"], duration_s, idle_utilisation)
    # Judged: the server's CPU time per request, the median of back-to-back pairs (token / open), which
    # leaves out a pair that other work on the two busy cores hit. Throughput moves with that work more
    # than the few per cent looked for: reported, not judged. The token's own work timed alone (a tight
    # distribution) says what the difference is made of.
    pairs = list(zip(runs["open"], runs["api_token"], strict=True))
    cpu_ratios = [
        _cpu_ms(token_run, idle_utilisation) / _cpu_ms(open_run, idle_utilisation) for open_run, token_run in pairs
    ]
    rps_ratios = [open_run["requests_per_s"] / token_run["requests_per_s"] for open_run, token_run in pairs]
    overhead_pct = (statistics.median(cpu_ratios) - 1) * 100
    answered = open_["non_2xx_3xx"] == 0 and with_token["non_2xx_3xx"] == 0
    return {
        "value": round(overhead_pct, 1),
        "unit": "% more server CPU time per request with an API token",
        "target": f"<= {TARGET_API_OVERHEAD_PCT:g}",
        "met": overhead_pct <= TARGET_API_OVERHEAD_PCT and answered,
        "server_cpu_ratio_per_round": [round(ratio, 3) for ratio in cpu_ratios],
        "throughput_overhead_pct": round((statistics.median(rps_ratios) - 1) * 100, 1),
        "throughput_ratio": round(with_token["requests_per_s"] / open_["requests_per_s"], 3),
        "token_work_us": token_work,
        "token_work_pct_of_open_request": round(token_work["p50"] / 1000 / open_["server_cpu_ms_per_request"] * 100, 1),
        "server_idle_cpu_utilisation": round(idle_utilisation, 3),
        "open": open_,
        "api_token": with_token,
        "monitors": MONITORS,
        "response_bytes": len(body),
        "duration_s_per_run": duration_s,
        "rounds": rounds,
        "connections": CONNECTIONS,
        "load_generator": "wrk -t1 (keep-alive), pinned to the harness core",
        "server": "spectra run (SQLite, uvicorn, one process), pinned to the target core",
        "seed_s": seed_s,
    }


def _alternate(
    pid: int, url: str, bearer: dict[str, str], size: dict[str, int]
) -> tuple[dict[str, list[dict[str, Any]]], float]:
    """Warm-up, the server's idle CPU, then `rounds` pairs of wrk runs open / with the token."""
    for headers in ({}, bearer):  # imports, caches and the start's own work settle
        _wrk(url, size["warmup_s"], CONNECTIONS, headers)
    cpu_before = cpu_seconds(pid)
    time.sleep(IDLE_S)
    idle_utilisation = (cpu_seconds(pid) - cpu_before) / IDLE_S
    runs: dict[str, list[dict[str, Any]]] = {"open": [], "api_token": []}
    for round_ in range(size["rounds"]):
        # Alternate which goes first, so a drift of the machine's load favours neither.
        order = ("open", "api_token") if round_ % 2 == 0 else ("api_token", "open")
        for kind in order:
            cpu_before = cpu_seconds(pid)
            run = _wrk(url, size["wrk_s"], CONNECTIONS, bearer if kind == "api_token" else {})
            run["server_cpu_s"] = cpu_seconds(pid) - cpu_before
            run["duration_s"] = size["wrk_s"]
            runs[kind].append(run)
    return runs, idle_utilisation


def _cpu_ms(run: dict[str, Any], idle_utilisation: float) -> float:
    """The server's CPU time per request of one run, without its idle background."""
    busy_s = float(run["server_cpu_s"]) - idle_utilisation * float(run["duration_s"])
    return busy_s * 1000 / int(run["requests"])


def _measure(mode: str, target_cpu: int | None) -> dict[str, Any]:
    size = SIZES[mode]
    checks = access_token_checks(size["tokens"])
    login = login_times(size["verifies"], size["hashes"])
    api = api_token_overhead(mode, target_cpu)
    parts = (checks["met"], api["met"])
    return {
        "met": None if None in parts else all(parts),
        "access_token_check_us": checks,
        "api_monitors_with_token": api,
        "login_ms": login,
    }


async def auth_costs(mode: str, target_cpu: int | None) -> dict[str, Any]:
    return await asyncio.to_thread(_measure, mode, target_cpu)
