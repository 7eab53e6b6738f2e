"""`/healthz`, `/readyz` and `/metrics`: the routes every process serves, whatever else it serves."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import ReadinessCheck


def health_routes(readiness: ReadinessCheck, metrics: Metrics) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        problem = readiness()
        if problem is not None:
            return PlainTextResponse(f"not ready: {problem}\n", status_code=503)
        return PlainTextResponse("ready\n")

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics.endpoint)]
