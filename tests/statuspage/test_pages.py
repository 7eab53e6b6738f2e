"""The public routes: status codes, privacy of the JSON, conditional requests, headers and host routing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from spectra.statuspage.model import GroupView
from spectra.statuspage.render import Renderer
from tests.factories.pages import NOW, FakeCache, app_for, client_for, component, replace, snapshot

PRIVATE = snapshot(
    slug="internal",
    name="internal-status",
    namespace="secret-ns",
    public=False,
    hostnames=("internal.acme.test",),
    groups=(GroupView("Hidden", (component("Hidden DB", monitors=("secret-ns/hidden-db",)),)),),
    version="p1",
)

PUBLIC = "https://status.example.test"  # SPECTRA_PUBLIC_URL

ALL_PATHS = [
    "/s/{slug}",
    "/api/v1/status-pages/{slug}",
    "/s/{slug}/feed.atom",
    "/s/{slug}/feed.rss",
]


@pytest.fixture
def cache() -> FakeCache:
    return FakeCache(snapshot(), PRIVATE)


@pytest.mark.parametrize("path", ALL_PATHS)
async def test_public_page_routes_answer_200(cache: FakeCache, path: str) -> None:
    async with client_for(app_for(cache, public_url=PUBLIC)) as client:
        response = await client.get(path.format(slug="acme"))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=5"
    assert "vary" not in response.headers
    assert response.headers["etag"].startswith('"v1')  # feeds: v1.<hash of the links' base>
    assert response.headers["last-modified"] == format_datetime(NOW.replace(microsecond=0), usegmt=True)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("slug", ["nope", "internal"])
@pytest.mark.parametrize("path", ALL_PATHS)
async def test_unknown_and_private_pages_are_the_same_404(cache: FakeCache, path: str, slug: str) -> None:
    async with client_for(app_for(cache)) as client:
        response = await client.get(path.format(slug=slug))
        unknown = await client.get(path.format(slug="does-not-exist"))
    assert response.status_code == 404
    assert response.content == unknown.content
    assert b"secret-ns" not in response.content
    assert b"Hidden" not in response.content
    assert "etag" not in response.headers


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/badges/prod/api-check/status.svg", 200),
        ("/badges/prod/api-check/uptime.svg", 200),
        ("/badges/secret-ns/hidden-db/status.svg", 404),  # only on a non-public page
        ("/badges/secret-ns/hidden-db/uptime.svg", 404),
        ("/badges/prod/no-such-monitor/status.svg", 404),
        ("/badges/other/api-check/status.svg", 404),  # same name, other namespace
    ],
)
async def test_badges_only_for_monitors_on_public_pages(cache: FakeCache, path: str, status: int) -> None:
    async with client_for(app_for(cache)) as client:
        response = await client.get(path)
        unknown = await client.get("/badges/x/y/status.svg")
    assert response.status_code == status
    if status == 404:
        assert response.content == unknown.content
    else:
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.headers["cache-control"] == "public, max-age=5"


async def test_json_has_no_internal_fields(cache: FakeCache) -> None:
    async with client_for(app_for(cache)) as client:
        response = await client.get("/api/v1/status-pages/acme")
    body = response.json()
    text = response.text
    for secret in ("api-check", "web-check", "prod/", "acme-status", "status.acme.test"):
        assert secret not in text
    assert "namespace" not in body
    assert "monitors" not in json.dumps(body)
    assert body["slug"] == "acme"
    assert body["overall"] == "operational"
    assert [c["name"] for c in body["groups"][0]["components"]] == ["API", "Web"]
    assert len(body["groups"][0]["components"][0]["days"]) == 90
    assert body["generatedAt"] == "2026-11-24T12:00:30Z"
    assert body["stale"] is False


async def test_etag_if_none_match_gives_304(cache: FakeCache) -> None:
    async with client_for(app_for(cache)) as client:
        first = await client.get("/s/acme")
        same = await client.get("/s/acme", headers={"If-None-Match": first.headers["etag"]})
        listed = await client.get("/s/acme", headers={"If-None-Match": 'W/"other", "v1"'})
        other = await client.get("/s/acme", headers={"If-None-Match": '"v0"'})
        cache.set(replace(snapshot(), version="v2", overall="degraded"))
        changed = await client.get("/s/acme", headers={"If-None-Match": first.headers["etag"]})
    assert same.status_code == 304
    assert same.content == b""
    assert same.headers["etag"] == '"v1"'
    assert listed.status_code == 304
    assert other.status_code == 200
    assert changed.status_code == 200
    assert changed.headers["etag"] == '"v2"'


@pytest.mark.parametrize(
    ("since", "status"),
    [
        (NOW, 304),
        (NOW.replace(microsecond=0) + timedelta(hours=1), 304),
        (NOW - timedelta(seconds=1), 200),
    ],
)
async def test_if_modified_since(cache: FakeCache, since: datetime, status: int) -> None:
    header = format_datetime(since, usegmt=True)
    async with client_for(app_for(cache)) as client:
        response = await client.get("/api/v1/status-pages/acme", headers={"If-Modified-Since": header})
    assert response.status_code == status


async def test_if_none_match_wins_over_if_modified_since(cache: FakeCache) -> None:
    headers = {"If-None-Match": '"old"', "If-Modified-Since": format_datetime(NOW, usegmt=True)}
    async with client_for(app_for(cache)) as client:
        response = await client.get("/s/acme/feed.atom", headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("host", "status", "title"),
    [
        ("status.acme.test", 200, "Acme"),
        ("status.acme.test:8443", 200, "Acme"),
        ("internal.acme.test", 404, None),  # a non-public page's own host
        ("spectra.example.test", 404, None),
    ],
)
async def test_host_based_routing(cache: FakeCache, host: str, status: int, title: str | None) -> None:
    async with client_for(app_for(cache), base_url=f"https://{host}") as client:
        response = await client.get("/")
    assert response.status_code == status
    if title:
        assert f"<title>{title} status</title>" in response.text


async def test_stale_snapshot_shows_marker_and_changes_etag(cache: FakeCache) -> None:
    cache.set(replace(snapshot(), stale=True))
    async with client_for(app_for(cache)) as client:
        response = await client.get("/s/acme")
        data = await client.get("/api/v1/status-pages/acme")
    assert response.status_code == 200
    assert "Live data is unavailable; showing data from" in response.text
    assert '<time datetime="2026-11-24T12:00:30Z">2026-11-24 12:00 UTC</time>' in response.text
    assert response.headers["etag"] == '"v1.stale"'
    assert data.json()["stale"] is True


async def test_fresh_page_has_no_stale_marker(cache: FakeCache) -> None:
    async with client_for(app_for(cache)) as client:
        response = await client.get("/s/acme")
    assert "Live data is unavailable" not in response.text
    assert "Last updated" in response.text


async def test_same_version_renders_once() -> None:
    cache = FakeCache(snapshot())
    renderer = Renderer()
    async with client_for(app_for(cache, renderer)) as client:
        for _ in range(5):
            assert (await client.get("/s/acme")).status_code == 200
            assert (await client.get("/api/v1/status-pages/acme")).status_code == 200
            assert (await client.get("/s/acme/feed.atom")).status_code == 200
        # A later read of the same content (new generated_at, same version) is not rendered again.
        cache.set(replace(snapshot(), generated_at=NOW.replace(minute=5)))
        await client.get("/s/acme")
        assert renderer.calls == {"html": 1, "json": 1, "atom": 1}
        cache.set(replace(snapshot(), version="v2", overall="degraded"))
        changed = await client.get("/s/acme")
    assert renderer.calls["html"] == 2
    assert "Some systems have degraded performance" in changed.text


async def test_static_assets_are_served_locally(cache: FakeCache) -> None:
    async with client_for(app_for(cache)) as client:
        css = await client.get("/s/static/page.css")
        script = await client.get("/s/static/localtime.js")
        missing = await client.get("/s/static/../pages.py")
        unknown = await client.get("/s/static/other.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "prefers-color-scheme: dark" in css.text
    assert script.status_code == 200
    assert "time[datetime]" in script.text
    assert missing.status_code == 404
    assert unknown.status_code == 404


async def test_csp_allows_only_self_and_the_logo_host(cache: FakeCache) -> None:
    async with client_for(app_for(cache)) as client:
        response = await client.get("/s/acme")
    csp = response.headers["content-security-policy"]
    assert "img-src 'self' https://cdn.acme.test;" in csp
    assert "script-src 'self';" in csp
    assert "'unsafe-inline'" not in csp
    assert "style-src 'self' 'sha256-" in csp


# --- feeds: links from the public URL, never from a poisoned Host ------------------------------------------

FEEDS = ["/s/acme/feed.atom", "/s/acme/feed.rss"]
CLEAN_HOST = "spectra.example.test"
POISONS = [
    pytest.param("evil.example", {}, id="evil-host"),
    pytest.param("evil.example:443", {}, id="evil-host-with-port"),
    pytest.param(CLEAN_HOST, {"X-Forwarded-Host": "evil.example"}, id="x-forwarded-host"),
    pytest.param(CLEAN_HOST, {"Forwarded": "host=evil.example;proto=https"}, id="forwarded"),
    pytest.param(CLEAN_HOST, {"X-Original-Host": "evil.example", "X-Host": "evil.example"}, id="other-headers"),
]


async def _get_feed(
    cache: FakeCache, path: str, public_url: str | None, host: str, headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    """The feed as a clean client gets it, then as the poisoning one does."""
    app = app_for(cache, public_url=public_url)
    async with client_for(app, base_url=f"https://{CLEAN_HOST}") as clean_client:
        clean = await clean_client.get(path)
    async with client_for(app, base_url=f"https://{host}") as client:
        poisoned = await client.get(path, headers=headers)
    return clean, poisoned


@pytest.mark.parametrize("path", FEEDS)
@pytest.mark.parametrize(("host", "headers"), POISONS)
async def test_with_a_public_url_feeds_ignore_the_host_and_stay_publicly_cacheable(
    cache: FakeCache, path: str, host: str, headers: dict[str, str]
) -> None:
    clean, poisoned = await _get_feed(cache, path, PUBLIC, host, headers)
    assert poisoned.status_code == 200
    assert "evil" not in poisoned.text
    assert f"{PUBLIC}/s/acme" in poisoned.text
    assert poisoned.content == clean.content
    assert poisoned.headers["etag"] == clean.headers["etag"]
    assert poisoned.headers["cache-control"] == "public, max-age=5"


@pytest.mark.parametrize("path", FEEDS)
@pytest.mark.parametrize(("host", "headers"), POISONS)
async def test_without_a_public_url_host_built_feeds_are_private_and_tagged_by_their_base(
    cache: FakeCache, path: str, host: str, headers: dict[str, str]
) -> None:
    clean, poisoned = await _get_feed(cache, path, None, host, headers)
    assert f"https://{CLEAN_HOST}/s/acme" in clean.text
    for response in (clean, poisoned):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "private, max-age=5"
        assert response.headers["vary"] == "Host"
    # Only the Host header counts (forwarding headers are not trusted); a poisoned answer differs from a
    # clean one in body and ETag, so no cache can hand one for the other.
    if host == CLEAN_HOST:
        assert "evil" not in poisoned.text
        assert poisoned.headers["etag"] == clean.headers["etag"]
    else:
        assert poisoned.headers["etag"] != clean.headers["etag"]


@pytest.mark.parametrize("path", FEEDS)
async def test_a_clean_etag_does_not_revalidate_a_host_built_feed_of_another_host(cache: FakeCache, path: str) -> None:
    clean, _ = await _get_feed(cache, path, None, CLEAN_HOST, {})
    async with client_for(app_for(cache), base_url="https://evil.example") as client:
        revalidated = await client.get(path, headers={"If-None-Match": clean.headers["etag"]})
    assert revalidated.status_code == 200  # not 304: the cached clean copy is not confirmed for this Host
