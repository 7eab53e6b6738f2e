"""`spectra run` as a process of its own for the measures that need the real server (auth, run_memory).

Pinned before exec, so every thread it starts is pinned too; its environment holds none of the caller's
SPECTRA_/SendGrid/Twilio settings, only the throw-away secret key given; its log goes to `folder/run.log`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def start(
    manifests: Path, database_url: str, port: int, *, cpu: int | None, folder: Path, secret_key: str
) -> subprocess.Popen[bytes]:
    """`spectra run manifests` on `database_url`, listening on 127.0.0.1:`port`, pinned to `cpu`."""
    pin = f"import os; os.sched_setaffinity(0, {{{cpu}}}); " if cpu is not None else ""
    code = pin + "from spectra.cli import cli; cli()"
    args = ["run", str(manifests), "--database", database_url, "--listen", f"127.0.0.1:{port}"]
    args += ["--artifacts", str(folder / "artifacts")]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    env |= {"SPECTRA_SECRET_KEY": secret_key}
    with (folder / "run.log").open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
            [sys.executable, "-c", code, *args], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes], *, timeout_s: float = 20) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
