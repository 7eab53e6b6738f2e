"""`/api/v1/heartbeat/{token}`: a heartbeat monitor's push (GET as well as POST: cron jobs `curl URL`).

The token is random and single-purpose; only its SHA-256 is stored. 404 for a token no monitor has.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from spectra.store import record_push, utcnow
from spectra.store.engine import retry_conflicts


def heartbeat_routes(factory: sessionmaker[Session]) -> list[Route]:
    def push(token: str) -> bool:
        with factory.begin() as session:
            return record_push(session, token, utcnow())

    async def heartbeat(request: Request) -> Response:
        token = request.path_params["token"]
        # On SQLite a concurrent writer (probe results, the alerter) can make this read-then-write fail at once.
        known = await run_in_threadpool(retry_conflicts, lambda: push(token))
        if not known:
            return PlainTextResponse("unknown heartbeat token\n", status_code=404)
        return PlainTextResponse("ok\n")

    return [Route("/api/v1/heartbeat/{token}", heartbeat, methods=["GET", "POST"])]
