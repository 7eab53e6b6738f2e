"""Issue 13, class 7 on the real process: what a target says reaches chat as inert text.

`spectra run` checks a target that answers with Slack markup in a header the monitor expects; the
check's reason quotes that header, the incident pages a Slack webhook (a receiver of this test on
127.0.0.1), and the message must carry the target's text escaped: no `<!channel>`, no mention, no link
of the target's own beside our Acknowledge link.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.factories.manifests import monitor, resource, secret, to_yaml
from tests.factories.monitors import LOCAL_INTERVAL, LOCAL_TIMEOUT
from tests.support.processes import SPECTRA, free_port
from tests.support.waiting import wait_for

# What a hostile target puts in the header the monitor checks: a channel ping, a mention, its own link
# dressed as ours, and an entity.
HOSTILE = "<!channel><@U024BE7LH><https://evil.example/a|Acknowledge>&amp"


class _Recorder(BaseHTTPRequestHandler):
    posts: list[dict[str, Any]]

    def do_GET(self) -> None:  # the target: up, but its header is not what the monitor expects
        self.send_response(200)
        self.send_header("X-State", HOSTILE)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self) -> None:  # the Slack webhook
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).posts.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    posts: list[dict[str, Any]] = []
    handler = type("Recorder", (_Recorder,), {"posts": posts})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], posts
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_targets_markup_reaches_slack_as_text(tmp_path: Path, server: tuple[int, list[dict[str, Any]]]) -> None:
    port, posts = server
    folder = tmp_path / "manifests"
    folder.mkdir()
    check = {"url": f"http://127.0.0.1:{port}/", "expect": {"headers": {"X-State": "healthy"}}}
    slack = {"slack": {"webhookFrom": {"secretKeyRef": {"name": "hooks", "key": "slack"}}}}
    (folder / "set.yaml").write_text(
        to_yaml(
            secret("hooks", slack=f"http://127.0.0.1:{port}/services/T0/B0/X0"),
            resource("EscalationPolicy", "chat", {"steps": [{"delay": "0s", "targets": [slack]}]}),
            monitor(
                "hostile",
                type="http",
                http=check,
                interval=LOCAL_INTERVAL,
                timeout=LOCAL_TIMEOUT,
                failureThreshold=1,
                escalationPolicyRef={"name": "chat"},
            ),
        )
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("SPECTRA_")}
    env |= {"PYTHONUNBUFFERED": "1", "SPECTRA_SECRET_KEY": "e2e-hostile-messages-key-0123456789"}
    database, listen = f"sqlite:///{tmp_path / 'db.sqlite'}", f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "spectra.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [SPECTRA, "run", str(folder), "--database", database, "--listen", listen],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
        try:
            wait_for(lambda: posts or process.poll() is not None, "the Slack page", timeout=120)
            assert process.poll() is None, log_path.read_text()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)

    [message] = posts[:1]
    text = message["text"]
    assert message["unfurl_links"] is False
    assert message["unfurl_media"] is False
    assert "&lt;!channel&gt;&lt;@U024BE7LH&gt;&lt;https://evil.example/a|Acknowledge&gt;&amp;amp" in text, text
    for live in ("<!channel>", "<@U024BE7LH>", "<https://evil.example"):
        assert live not in text
    assert text.count("<") == 1, f"our Acknowledge link is the only markup: {text}"
    assert "|Acknowledge>" in text
