"""`/api/v1/heartbeat/{token}`: a heartbeat monitor's push (GET as well as POST: cron jobs `curl URL`).

The token is random and single-purpose; only its SHA-256 is stored. 404 for a token no monitor has.

Guessing tokens is cheap to refuse: each client address (an IPv6 client's /64) may send
$SPECTRA_HEARTBEAT_UNKNOWN_PER_MINUTE unknown tokens a minute; past that it gets 429 without a database
lookup. And at most HEARTBEAT_LOOKUPS pushes use a thread and a database connection at once, so a flood
from many addresses queues behind itself instead of in front of the status pages, which share both.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Final

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from spectra.runtime.clients import client_key
from spectra.statuspage.ratelimit import SlidingWindowLimiter
from spectra.store import record_push, utcnow
from spectra.store.engine import retry_conflicts
from spectra.store.environment import count_setting

UNKNOWN_PER_MINUTE_ENV: Final = "SPECTRA_HEARTBEAT_UNKNOWN_PER_MINUTE"
DEFAULT_UNKNOWN_PER_MINUTE: Final = 30
HEARTBEAT_LOOKUPS: Final = 4


def unknown_token_limiter() -> SlidingWindowLimiter:
    """Unknown tokens per client address a minute: $SPECTRA_HEARTBEAT_UNKNOWN_PER_MINUTE, default 30."""
    limit = count_setting(UNKNOWN_PER_MINUTE_ENV, DEFAULT_UNKNOWN_PER_MINUTE, minimum=1, maximum=1_000_000)
    return SlidingWindowLimiter(limit, 60)


def heartbeat_routes(factory: sessionmaker[Session], *, unknown: SlidingWindowLimiter | None = None) -> list[Route]:
    """The push route; `unknown` counts unknown tokens per client (default: :func:`unknown_token_limiter`)."""
    misses = unknown if unknown is not None else unknown_token_limiter()
    lookups = asyncio.Semaphore(HEARTBEAT_LOOKUPS)
    in_flight: Counter[str] = Counter()

    def push(token: str) -> bool:
        with factory.begin() as session:
            return record_push(session, token, utcnow())

    async def heartbeat(request: Request) -> Response:
        client = client_key(request)
        # Lookups in flight count as misses until they are known not to be: a burst of concurrent guesses
        # gets no more lookups than the limit.
        if misses.remaining(client) - in_flight[client] <= 0:
            return PlainTextResponse(
                "too many unknown heartbeat tokens from this address\n",
                status_code=429,
                headers={"Retry-After": str(max(1, misses.retry_after_s(client)))},
            )
        token = request.path_params["token"]
        in_flight[client] += 1
        try:
            async with lookups:
                # On SQLite a concurrent writer (probe results, the alerter) can make this read-then-write fail.
                known = await run_in_threadpool(retry_conflicts, lambda: push(token))
        finally:
            in_flight[client] -= 1
            if not in_flight[client]:
                del in_flight[client]
        if not known:
            misses.hit(client)
            return PlainTextResponse("unknown heartbeat token\n", status_code=404)
        return PlainTextResponse("ok\n")

    return [Route("/api/v1/heartbeat/{token}", heartbeat, methods=["GET", "POST"])]
