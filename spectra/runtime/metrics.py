"""The metrics registry of a process, served at `/metrics`.

One registry per process object (not prometheus_client's global one), so tests can build several
apps in one interpreter and each process exports only the metrics of what it runs: the probe's
scheduler figures come from processes that run a probe worker, nowhere else.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response


class Metrics:
    """A registry and its `/metrics` endpoint; subclasses register their families on `self.registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
