"""A TCP proxy in front of MariaDB that a fault test can cut, freeze or slow, while the real server runs.

The spectra processes under test connect to the proxy (`DatabaseProxy.url(database)`), so the test
decides what "the database" does without touching the shared server:

- `cut()`: an outage. Every open connection is reset and new ones are refused until `restore()`.
- `freeze()`: a frozen server. Connections stay open and are accepted, but no byte is forwarded in
  either direction until `restore()` (what a paused VM or a stalled disk looks like from a client).
- `delay_s = 0.2`: every forwarded chunk waits that long (a slow network or an overloaded server).

It runs on its own thread with plain sockets and `selectors`, so it keeps working while the test's
own code sleeps or waits.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy.engine import make_url

_CHUNK = 65_536


class DatabaseProxy:
    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 3306)) -> None:
        self.upstream = upstream
        self.delay_s = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._cut = False
        self._frozen = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="db-proxy", daemon=True)
        self._thread.start()

    # --- what a test uses ---------------------------------------------------------------------

    def url(self, mariadb_url: str) -> str:
        """``mariadb_url`` (a database on the real server) reached through this proxy."""
        return make_url(mariadb_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def cut(self) -> None:
        """Reset every connection and refuse new ones: the database is down."""
        with self._lock:
            self._cut = True
            self._frozen = False
            for sock in list(self._peers):
                self._close(sock, reset=True)

    def freeze(self) -> None:
        """Stop forwarding bytes (connections stay open, new ones are accepted and hang)."""
        with self._lock:
            self._frozen = True

    def restore(self) -> None:
        with self._lock:
            self._cut = False
            self._frozen = False

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.cut()
        try:
            yield
        finally:
            self.restore()

    def close(self) -> None:
        self._stopping = True
        self._thread.join(timeout=5)
        with self._lock:
            for sock in list(self._peers):
                self._close(sock, reset=False)
        self._selector.close()
        self._listener.close()

    # --- the forwarding thread ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            events = self._selector.select(timeout=0.05)
            with self._lock:
                frozen = self._frozen
                for key, _ in events:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        self._accept()
                    elif not frozen and sock in self._peers:
                        self._forward(sock)
            if frozen:
                time.sleep(0.05)  # the selector reports the waiting bytes again at once; do not spin
            elif self.delay_s:
                time.sleep(self.delay_s)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._cut:
            _reset(client)
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _reset(client)
            return
        for sock in (client, server):
            sock.setblocking(False)
        self._peers[client] = server
        self._peers[server] = client
        self._selector.register(client, selectors.EVENT_READ, None)
        self._selector.register(server, selectors.EVENT_READ, None)

    def _forward(self, source: socket.socket) -> None:
        target = self._peers[source]
        try:
            data = source.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(source, reset=False)
            return
        try:
            target.setblocking(True)
            target.sendall(data)
            target.setblocking(False)
        except OSError:
            self._close(source, reset=False)

    def _close(self, sock: socket.socket, *, reset: bool) -> None:
        other = self._peers.pop(sock, None)
        for each in (sock, other):
            if each is None:
                continue
            self._peers.pop(each, None)
            with suppress(KeyError, ValueError):
                self._selector.unregister(each)
            if reset:
                _reset(each)
            else:
                each.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashed server or a dropped route looks to the client."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
