"""The monitors area's JSON endpoints through the app: one monitor's facts (with ETag), its check pages and
latency, tenant isolation, bad input, and the filters and ETag of GET /api/v1/monitors; on SQLite and
MariaDB, with the console's cookie and with an API token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import func, select

from spectra.console.monitors import service
from spectra.console.monitors.api import BAD_CURSOR, OPERATIONS
from spectra.console.monitors.models import MonitorList
from spectra.store import CheckResult, monitor_overview, utcnow
from spectra.web.monitors import monitor_json, monitor_routes
from tests.console.monitors.conftest import ADA, GUS, UMA, World
from tests.factories.accounts import token_of
from tests.factories.console_monitors import (
    HEADER_SECRET,
    HOUR,
    apply_monitors,
    checks,
    hourly,
    latency_histogram,
    monitor,
)
from tests.support.console import ConsoleSite

PROBLEM = "application/problem+json"


def test_a_monitors_facts_with_an_etag(site: ConsoleSite) -> None:
    uma = site.browser(UMA)
    answer = uma.get("/api/v1/monitors/acme/api")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert (body["namespace"], body["name"], body["state"], body["labels"]) == ("acme", "api", "down", {"team": "web"})
    assert [(loc["location"], loc["state"]) for loc in body["locations"]] == [("eu", "down"), ("us", "down")]
    assert [u["window"] for u in body["uptime"]] == ["24h", "7d", "30d", "90d"]
    assert body["source"] == "manifests"
    assert body["sourceFile"] is None  # applied without the files spectra run knows
    assert HEADER_SECRET not in answer.text
    assert "secretKeyRef" in body["yaml"]
    again = uma.get("/api/v1/monitors/acme/api", headers={"If-None-Match": answer.headers["etag"]})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", answer.headers["etag"])


def test_the_manifest_file_a_monitor_came_from(site: ConsoleSite, world: World) -> None:
    with world.sessions.begin() as session:
        files = {("Monitor", "acme", "shop"): "teams/web/shop.yaml"}
        apply_monitors(session, [monitor("shop", "acme", labels={"team": "web"})], files=files)
    body = site.browser(UMA).get("/api/v1/monitors/acme/shop").json()
    assert (body["source"], body["sourceFile"]) == ("manifests", "teams/web/shop.yaml")
    assert body["sourceText"] == "the manifest file teams/web/shop.yaml (edit it there)"
    page = site.browser(UMA).get("/console/monitors/acme/shop").text
    assert "<p>From the manifest file <code>teams/web/shop.yaml</code> (edit it there)." in page


def test_another_tenants_monitor_is_404_with_a_problem(site: ConsoleSite, world: World) -> None:
    gus = site.browser(GUS)
    with world.sessions() as session:
        before = session.scalar(select(func.count()).select_from(CheckResult))
    for path in ("", "/checks", "/latency"):
        answer = gus.get(f"/api/v1/monitors/acme/api{path}")
        assert answer.status_code == 404
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["detail"] == "not found"
    assert gus.get("/api/v1/monitors/globex/portal").status_code == 200
    with world.sessions() as session:
        assert session.scalar(select(func.count()).select_from(CheckResult)) == before


def test_an_api_token_reads_its_organizations_monitors_only(site: ConsoleSite, world: World) -> None:
    with world.sessions.begin() as session:
        token = token_of(session, world.uma, "read")
    client = site.anonymous()
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/monitors/acme-ops/db", headers=bearer).status_code == 200
    refused = client.get("/api/v1/monitors/globex/portal", headers=bearer)
    assert (refused.status_code, refused.json()["detail"]) == (404, "not found")
    nobody = client.get("/api/v1/monitors/acme/api")
    assert nobody.status_code == 401
    assert nobody.headers["content-type"] == PROBLEM


def test_checks_come_in_cursor_pages(site: ConsoleSite, world: World) -> None:
    with world.sessions.begin() as session:
        checks(session, world.ids["acme/shop"], "eu", count=5, end=utcnow())
    ada = site.browser(ADA)
    url: str | None = "/api/v1/monitors/acme/shop/checks?limit=2"
    reasons: list[str] = []
    while url is not None:
        page = ada.get(url).json()
        reasons.extend(item["reason"] for item in page["items"])
        url = page["next"]
    assert reasons == [f"check {k}" for k in range(5)]


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ("checks?limit=0", "limit: Input should be greater than or equal to 1"),
        ("checks?limit=501", "limit: Input should be less than or equal to 500"),
        ("checks?cursor=zzz", BAD_CURSOR),
        ("latency?days=91", "days: Input should be less than or equal to 90"),
        ("latency?days=week", "days: Input should be a valid integer, unable to parse string as an integer"),
    ],
)
def test_bad_queries_are_refused_with_the_field_named(site: ConsoleSite, query: str, sentence: str) -> None:
    answer = site.browser(UMA).get(f"/api/v1/monitors/acme/shop/{query}")
    assert (answer.status_code, answer.headers["content-type"]) == (400, PROBLEM)
    assert answer.json()["detail"] == sentence


def test_latency_per_location(site: ConsoleSite, world: World) -> None:
    end = service.hour_floor(utcnow()) + HOUR
    with world.sessions.begin() as session:
        # 120 checks an hour: 60 in (25, 50] ms, 54 in (50, 100] ms, 6 in (100, 250] ms, the slowest 90 ms.
        spread = latency_histogram({50: 60, 100: 54, 250: 6})
        hourly(session, world.ids["acme/api"], "eu", start=end - 2 * HOUR, hours=1, mean_ms=50, max_ms=90)
        hourly(session, world.ids["acme/api"], "eu", start=end - HOUR, hours=1, mean_ms=50, max_ms=90, histogram=spread)
        hourly(session, world.ids["acme/api"], "eu", start=end - timedelta(days=10), hours=1, mean_ms=70)
    short = site.browser(UMA).get("/api/v1/monitors/acme/api/latency?days=1").json()
    assert short["days"] == 1
    assert short["measures"] == ["p50Ms", "p95Ms", "maxMs", "meanMs"]
    points = [(p["p50Ms"], p["p95Ms"], p["maxMs"], p["meanMs"], p["checks"]) for p in short["series"][0]["points"]]
    # The first hour has no histogram (rolled up before 0011): its percentiles are unknown, null.
    # The second: p50 is the top of (25, 50]; p95 (rank 114) is the top of (50, 100], clamped to the 90 ms maximum.
    assert points == [(None, None, 90.0, 50.0, 120), (50.0, 90.0, 90.0, 50.0, 120)]
    longer = site.browser(UMA).get("/api/v1/monitors/acme/api/latency?days=30").json()
    assert len(longer["series"][0]["points"]) == 3


def test_the_list_keeps_its_shape_and_takes_filters_and_etags(world: World, portal: BlockingPortal) -> None:
    site = ConsoleSite.make(world.sessions, portal, routes=monitor_routes(world.sessions, loopback_only=False))
    with world.sessions.begin() as session:
        token = token_of(session, world.uma, "read")
    client = site.anonymous()
    client.http.client.headers["Authorization"] = f"Bearer {token}"
    uma = client
    everything = uma.get("/api/v1/monitors")
    assert isinstance(everything.json(), list)
    assert sorted(m["name"] for m in everything.json()) == ["api", "cron", "db", "shop"]
    assert [m["name"] for m in uma.get("/api/v1/monitors?state=down").json()] == ["api"]
    assert [m["name"] for m in uma.get("/api/v1/monitors?label=team=data").json()] == ["db"]
    assert sorted(m["name"] for m in uma.get("/api/v1/monitors?label=team").json()) == ["api", "db", "shop"]
    assert [m["name"] for m in uma.get("/api/v1/monitors?type=heartbeat&namespace=acme-ops").json()] == ["cron"]
    assert uma.get("/api/v1/monitors?namespace=globex").json() == []
    cached = uma.get("/api/v1/monitors", headers={"If-None-Match": everything.headers["etag"]})
    assert (cached.status_code, cached.content) == (304, b"")


def test_every_endpoint_is_an_operation() -> None:
    assert {(o.method, o.path) for o in OPERATIONS} == {
        ("GET", "/api/v1/monitors"),
        ("GET", "/api/v1/monitors/{namespace}/{name}"),
        ("GET", "/api/v1/monitors/{namespace}/{name}/checks"),
        ("GET", "/api/v1/monitors/{namespace}/{name}/latency"),
    }


def test_the_lists_model_matches_what_it_answers(world: World) -> None:
    with world.sessions() as session:
        answered = [monitor_json(item) for item in monitor_overview(session)]
    assert MonitorList.model_validate(answered).model_dump(by_alias=True) == answered
