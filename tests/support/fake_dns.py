"""A stub resolver for the event loop: names answer what a test says, IP literals go to the real one.

The `dns` fixture (tests/conftest.py) replaces the running loop's `getaddrinfo` for one test (asyncio, aiohttp and the
egress guard all resolve through it), so a test can play DNS rebinding without a DNS server.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any


class FakeDns:
    """Answers names from `answers` (a list per name: one answer per lookup, the last one repeats).

    IP literals and None go to the real resolver (servers binding 127.0.0.1 need that); unknown
    names fail as NXDOMAIN would, so a test can never reach a real DNS server.
    """

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def set(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = list(answers)

    async def getaddrinfo(
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        if host is None or _is_literal(host):
            result: list[tuple[Any, ...]] = await self.real(
                host, port, family=family, type=type, proto=proto, flags=flags
            )
            return result
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.lookups.append(name)
        queue = self.answers.get(name.lower().rstrip("."))
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        infos = []
        for text in answer:
            address = ipaddress.ip_address(text)
            fam = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            if family not in (0, fam):
                continue
            sockaddr = (text, int(port or 0), 0, 0) if fam == socket.AF_INET6 else (text, int(port or 0))
            infos.append((fam, type or socket.SOCK_STREAM, proto or socket.IPPROTO_TCP, "", sockaddr))
        return infos


def _is_literal(host: Any) -> bool:
    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
    except ValueError:
        return False
    return True
