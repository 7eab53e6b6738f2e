"""`spectra probe --location` against MariaDB, as the cluster runs it: two workers share one location."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import sqlalchemy as sa

from tests.factories.manifests import local_monitor, to_yaml
from tests.support.processes import SPECTRA, Target, free_port, get
from tests.support.waiting import wait_for


def monitors(port: int) -> str:
    return to_yaml(*(local_monitor(f"web-{i}", port) for i in range(6)))


# A killed worker's leases move after TTL + the outage allowance (60 s by default): short here.
OUTAGE_ALLOWANCE_S = "3"


def start_probe(url: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [SPECTRA, "probe", "--location", "default", "--database", url, "--listen", f"127.0.0.1:{port}"]
    env = {**os.environ, "SPECTRA_PROBE_OUTAGE_ALLOWANCE_S": OUTAGE_ALLOWANCE_S}
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([*command, "--allow-private-targets"], stdout=out, stderr=subprocess.STDOUT, env=env)
    return process, port


def test_two_workers_share_a_location_and_survive_one_killed(mariadb_url: str, tmp_path: Path, target: Target) -> None:
    manifests = tmp_path / "m.yaml"
    manifests.write_text(monitors(target.port))
    applied = subprocess.run(
        [SPECTRA, "apply", str(manifests), "--database", mariadb_url], capture_output=True, text=True, check=False
    )
    assert applied.returncode == 0, applied.stderr
    engine = sa.create_engine(mariadb_url)
    first, first_port = start_probe(mariadb_url, tmp_path / "a.log")
    second, _ = start_probe(mariadb_url, tmp_path / "b.log")
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{first_port}/readyz")[0] == 200, "probe ready")
        assert get(f"http://127.0.0.1:{first_port}/api/v1/monitors")[0] == 401  # not loopback-only: token needed

        def owners() -> dict[str, int]:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "SELECT worker_id, COUNT(*) FROM monitor_leases WHERE lease_until > UTC_TIMESTAMP(6) GROUP BY worker_id"
                    )
                )
                return {str(worker): int(count) for worker, count in rows}

        wait_for(lambda: sorted(owners().values()) == [3, 3], "monitors shared 3 + 3", timeout=30)
        second.kill()  # no clean release: its leases must expire
        second.wait()
        wait_for(lambda: list(owners().values()) == [6], "survivor owns all six", timeout=30)

        def up_states() -> int:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT COUNT(*) FROM monitor_states WHERE state = 'up'")).scalar_one())

        wait_for(lambda: up_states() == 6, "all monitors up")
        with engine.connect() as conn:
            duplicates = conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM (SELECT monitor_id, scheduled_at FROM check_results "
                    "GROUP BY monitor_id, location, scheduled_at HAVING COUNT(*) > 1) AS d"
                )
            ).scalar_one()
        assert duplicates == 0

        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=20) == 0
        assert "stopped" in (tmp_path / "a.log").read_text()
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait()
        engine.dispose()


def test_probe_refuses_an_unmigrated_database(mariadb_url: str, tmp_path: Path) -> None:
    process, _ = start_probe(mariadb_url, tmp_path / "p.log")
    assert process.wait(timeout=30) == 1
    assert "run `spectra db upgrade`" in (tmp_path / "p.log").read_text()
