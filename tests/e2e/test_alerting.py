"""`spectra run` pages through the real sendgrid and twilio libraries, and the emailed ack link stops escalation.

The SendGrid and Twilio stand-ins of tests/support/providers.py run in a thread of this test; the spectra
process reaches them through SPECTRA_SENDGRID_URL / SPECTRA_TWILIO_URL. A real target goes down and up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from tests.factories.manifests import local_monitor, resource, to_yaml
from tests.support.processes import SPECTRA, Target, free_port, get
from tests.support.providers import Providers, text_of
from tests.support.waiting import wait_for

ALICE_EMAIL = "alice@example.com"
ALICE_PHONE = "+15550001111"
BOB_EMAIL = "bob@example.com"
SECOND_STEP_DELAY_S = 6


def manifests(port: int) -> str:
    """Alice is paged by email and SMS at once; Bob by email SECOND_STEP_DELAY_S later, unless acknowledged."""
    alice = {"displayName": "Alice", "email": ALICE_EMAIL, "phone": ALICE_PHONE, "channels": ["email", "sms"]}
    bob = {"displayName": "Bob", "email": BOB_EMAIL, "channels": ["email"]}
    steps = [
        {"delay": "0s", "targets": [{"contact": "alice"}], "channels": ["email", "sms"]},
        {"delay": f"{SECOND_STEP_DELAY_S}s", "targets": [{"contact": "bob"}], "channels": ["email"]},
    ]
    return to_yaml(
        resource("Contact", "alice", alice),
        resource("Contact", "bob", bob),
        resource("EscalationPolicy", "primary", {"steps": steps}),
        local_monitor(
            "local-web", port, failureThreshold=2, successThreshold=1, escalationPolicyRef={"name": "primary"}
        ),
    )


def post_form(url: str, form: dict[str, str]) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_down_pages_ack_link_stops_escalation_up_resolves(tmp_path: Path, target: Target, providers: Providers) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "alerting.yaml").write_text(manifests(target.port))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    env |= providers.env() | {"PYTHONUNBUFFERED": "1", "SPECTRA_SECRET_KEY": "e2e-alerting-secret-key-0123456789"}
    log_path = tmp_path / "spectra.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [
                SPECTRA,
                "run",
                str(folder),
                "--database",
                f"sqlite:///{tmp_path / 'spectra.db'}",
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
        try:
            _scenario(base, target, providers, process, log_path)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    log = log_path.read_text()
    assert "Traceback" not in log
    for secret in (providers.env()["SENDGRID_API_KEY"], providers.env()["TWILIO_AUTH_TOKEN"]):
        assert secret not in log


def _state(base: str) -> str | None:
    status, body = get(f"{base}/api/v1/monitors")
    if status != 200:
        return None
    return next((item["state"] for item in json.loads(body) if item["name"] == "local-web"), None)


def _scenario(base: str, target: Target, providers: Providers, process: subprocess.Popen[bytes], log: Path) -> None:
    wait_for(lambda: get(f"{base}/readyz")[0] == 200 or process.poll() is not None, "readyz")
    assert process.poll() is None, log.read_text()
    wait_for(lambda: _state(base) == "up", "monitor up")
    assert providers.emails(ALICE_EMAIL) == []

    # Down: Alice gets an email and an SMS within seconds (2 failed checks, one each LOCAL_INTERVAL, then the alerter).
    target.stop()
    [page] = wait_for(lambda: providers.emails(ALICE_EMAIL), "the page email at SendGrid", timeout=20)
    paged_at = time.monotonic()
    [sms] = wait_for(lambda: providers.texts(ALICE_PHONE), "the page SMS at Twilio", timeout=10)
    text = text_of(page)
    found = re.search(r"(http://127\.0\.0\.1:\d+/ack/[A-Za-z0-9_.\-]+)", text)
    assert found, text
    ack_url = found.group(1)
    assert ack_url.startswith(base)
    code = re.search(
        r"\b([A-Z0-9]{4,8})\b", page["subject"] if "subject" in page else page["personalizations"][0]["subject"]
    )
    assert code is not None
    assert code.group(1) in sms["Body"]

    # The link: GET shows it and changes nothing; POST acknowledges.
    status, shown = get(ack_url)
    assert status == 200
    assert '<dd id="state">open</dd>' in shown
    assert "Acknowledge</button>" in shown
    status, done = post_form(ack_url, {"action": "acknowledge"})
    assert status == 200, done
    assert "is acknowledged" in done
    assert time.monotonic() - paged_at < SECOND_STEP_DELAY_S, "acknowledged too late to test the next step"

    # Alice is told it was acknowledged (email and SMS: the channels that paged her).
    wait_for(lambda: len(providers.emails(ALICE_EMAIL)) >= 2, "the acknowledged email", timeout=10)
    assert "acknowledged by" in text_of(providers.emails(ALICE_EMAIL)[1]).lower()
    wait_for(lambda: len(providers.texts(ALICE_PHONE)) >= 2, "the acknowledged SMS", timeout=10)

    # The next step (Bob, SECOND_STEP_DELAY_S after the first) does not fire, nor does anything else.
    time.sleep(max(0.0, paged_at + SECOND_STEP_DELAY_S + 2 - time.monotonic()))
    assert providers.emails(BOB_EMAIL) == []
    assert len(providers.emails(ALICE_EMAIL)) == 2
    assert len(providers.texts(ALICE_PHONE)) == 2
    status, shown = get(ack_url)
    assert "already acknowledged" in shown

    # Up: Alice is told it is resolved, through the channels that paged her; Bob was never paged.
    target.start()
    wait_for(lambda: len(providers.emails(ALICE_EMAIL)) >= 3, "the resolved email", timeout=20)
    assert "resolved" in providers.emails(ALICE_EMAIL)[2]["subject"].lower()
    wait_for(lambda: len(providers.texts(ALICE_PHONE)) >= 3, "the resolved SMS", timeout=10)
    assert providers.emails(BOB_EMAIL) == []
    status, shown = get(ack_url)
    assert '<dd id="state">resolved</dd>' in shown


def test_alerter_command_serves_hooks_and_stops_on_sigterm(tmp_path: Path, providers: Providers) -> None:
    """`spectra alerter` (cluster mode) on a migrated database: health, ack pages and Twilio hooks, clean stop."""
    database = f"sqlite:///{tmp_path / 'spectra.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    env |= providers.env() | {"PYTHONUNBUFFERED": "1", "SPECTRA_PUBLIC_URL": "https://spectra.example.test"}
    command = [SPECTRA, "alerter", "--database", database, "--listen", f"127.0.0.1:{port}"]

    # An empty database is refused with the fix in the message.
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode == 1
    assert "spectra db upgrade" in refused.stderr

    subprocess.run([SPECTRA, "db", "upgrade", "--database", database], env=env, check=True, capture_output=True)
    log_path = tmp_path / "alerter.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
        try:
            wait_for(lambda: get(f"{base}/readyz")[0] == 200 or process.poll() is not None, "readyz")
            assert process.poll() is None, log_path.read_text()
            assert get(f"{base}/healthz")[0] == 200
            status, page = get(f"{base}/ack/not-a-token")
            assert status == 400
            assert "This link is not valid" in page
            assert post_form(f"{base}/hooks/twilio/sms", {"From": ALICE_PHONE, "Body": "ack ABCD"})[0] == 403
            status, metrics = get(f"{base}/metrics")
            assert status == 200
            assert "spectra_scheduler_lag_seconds" not in metrics  # no probe worker in the alerter
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    log = log_path.read_text()
    assert "Traceback" not in log
    assert providers.env()["TWILIO_AUTH_TOKEN"] not in log
