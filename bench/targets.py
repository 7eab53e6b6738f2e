"""Local targets for the benchmarks, all on 127.0.0.1, in a process of their own pinned to another core.

One child process (multiprocessing, spawn) runs a uvloop event loop serving:

- `http`: a raw asyncio HTTP/1.1 responder (no framework: the target must not be the bottleneck, and
  on 2 cores it gets one core). `GET /delay/<ms>` answers after that many milliseconds.
- `https`: the same responder behind TLS, with an ECDSA certificate from the bench CA (trustme).
- `tcp`: accepts and closes; what a bare TCP connect check needs.

dnsmasq runs as its own process on a high port, pinned to the same core as the targets. Both stop
when the harness stops them, when their parent dies, or after `max_lifetime_s`, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import trustme

DNSMASQ = "/usr/sbin/dnsmasq"
DNS_NAME = "bench.test"
DNS_ADDRESS = "127.0.0.1"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"


def pin(cpu: int | None, pid: int = 0) -> None:
    """Run `pid` (0: this process, and threads it starts later) on one core only."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, {cpu})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (no psutil)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


@dataclass
class TargetStats:
    connections: int = 0
    requests: int = 0
    tls_connections: int = 0
    tls_sessions_reused: int = 0  # must stay 0: the https bench claims a fresh handshake per check


@dataclass(frozen=True)
class Ports:
    http: int
    https: int
    tcp: int


# --- the child process --------------------------------------------------------------------------


class _HttpResponder(asyncio.Protocol):
    """Answers every request with `200 ok`; honours `Connection: close`; `/delay/<ms>` waits first."""

    def __init__(self, stats: TargetStats) -> None:
        self.stats = stats
        self.buffer = b""
        self.busy = False  # a delayed answer is pending; later pipelined requests wait for it
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.stats.connections += 1
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.stats.tls_connections += 1
            self.stats.tls_sessions_reused += bool(ssl_object.session_reused)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._serve()

    def _serve(self) -> None:
        while not self.busy and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            path = parts[1] if len(parts) > 1 else b"/"
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
            # The bench only sends GETs; skip a body anyway so a stray POST cannot desynchronise us.
            body_length = int(headers.get(b"content-length", b"0") or 0)
            self.buffer = self.buffer[body_length:]
            close = headers.get(b"connection", b"").lower() == b"close" or parts[-1] == b"HTTP/1.0"
            self.stats.requests += 1
            if path.startswith(b"/delay/"):
                self.busy = True
                delay = float(path[7:].split(b"?")[0]) / 1000
                self._answer_at(time.perf_counter() + delay, close)
                return
            self._answer(close)

    def _answer_at(self, deadline: float, close: bool) -> None:
        # libuv timers count whole milliseconds from a cached loop time, so uvloop's call_later can
        # fire up to 1 ms early; wait out the rest so the answer never comes before the delay.
        remaining = deadline - time.perf_counter()
        if remaining > 0:
            asyncio.get_running_loop().call_later(remaining, self._answer_at, deadline, close)
        else:
            self._answer(close)

    def _answer(self, close: bool) -> None:
        self.busy = False
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(_OK + (b"Connection: close\r\n\r\nok\n" if close else b"\r\nok\n"))
        if close:
            self.transport.close()
        else:
            self._serve()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class _AcceptClose(asyncio.Protocol):
    def __init__(self, stats: TargetStats) -> None:
        self.stats = stats

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.stats.connections += 1
        transport.close()


def _server_ssl_context(cert_chain_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as tmp:
        chain, key = Path(tmp, "chain.pem"), Path(tmp, "key.pem")
        chain.write_bytes(cert_chain_pem)
        key.write_bytes(key_pem)
        context.load_cert_chain(chain, key)
    return context


async def _serve(conn: Connection, cert_chain_pem: bytes, key_pem: bytes, max_lifetime_s: float) -> None:
    loop = asyncio.get_running_loop()
    stats = TargetStats()
    server_ssl = _server_ssl_context(cert_chain_pem, key_pem)
    backlog = 4096  # the saturating runs open hundreds of connections at once
    http = await loop.create_server(lambda: _HttpResponder(stats), "127.0.0.1", 0, backlog=backlog)
    https = await loop.create_server(lambda: _HttpResponder(stats), "127.0.0.1", 0, backlog=backlog, ssl=server_ssl)
    tcp = await loop.create_server(lambda: _AcceptClose(stats), "127.0.0.1", 0, backlog=backlog)
    ports = Ports(*(server.sockets[0].getsockname()[1] for server in (http, https, tcp)))
    conn.send(ports)

    stop = asyncio.Event()

    def on_control() -> None:
        try:
            command = conn.recv()
        except EOFError:  # the harness went away
            stop.set()
            return
        if command == "stats":
            conn.send(asdict(stats))
        elif command == "reset":
            for name in asdict(stats):
                setattr(stats, name, 0)
            conn.send("ok")
        else:
            stop.set()

    loop.add_reader(conn.fileno(), on_control)
    parent, deadline = os.getppid(), time.monotonic() + max_lifetime_s
    while not stop.is_set() and os.getppid() == parent and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    loop.remove_reader(conn.fileno())
    for server in (http, https, tcp):
        server.close()


def _target_main(conn: Connection, cpu: int | None, cert_chain_pem: bytes, key_pem: bytes, lifetime: float) -> None:
    import uvloop

    pin(cpu)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the harness, which stops us
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(conn, cert_chain_pem, key_pem, lifetime))


# --- the harness side ---------------------------------------------------------------------------


@dataclass
class BenchCA:
    """A CA and a server certificate for 127.0.0.1 / localhost; clients trust it through their SSLContext."""

    ca: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


class Targets:
    """The target process: start it, read its counters and CPU time, stop it."""

    def __init__(self, ca: BenchCA, cpu: int | None, max_lifetime_s: float = 900.0) -> None:
        self.ca, self.cpu, self.max_lifetime_s = ca, cpu, max_lifetime_s
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: Connection | None = None
        self._ports: Ports | None = None

    def __enter__(self) -> Targets:
        spawn = multiprocessing.get_context("spawn")  # a clean child: no copied event loop or pinned state
        self.conn, child = spawn.Pipe()
        chain = b"".join(blob.bytes() for blob in self.ca.server.cert_chain_pems)
        key = self.ca.server.private_key_pem.bytes()
        self.process = spawn.Process(
            target=_target_main,
            args=(child, self.cpu, chain, key, self.max_lifetime_s),
            name="bench-targets",
            daemon=True,
        )
        self.process.start()
        child.close()
        if not self.conn.poll(30):
            self.__exit__(None, None, None)
            raise RuntimeError("the target process did not start within 30 s")
        self._ports = self.conn.recv()
        return self

    @property
    def ports(self) -> Ports:
        assert self._ports is not None, "the target process is not running"
        return self._ports

    @property
    def pid(self) -> int:
        assert self.process is not None
        assert self.process.pid is not None
        return self.process.pid

    def _ask(self, command: str) -> Any:
        assert self.conn is not None
        self.conn.send(command)
        if not self.conn.poll(10):
            raise RuntimeError(f"the target process did not answer {command!r}")
        return self.conn.recv()

    def stats(self) -> dict[str, int]:
        answer: dict[str, int] = self._ask("stats")
        return answer

    def reset(self) -> None:
        self._ask("reset")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError, BrokenPipeError):
                self.conn.send("stop")
            self.conn.close()
        if self.process is not None:
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)


def _dnsmasq_preexec(cpu: int | None) -> None:
    """In the child before exec: pin it, and SIGTERM it if the harness dies (PR_SET_PDEATHSIG).

    dnsmasq drops privileges, which clears its own death signal, so the signal goes to `timeout`
    in front of it, which passes it on.
    """
    pin(cpu)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def free_port_outside_ephemeral_range() -> int:
    """A port free for both UDP and TCP (dnsmasq binds both) below the kernel's ephemeral range.

    A port from the ephemeral range can be taken by an outgoing connection of the saturating runs
    between our check and dnsmasq's bind.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randint(max(1024, low - 20000), low - 1)  # noqa: S311 - not for security
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port for dnsmasq")


@dataclass(frozen=True)
class DnsTarget:
    port: int
    pid: int


@contextlib.contextmanager
def dnsmasq(cpu: int | None, max_lifetime_s: float = 300.0) -> Iterator[DnsTarget | None]:
    """dnsmasq answering `bench.test A 127.0.0.1` on a high loopback port (None: dnsmasq is not installed).

    It stops with this context, with the harness process (PR_SET_PDEATHSIG) or after `max_lifetime_s`.
    """
    binary = DNSMASQ if os.path.exists(DNSMASQ) else shutil.which("dnsmasq")
    if binary is None:
        yield None
        return
    timeout = shutil.which("timeout")
    wrapper = [timeout, "-s", "TERM", str(int(max_lifetime_s))] if timeout else []
    for attempt in range(3):
        port = free_port_outside_ephemeral_range()
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
            [*wrapper, binary, *_dnsmasq_args(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: _dnsmasq_preexec(cpu),  # noqa: PLW1509 - only affinity + prctl, then exec
        )
        try:
            _wait_for_dns(port, process)
            break
        except RuntimeError:
            _stop(process)
            if attempt == 2:
                raise
    try:
        # The CPU to measure is dnsmasq's, the child of `timeout`.
        yield DnsTarget(port, _only_child(process.pid) if wrapper else process.pid)
    finally:
        _stop(process)


def _only_child(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one child of process {pid}, found {children}")
    return int(children[0])


def _dnsmasq_args(port: int) -> list[str]:
    return [
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--pid-file=",
        f"--host-record={DNS_NAME},{DNS_ADDRESS}",
    ]


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    if process.stderr is not None:
        process.stderr.close()


def _wait_for_dns(port: int, process: subprocess.Popen[bytes]) -> None:
    import dns.message
    import dns.query

    query = dns.message.make_query(DNS_NAME, "A")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"dnsmasq exited with {process.returncode}: {error.strip()}")
        with contextlib.suppress(OSError, dns.exception.Timeout):
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)
            return
        time.sleep(0.05)
    raise RuntimeError("dnsmasq did not answer within 10 s")
