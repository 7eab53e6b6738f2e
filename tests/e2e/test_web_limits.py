"""Hostile clients against the real `spectra run` and `spectra web`: slow connections are closed after the
read timeout and never starve the process, connections over the cap are closed at once, X-Forwarded-For
is believed only from a configured proxy, guessed heartbeat tokens are limited while pages keep
answering, and the open monitor API refuses foreign Host headers."""

from __future__ import annotations

import asyncio
import collections
import http.client
import os
import resource
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories.manifests import components, heartbeat_monitor, secret, status_page, to_yaml
from tests.support.processes import SPECTRA, free_port, get, run_spectra
from tests.support.waiting import wait_for

TOKEN = "e2e-limits-heartbeat-token-0123456789"
MANIFESTS = to_yaml(
    heartbeat_monitor("backup", "tokens", "backup"),
    secret("tokens", backup=TOKEN),
    status_page("public", slug="acme", title="Acme status", groups=components("backup", component="Backups")),
)
# Far more than a request needs, far less than the minute an attack is allowed to take without the fix.
ANSWERS_WITHIN_S = 5.0
CLOSED_WITHIN_S = 30.0


def _env(**settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    return env | {"SPECTRA_SECRET_KEY": "e2e-limits-secret-key-0123456789abcdef", "PYTHONUNBUFFERED": "1", **settings}


class Process:
    """A `spectra` server command on 127.0.0.1, logging to a file, killed at the end if still running."""

    def __init__(self, tmp: Path, args: list[str], settings: dict[str, str]) -> None:
        self.port = free_port()
        self.log = tmp / f"{args[0]}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [SPECTRA, *args, "--listen", f"127.0.0.1:{self.port}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                env=_env(**settings),
            )
        wait_for(lambda: get(f"{self.base}/readyz")[0] == 200 or self.process.poll() is not None, "readyz")
        assert self.process.poll() is None, self.log.read_text()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stop(self) -> str:
        """SIGTERM; the log, after checking the process ended cleanly and nothing crashed."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0, self.log.read_text()
        text = self.log.read_text()
        assert "Traceback" not in text
        return text

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def spectra_web(**settings: str) -> Process:
        database = f"sqlite:///{tmp_path / 'shared.db'}"
        if not (tmp_path / "shared.db").exists():
            (tmp_path / "page.yaml").write_text(MANIFESTS)
            applied = run_spectra("apply", str(tmp_path / "page.yaml"), "--database", database, env=_env())
            assert applied.returncode == 0, applied.stderr
        started.append(Process(tmp_path, ["web", "--database", database], settings))
        return started[-1]

    yield spectra_web
    for process in started:
        process.kill()


def open_slow_connections(port: int, count: int) -> list[socket.socket]:
    """`count` connections that each start a request and never finish it (slowloris)."""
    starts = [
        b"",
        b"GET /heal",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"POST /s/acme/subscribe HTTP/1.1\r\n",
    ]
    held = []
    for n in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=CLOSED_WITHIN_S)
        if starts[n % len(starts)]:
            sock.sendall(starts[n % len(starts)])
        held.append(sock)
    return held


def wait_closed_by_server(held: list[socket.socket], timeout: float = CLOSED_WITHIN_S) -> int:
    """How many of `held` the server closed (EOF or reset) within `timeout` seconds."""
    closed = 0
    with selectors.DefaultSelector() as selector:
        for sock in held:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, data=sock)
        deadline = time.monotonic() + timeout
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                ready: socket.socket = key.data
                try:
                    data = ready.recv(4096)
                except ConnectionResetError:
                    data = b""
                if not data:
                    selector.unregister(ready)
                    closed += 1
    return closed


def slow_connection_count() -> int:
    """Several hundred, within what this machine's open-files limit leaves the test."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(400, soft // 4)


def test_slow_clients_are_closed_after_the_read_timeout_and_spectra_run_keeps_working(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "monitors.yaml").write_text(MANIFESTS)
    database = f"sqlite:///{tmp_path / 'spectra.db'}"
    run = Process(tmp_path, ["run", str(folder), "--database", database], {"SPECTRA_HTTP_READ_TIMEOUT_S": "2"})
    try:
        files_before = run.open_files()
        held = open_slow_connections(run.port, slow_connection_count())
        try:
            assert get(f"{run.base}/healthz") == (200, "ok\n")  # within get()'s 5 s, while they are held
            assert wait_closed_by_server(held) == len(held)
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: run.open_files() <= files_before + 10, "the server's descriptors back to where they were")
        # The process is whole: it answers, and its manifest watcher still reloads a changed folder.
        nightly = heartbeat_monitor("nightly", "more-tokens", "nightly")
        (folder / "more.yaml").write_text(to_yaml(nightly, secret("more-tokens", nightly=f"{TOKEN}-nightly")))
        listed = f"{run.base}/api/v1/monitors"
        wait_for(lambda: '"name":"nightly"' in get(listed)[1], "the added monitor after a reload", timeout=60)
        # The line comes once the worker has taken the new set too, a moment after the API shows it.
        wait_for(lambda: "reloaded:" in run.log.read_text(), "the reload's log line", timeout=60)
        assert run.process.poll() is None
        run.stop()
    finally:
        run.kill()


def test_connections_over_the_cap_are_closed_at_once(start: Callable[..., Process]) -> None:
    # The read timeout is long: what closes the extra connections here is the cap, not the deadline.
    web = start(SPECTRA_HTTP_MAX_CONNECTIONS="40", SPECTRA_HTTP_READ_TIMEOUT_S="120")
    held = open_slow_connections(web.port, 40)
    time.sleep(1)  # the server has accepted them (an ordering aid, not a budget)
    extra = open_slow_connections(web.port, 25)
    try:
        assert wait_closed_by_server(extra, timeout=60) == len(extra)  # long before the 120 s read timeout
    finally:
        for sock in held + extra:
            sock.close()
    wait_for(lambda: get(f"{web.base}/healthz") == (200, "ok\n"), "/healthz once the held connections are gone")
    web.stop()


@pytest.mark.parametrize(
    ("trusted", "per_address"),
    [
        ({}, False),  # the default: the header is ignored, every guess counts against 127.0.0.1
        ({"SPECTRA_TRUSTED_PROXIES": "10.9.0.0/16"}, False),  # a proxy elsewhere is no reason to believe us
        ({"SPECTRA_TRUSTED_PROXIES": "127.0.0.1"}, True),
    ],
    ids=["default", "other-proxy", "loopback-proxy"],
)
def test_x_forwarded_for_counts_only_from_a_configured_proxy(
    start: Callable[..., Process], trusted: dict[str, str], per_address: bool
) -> None:
    web = start(SPECTRA_HEARTBEAT_UNKNOWN_PER_MINUTE="5", **trusted)
    with httpx.Client(base_url=web.base, timeout=ANSWERS_WITHIN_S * 6) as client:
        codes = [
            client.get(f"/api/v1/heartbeat/guess-{n}", headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(12)
        ]
        # The same forwarded address again and again is one client either way.
        same = [
            client.get(f"/api/v1/heartbeat/again-{n}", headers={"X-Forwarded-For": "198.51.100.1"}).status_code
            for n in range(7)
        ]
    if per_address:
        assert codes == [404] * 12
        assert same == [404] * 5 + [429] * 2
    else:
        assert codes == [404] * 5 + [429] * 7
        assert same == [429] * 7
    web.stop()


async def test_a_flood_of_guessed_heartbeat_tokens_is_limited_and_pages_keep_answering(
    start: Callable[..., Process],
) -> None:
    web = start()
    base = web.base
    codes: collections.Counter[int] = collections.Counter()
    flooding = True

    async def guess(client: httpx.AsyncClient, n: int) -> None:
        tries = 0
        while flooding:
            codes[(await client.get(f"/api/v1/heartbeat/guess-{n}-{tries}")).status_code] += 1
            tries += 1

    limits = httpx.Limits(max_connections=100)
    async with (
        httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as flood,
        httpx.AsyncClient(base_url=base, timeout=60) as visitor,
    ):
        guessers = [asyncio.create_task(guess(flood, n)) for n in range(100)]
        await asyncio.sleep(2)
        waits = []
        for _ in range(5):
            began = time.monotonic()
            page = await visitor.get("/s/acme")
            waits.append(time.monotonic() - began)
            assert (page.status_code, "Acme status" in page.text) == (200, True)
        pushed = await visitor.get(f"/api/v1/heartbeat/{TOKEN}")  # a real push from this address: 429 too
        flooding = False
        await asyncio.gather(*guessers)
    assert max(waits) < ANSWERS_WITHIN_S, waits
    assert codes[404] <= 30  # the default limit of the one flooding address, lookups in flight included
    assert codes[429] > codes[404]
    assert pushed.status_code == 429
    web.stop()


def monitors_with_host(port: int, host: str) -> int:
    """The status of /api/v1/monitors asked with exactly this Host header (none at all: None)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWERS_WITHIN_S * 6)
    try:
        connection.putrequest("GET", "/api/v1/monitors", skip_host=True)
        connection.putheader("Host", host)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_open_monitor_api_refuses_foreign_hosts(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "monitors.yaml").write_text(MANIFESTS)
    run = Process(tmp_path, ["run", str(folder), "--database", f"sqlite:///{tmp_path / 'spectra.db'}"], {})
    try:
        hosts = {
            "evil.example": 421,
            f"evil.example:{run.port}": 421,
            "127.0.0.1.evil.example": 421,
            "localhost.evil": 421,
            "": 421,
            f"127.0.0.1:{run.port}": 200,
            "localhost": 200,
            f"localhost:{run.port}": 200,
            f"[::1]:{run.port}": 200,
        }
        assert {host: monitors_with_host(run.port, host) for host in hosts} == hosts
        assert get(f"{run.base}/healthz") == (200, "ok\n")  # only the monitor API is so strict
        run.stop()
    finally:
        run.kill()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SPECTRA_HTTP_READ_TIMEOUT_S", "0"),
        ("SPECTRA_HTTP_MAX_CONNECTIONS", "lots"),
        ("SPECTRA_TRUSTED_PROXIES", "*"),
        ("SPECTRA_HEARTBEAT_UNKNOWN_PER_MINUTE", "-1"),
    ],
)
def test_a_bad_web_setting_stops_spectra_web_naming_it(tmp_path: Path, name: str, value: str) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    (tmp_path / "page.yaml").write_text(MANIFESTS)
    assert run_spectra("apply", str(tmp_path / "page.yaml"), "--database", database, env=_env()).returncode == 0
    port = free_port()
    ended = run_spectra("web", "--database", database, "--listen", f"127.0.0.1:{port}", env=_env(**{name: value}))
    assert ended.returncode == 1, ended.stderr
    assert name in ended.stderr
    assert "Traceback" not in ended.stderr + ended.stdout


def test_a_bad_web_setting_stops_spectra_operator_naming_it(tmp_path: Path) -> None:
    """The operator's health server takes the same settings, checked before it reaches for the cluster."""
    database = f"sqlite:///{tmp_path / 'operator.db'}"
    assert run_spectra("db", "upgrade", "--database", database, env=_env()).returncode == 0
    listen = f"127.0.0.1:{free_port()}"
    env = _env(SPECTRA_HTTP_READ_TIMEOUT_S="0") | {"KUBECONFIG": str(tmp_path / "no-kubeconfig")}
    ended = run_spectra("operator", "--database", database, "--listen", listen, env=env)
    assert ended.returncode == 1, ended.stderr
    assert "SPECTRA_HTTP_READ_TIMEOUT_S" in ended.stderr
    assert "Traceback" not in ended.stderr + ended.stdout
