"""Signing in against the real `spectra run`: the first admin's link from its log, the form, login,
TOTP enrolment, logout, login with TOTP, who am I (issue 15's browser walk, over plain HTTP)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.support.databases import sqlite_only
from tests.support.processes import SPECTRA, free_port, get
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

GOOD = "plum-orbit-saddle-91"
STEP = 30
SETUP_LINE = re.compile(r"set up the first one at (\S+)/setup/(\S+) \(once")


@sqlite_only
def test_first_admin_to_totp_sign_in_with_the_real_spectra_run(tmp_path: Path, database_url: str) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    port = free_port()
    log = tmp_path / "run.log"
    env = {**os.environ, "SPECTRA_SECRET_KEY": "auth-e2e-key-0123456789abcdef0123", "PYTHONUNBUFFERED": "1"}
    env.pop("SPECTRA_PUBLIC_URL", None)
    with log.open("w") as out:
        process = subprocess.Popen(
            [SPECTRA, "run", str(manifests), "--database", database_url, "--listen", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
    try:
        wait_for(
            lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200 or process.poll() is not None, "ready", timeout=60
        )
        found = wait_for(lambda: SETUP_LINE.search(log.read_text()), "the first admin's link", timeout=30)
        assert found is not None
        base = found.group(1)
        with httpx.Client(base_url=base, timeout=30) as http:
            assert 'name="email"' in http.get(f"/setup/{found.group(2)}").text
            form = {"email": "root@example.com", "name": "Root", "password": GOOD, "password_again": GOOD}
            assert "Your password is set" in http.post(f"/setup/{found.group(2)}", data=form).text
            login = {"email": "root@example.com", "password": GOOD, "use_cookies": True}
            signed = http.post("/api/v1/auth/login", json=login).json()
            csrf = {"X-CSRF-Token": signed["csrf_token"]}
            shown = http.post("/api/v1/auth/mfa/enrol", headers=csrf)
            assert shown.status_code == 200, shown.text
            code = pyotp.TOTP(shown.json()["secret"].replace(" ", ""))
            confirmed = http.post("/api/v1/auth/mfa/confirm", headers=csrf, json={"code": code.now()})
            assert confirmed.status_code == 200, confirmed.text
            assert http.post("/api/v1/auth/logout", headers=csrf).status_code == 200
            assert http.get("/api/v1/auth/me").status_code == 401
            step = http.post("/api/v1/auth/login", json=login).json()
            assert step["mfa_required"] is True
            # A code is good once per 30 s step: wait for the step after the enrolment's code.
            time.sleep(STEP - time.time() % STEP + 1)
            later = http.post(
                "/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": code.now(), "use_cookies": True}
            )
            assert later.status_code == 200, later.text
            assert later.json()["email"] == "root@example.com"
            me = http.get("/api/v1/auth/me").json()
            assert me == {
                "email": "root@example.com",
                "organization": "",
                "role": "admin",
                "platform_admin": True,
                "impersonator": None,
                "via": "session",
            }
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()
