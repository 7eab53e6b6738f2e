"""What keeps hostile clients from holding a web server's connections: a read deadline, a connection cap,
descriptor headroom, and forwarded headers trusted only from configured proxies.

uvicorn (on h11) closes a connection that is idle *between* requests (`timeout_keep_alive`), but has no
deadline for a request that never finishes arriving: a client that sends half a request line, or a
body one byte a minute, holds its connection and descriptor for ever. :class:`GuardedH11Protocol` is
uvicorn's own h11 protocol with that deadline and a cap on open connections; parsing stays h11's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
from dataclasses import dataclass
from typing import ClassVar, Final

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("spectra")

DEFAULT_READ_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_CONNECTIONS: Final = 1000
# The connection cap takes at most this share of the open-files limit: the rest is for what must never
# starve (database connections, the manifest watcher, a probe worker's sockets).
CONNECTIONS_SHARE_OF_FILES: Final = 4

# The request has arrived whole and the app is answering it: from then on the app's time is not cut.
_REQUEST_RECEIVED: Final = (h11.DONE, h11.MUST_CLOSE)


@dataclass(frozen=True)
class ServerLimits:
    """How a web server treats its clients; the defaults are safe for a server on the internet."""

    # Seconds a client has to send a whole request (head and body), from connecting or from the end of
    # the previous response; then the connection is closed.
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    # Open connections at most; more are closed at once, before anything is read from them.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # Addresses or networks whose X-Forwarded-For / X-Forwarded-Proto are believed (none: never).
    trusted_proxies: tuple[str, ...] = ()


def trusted_proxies(raw: str, *, setting: str) -> tuple[str, ...]:
    """Comma- or space-separated addresses and CIDR networks, normalized; ValueError naming `setting`."""
    proxies = []
    for item in raw.replace(",", " ").split():
        try:
            proxies.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{setting}: {item!r} is not an IP address or CIDR network") from None
    return tuple(proxies)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard in (resource.RLIM_INFINITY, soft):  # no soft limit may be infinite (macOS): keep it
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, hard, exc)
        return soft
    return hard


def connection_cap(wanted: int, open_files: int) -> int:
    """`wanted`, or less when it would leave the rest of the process too few descriptors."""
    allowed = max(1, open_files // CONNECTIONS_SHARE_OF_FILES)
    if wanted > allowed:
        log.warning(
            "web connections capped at %d instead of %d: the open-files limit is %d", allowed, wanted, open_files
        )
        return allowed
    return wanted


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request to arrive and a cap on connections.

    Subclassed per server by :func:`guarded_protocol`, which sets the two class attributes.
    """

    read_timeout_s: ClassVar[float] = DEFAULT_READ_TIMEOUT_S
    max_connections: ClassVar[int] = DEFAULT_MAX_CONNECTIONS
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            # Closed before reading anything: its descriptor is back at once, and clients already
            # connected keep being served.
            transport.close()
            return
        self._start_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_deadline()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(self.read_timeout_s, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.conn.their_state not in _REQUEST_RECEIVED and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(limits: ServerLimits) -> type[GuardedH11Protocol]:
    """The protocol class a uvicorn server with `limits` uses."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"read_timeout_s": limits.read_timeout_s, "max_connections": limits.max_connections},
    )
