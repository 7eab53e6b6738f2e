"""Mass outage: 500 monitors fail at once; how long until every first page reached the provider?

The cluster processes on MariaDB, as a deployment runs them: `spectra apply`, `spectra probe` (one location)
and `spectra alerter`, with the SendGrid stand-in of tests/support/providers.py in this process. One local
HTTP target serves every monitor (`/m<i>`); when it flips from 200 to 503, each monitor needs two failed
checks (interval 5 s, failureThreshold 2) before it is down, then the alerter opens its incident and the
first step pages Alice by email. Per monitor: seconds from the flip until its page reached the stand-in
(the subject names the monitor). Targets (bench/README.md): p95 <= 15 s, max <= 25 s.

Needs MariaDB on 127.0.0.1:3306 (what the tests use); skipped with a note otherwise.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from aiohttp import web

from bench.alerting import policy_manifests
from bench.probe import percentile
from tests.support.providers import sendgrid_fake
from tests.support.services import MARIADB_URL

TARGET_P95_S: Final = 15.0
TARGET_MAX_S: Final = 25.0
MONITORS = {"quick": 50, "default": 500, "full": 500}
INTERVAL_S: Final = 5
THRESHOLD: Final = 2
SPECTRA: Final = str(Path(sys.executable).with_name("spectra"))
SUBJECT = re.compile(r"default/(m\d+) is down")

MONITOR = """\
---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {{name: m{i}}}
spec:
  type: http
  interval: {interval}s
  timeout: 2s
  failureThreshold: {threshold}
  escalationPolicyRef: {{name: primary}}
  http: {{url: "http://127.0.0.1:{port}/m{i}"}}
"""


class FlippingTarget:
    """Answers 200 on every path until `down` is set, then 503."""

    def __init__(self) -> None:
        self.down = False
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _answer(self, request: web.Request) -> web.Response:
        return web.Response(status=503 if self.down else 200, text="down" if self.down else "ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _database() -> str | None:
    """A fresh database on the test MariaDB, or None when it is not reachable."""
    name = f"spectra_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(MARIADB_URL)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    except sa.exc.OperationalError:
        return None
    finally:
        engine.dispose()
    return sa.engine.make_url(MARIADB_URL).set(database=name).render_as_string(hide_password=False)


def _drop(url: str) -> None:
    name = sa.engine.make_url(url).database
    engine = sa.create_engine(MARIADB_URL)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    finally:
        engine.dispose()


def _count_up(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT COUNT(*) FROM monitor_states WHERE state = 'up'").scalar_one())
    except sa.exc.DBAPIError:
        return 0
    finally:
        engine.dispose()


async def mass_outage(mode: str) -> dict[str, Any]:  # noqa: PLR0915 - one scenario, top to bottom
    count = MONITORS.get(mode, MONITORS["default"])
    url = await asyncio.to_thread(_database)
    if url is None:
        return {"skipped": f"MariaDB is not reachable at {MARIADB_URL} (scripts/test starts it)", "met": None}
    processes: list[subprocess.Popen[bytes]] = []
    target = FlippingTarget()
    await target.start()
    try:
        with tempfile.TemporaryDirectory(prefix="spectra-bench-mass-") as tmp:
            folder = Path(tmp)
            text = policy_manifests("email") + "".join(
                MONITOR.format(i=i, port=target.port, interval=INTERVAL_S, threshold=THRESHOLD) for i in range(count)
            )
            (folder / "mass.yaml").write_text(text)
            applied = await asyncio.to_thread(
                subprocess.run,
                [SPECTRA, "apply", str(folder / "mass.yaml"), "--database", url],
                capture_output=True,
                text=True,
                check=False,
            )
            if applied.returncode != 0:
                raise RuntimeError(f"spectra apply failed: {applied.stderr[-2000:]}")
            async with sendgrid_fake() as sendgrid:
                env = {k: v for k, v in os.environ.items() if not k.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
                env |= {
                    "SENDGRID_API_KEY": sendgrid.api_key,
                    "SPECTRA_SENDGRID_URL": sendgrid.url,
                    "SPECTRA_EMAIL_FROM": "spectra@example.com",
                    "SPECTRA_SECRET_KEY": "bench-mass-outage-0123456789abcdef",
                    "SPECTRA_PUBLIC_URL": "http://127.0.0.1:9",
                }
                for name, command in (
                    ("probe", ["probe", "--location", "default", "--allow-private-targets", "--listen", _listen()]),
                    ("alerter", ["alerter", "--listen", _listen()]),
                ):
                    log = (folder / f"{name}.log").open("wb")
                    processes.append(
                        subprocess.Popen(  # noqa: S603 - our own command, arguments built here
                            [SPECTRA, *command, "--database", url], stdout=log, stderr=subprocess.STDOUT, env=env
                        )
                    )
                deadline = time.monotonic() + 120
                while await asyncio.to_thread(_count_up, url) < count:
                    if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                        raise RuntimeError("the monitors did not all come up: " + _tails(folder))
                    await asyncio.sleep(0.5)
                await asyncio.sleep(INTERVAL_S)  # steady state: every monitor checked up again

                target.down = True
                flipped = time.perf_counter()
                flipped_at = datetime.now(UTC)
                first_page: dict[str, float] = {}
                seen = 0
                deadline = time.monotonic() + 120
                while len(first_page) < count and time.monotonic() < deadline:
                    accepted = sendgrid.accepted()
                    for record in accepted[seen:]:
                        found = SUBJECT.search(str(record.json().get("personalizations", [{}])[0].get("subject", "")))
                        subject = found or SUBJECT.search(str(record.json().get("subject", "")))
                        if subject is not None:
                            first_page.setdefault(subject.group(1), time.perf_counter() - flipped)
                    seen = len(accepted)
                    await asyncio.sleep(0.05)
                duplicates = len(sendgrid.accepted()) - len(first_page)
                stages = await asyncio.to_thread(_stages, url, flipped_at)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
        await target.stop()
        await asyncio.to_thread(_drop, url)

    seconds = sorted(first_page.values())
    p95 = percentile(seconds, 95)
    worst = max(seconds, default=None)
    missing = count - len(seconds)
    return {
        "value": None if p95 is None else round(p95, 2),
        "unit": "s (p95, target flips to 503 -> that monitor's first page at the SendGrid stand-in)",
        "target": f"p95 <= {TARGET_P95_S:g} s, max <= {TARGET_MAX_S:g} s",
        "met": None
        if p95 is None
        else (p95 <= TARGET_P95_S and worst is not None and worst <= TARGET_MAX_S and not missing),
        "first_page_s": {
            "p50": _round(percentile(seconds, 50)),
            "p95": _round(p95),
            "max": _round(worst),
            "min": _round(min(seconds, default=None)),
        },
        "stages_s": stages,
        "monitors": count,
        "never_paged": missing,
        "other_emails": duplicates,
        "interval_s": INTERVAL_S,
        "failure_threshold": THRESHOLD,
        "setup": "MariaDB; spectra apply, spectra probe (1 location), spectra alerter; SendGrid stand-in here",
    }


STAGES: Final = {
    # seconds after the flip (this machine's clock; every process runs here), per monitor or incident
    "down_checked": "SELECT changed_at FROM monitor_states WHERE state = 'down'",
    "down_stored": "SELECT COALESCE(reported_at, changed_at) FROM monitor_states WHERE state = 'down'",
    "incident_open": "SELECT opened_at FROM incidents",
    "page_queued": "SELECT created_at FROM notifications",
    "page_sent": "SELECT sent_at FROM notifications WHERE sent_at IS NOT NULL",
}


def _stages(url: str, flipped_at: datetime) -> dict[str, dict[str, float | None]]:
    """Where the time went: p50/p95/max of each stage's timestamps, as seconds after the flip."""
    engine = sa.create_engine(url)
    out: dict[str, dict[str, float | None]] = {}
    try:
        with engine.connect() as conn:
            for stage, sql in STAGES.items():
                try:
                    stamps = [at for (at,) in conn.exec_driver_sql(sql)]
                except sa.exc.DBAPIError:  # an older schema (when measuring an older checkout)
                    conn.rollback()
                    continue
                seconds = sorted((at.replace(tzinfo=UTC) - flipped_at).total_seconds() for at in stamps)
                out[stage] = {"p50": _round(percentile(seconds, 50)), "p95": _round(percentile(seconds, 95))}
                out[stage]["max"] = _round(max(seconds, default=None))
    finally:
        engine.dispose()
    return out


def _listen() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _tails(folder: Path) -> str:
    return " | ".join(f"{p.name}: {p.read_text(errors='replace')[-800:]}" for p in sorted(folder.glob("*.log")))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
