"""`spectra run` against a target that echoes its credentials: no Secret value, and no link token, in any API
answer, table, page mail or log line.

The target (a thread of this test) reflects the X-Api-Key and Authorization headers it receives into
response headers and a redirect URL; each monitor's expectation then quotes what came back. The monitors
page through the SendGrid stand-in, so the process also queues and delivers mails with ack links. At the
end the monitor API, every table of the SQLite file, the mails and the log are searched.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from spectra.tokens import Purpose, Tokens
from tests.factories.manifests import monitor, resource, secret, to_yaml
from tests.factories.monitors import LOCAL_INTERVAL, LOCAL_TIMEOUT
from tests.support.processes import SPECTRA, free_port, get
from tests.support.providers import Providers, text_of
from tests.support.waiting import wait_for

SECRET_KEY = "e2e-side-doors-secret-key-0123456789abcdef"
API_KEY = "k3y-e2e-5f0c2a9d7b3e41f8a6c4d2b0e9f7a5c3"
PASSWORD = "Pa55-w0rd-e2e-very-secret"
BASIC = "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
ONCALL = "oncall@example.com"


def leaked_forms() -> list[str]:
    credential = BASIC.removeprefix("Basic ")
    return [API_KEY, quote(API_KEY, safe=""), BASIC, credential, f"ops:{PASSWORD}", PASSWORD, quote(PASSWORD, safe="")]


class Echo(BaseHTTPRequestHandler):
    """Answers every request with the credentials it was sent, where a check's expectations quote them."""

    def do_GET(self) -> None:
        sent = self.headers.get("Authorization") or self.headers.get("X-Api-Key") or ""
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", f"/landing?seen={quote(sent, safe='')}")
        elif self.path.startswith("/landing"):
            self.send_response(500)
        else:
            decoded = base64.b64decode(sent.removeprefix("Basic ")).decode() if sent.startswith("Basic ") else ""
            self.send_response(200)
            self.send_header("X-Echo", sent)
            self.send_header("X-Echo-Decoded", decoded)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def manifests(port: int) -> str:
    def from_secret(name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": "creds", "key": key}}}

    def echo_monitor(name: str, path: str, header: dict[str, Any], expect: dict[str, Any]) -> dict[str, Any]:
        http = {"url": f"http://127.0.0.1:{port}{path}", "headers": [header], "expect": expect}
        return monitor(
            name,
            interval=LOCAL_INTERVAL,
            timeout=LOCAL_TIMEOUT,
            failureThreshold=1,
            escalationPolicyRef={"name": "oncall"},
            http=http,
        )

    return to_yaml(
        secret("creds", apikey=API_KEY, basic=BASIC),
        resource("Contact", "ops", {"displayName": "Ops", "email": ONCALL, "channels": ["email"]}),
        resource("EscalationPolicy", "oncall", {"steps": [{"delay": "0s", "targets": [{"contact": "ops"}]}]}),
        echo_monitor("echo-api-key", "/", from_secret("X-Api-Key", "apikey"), {"headers": {"X-Echo": "nope"}}),
        echo_monitor("echo-basic", "/", from_secret("Authorization", "basic"), {"headers": {"X-Echo-Decoded": "nope"}}),
        echo_monitor("echo-redirect", "/redirect", from_secret("X-Api-Key", "apikey"), {}),
    )


def sqlite_dump(path: Path) -> str:
    """Every column of every row of every table, as stored."""
    with sqlite3.connect(path) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for table in tables for row in connection.execute(f'SELECT * FROM "{table}"'))


def monitors(base: str) -> list[dict[str, Any]]:
    status, body = get(f"{base}/api/v1/monitors")
    return list(json.loads(body)) if status == 200 else []


def test_spectra_run_keeps_echoed_secrets_and_link_tokens_out_of_api_tables_mails_and_log(
    tmp_path: Path, echo_port: int, providers: Providers
) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "monitors.yaml").write_text(manifests(echo_port))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database = tmp_path / "spectra.db"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    env |= providers.env() | {"PYTHONUNBUFFERED": "1", "SPECTRA_SECRET_KEY": SECRET_KEY}
    log_path = tmp_path / "spectra.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [SPECTRA, "run", str(folder), "--database", f"sqlite:///{database}", "--listen", f"127.0.0.1:{port}"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
        try:
            wait_for(lambda: get(f"{base}/readyz")[0] == 200 or process.poll() is not None, "readyz", timeout=60)
            assert process.poll() is None, log_path.read_text()
            # Every monitor down with the target's echo in its reason, and one page mail each.
            down = wait_for(
                lambda: len(monitors_down(base)) == 3 and monitors_down(base), "three monitors down", timeout=60
            )
            wait_for(lambda: len(providers.emails(ONCALL)) >= 3, "three page mails", timeout=60, interval=0.5)
            wait_for(lambda: delivered(database) >= 3, "the outbox rows marked sent", timeout=30, interval=0.5)
            answers = [get(f"{base}/api/v1/monitors")[1], json.dumps(down)]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    reasons = {m["name"]: m["reason"] for m in json.loads(answers[0])}
    assert "[redacted]" in reasons["echo-api-key"], reasons  # the echo was there, and was scrubbed
    assert "[redacted]" in reasons["echo-basic"], reasons
    mails = [text_of(mail) + json.dumps(mail) for mail in providers.emails(ONCALL)]
    stored = sqlite_dump(database)
    log = log_path.read_text()
    for form in leaked_forms():
        for where, text in (("API", "\n".join(answers)), ("tables", stored), ("mails", "\n".join(mails)), ("log", log)):
            assert form not in text, f"{form!r} found in the {where}"

    # The mails carry working ack links; no table holds their tokens.
    tokens = Tokens(SECRET_KEY)
    links = [found for mail in mails for found in re.findall(r"/ack/([A-Za-z0-9_.\-]+)", mail)]
    assert links
    for token in set(links):
        assert tokens.read(Purpose.ACK, token, max_age_s=3600)
        assert token not in stored
        assert token.rsplit(".", 1)[-1] not in stored
    assert "Traceback" not in log


def monitors_down(base: str) -> list[dict[str, Any]]:
    return [m for m in monitors(base) if m["state"] == "down"]


def delivered(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM notifications WHERE status = 'sent'").fetchone()[0])
