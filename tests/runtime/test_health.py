"""`/healthz`, `/readyz` and `/metrics`: alive always, ready only without a problem, this registry's metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import Counter
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette

from spectra.runtime.health import health_routes
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import Readiness


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
def metrics() -> Metrics:
    metrics = Metrics()
    Counter("spectra_test_passes", "Passes of a test loop", registry=metrics.registry).inc(2)
    return metrics


@pytest.fixture
async def http(readiness: Readiness, metrics: Metrics) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=health_routes(readiness, metrics))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://spectra.test") as client:
        yield client


async def test_alive_even_while_not_ready(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")


async def test_not_ready_is_503_with_the_reason_until_ready(http: httpx.AsyncClient, readiness: Readiness) -> None:
    starting = await http.get("/readyz")
    readiness.problem = None
    ready = await http.get("/readyz")
    readiness.problem = "stopping"
    stopping = await http.get("/readyz")

    assert (starting.status_code, starting.text) == (503, "not ready: starting\n")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    assert (stopping.status_code, stopping.text) == (503, "not ready: stopping\n")


async def test_any_readiness_check_will_do() -> None:
    problems = iter(["database unreachable", None])
    app = Starlette(routes=health_routes(lambda: next(problems), Metrics()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://spectra.test") as http:
        first, second = await http.get("/readyz"), await http.get("/readyz")
    assert (first.status_code, first.text) == (503, "not ready: database unreachable\n")
    assert second.status_code == 200


async def test_metrics_are_this_registry_s_in_the_exposition_format(http: httpx.AsyncClient) -> None:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert "# TYPE spectra_test_passes_total counter" in response.text
    assert "spectra_test_passes_total 2.0" in response.text
    assert "python_gc_objects_collected_total" not in response.text  # not prometheus_client's global registry
