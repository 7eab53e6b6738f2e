"""Public status page routes: HTML, JSON, Atom/RSS feeds and SVG badges, with ETag/Last-Modified caching.

- ``/s/{slug}`` and ``/`` (when the Host header is one of a page's hostnames): the HTML page.
- ``/api/v1/status-pages/{slug}``: the page as JSON (no monitor names, namespaces or other internals).
- ``/s/{slug}/feed.atom``, ``/s/{slug}/feed.rss``: incidents and maintenance.
- ``/badges/{namespace}/{monitor}/status.svg`` and ``/uptime.svg``: only for monitors on a public page.
- ``/s/static/page.css``, ``/s/static/localtime.js``: the stylesheet and the optional local-time script.

Unknown and non-public pages (and monitors not on a public page) get the same 404. Every 200 carries a
strong ETag and Last-Modified; If-None-Match / If-Modified-Since get 304.

Feeds hold absolute links, built from the public URL (SPECTRA_PUBLIC_URL) when one is set, whatever the
request's Host says. Without one they are built from the Host header, so those answers vary by Host, are
private (no shared cache keeps one client's Host for another) and their ETag covers the base URL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from importlib import resources
from typing import Final, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spectra.runtime.headers import DATA_CSP, SECURITY_HEADERS
from spectra.runtime.timefmt import utc
from spectra.statuspage.badges import BadgeData, find_monitor, status_badge, uptime_badge
from spectra.statuspage.model import PageSnapshot
from spectra.statuspage.render import Rendered, Renderer

STATIC_DIR: Final = resources.files("spectra.statuspage") / "static"

CACHE_CONTROL: Final = "public, max-age=5"
# Answers built from the request's Host header: only the client's own cache may keep them.
HOST_BUILT_CACHE_CONTROL: Final = "private, max-age=5"
NOT_FOUND_HTML: Final = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8">'
    b'<meta name="viewport" content="width=device-width, initial-scale=1"><title>Not found</title></head>'
    b"<body><h1>Not found</h1><p>There is no status page here.</p></body></html>"
)
STATIC: Final = {
    "page.css": "text/css; charset=utf-8",
    "localtime.js": "text/javascript; charset=utf-8",
}


class SnapshotSource(Protocol):
    """What the routes need from spectra.statuspage.snapshots.SnapshotCache (whose reads may hit the database)."""

    def get(self, slug: str) -> PageSnapshot | None: ...

    def by_host(self, host: str) -> PageSnapshot | None: ...

    def all(self) -> Mapping[str, PageSnapshot]: ...


def not_found(kind: str = "html") -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Content-Security-Policy": DATA_CSP}
    if kind == "json":
        return Response(b'{"error":"not found"}', 404, headers, media_type="application/json")
    return Response(NOT_FOUND_HTML, 404, headers, media_type="text/html; charset=utf-8")


def http_date(moment: datetime) -> str:
    return format_datetime(utc(moment).replace(microsecond=0), usegmt=True)


def _etag_matches(header: str, etag: str) -> bool:
    tags = [tag.strip() for tag in header.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == f'"{etag}"' for tag in tags)


def not_modified(request: Request, etag: str, last_modified: datetime) -> bool:
    """RFC 9110: If-None-Match wins; If-Modified-Since only when there is none (and only for GET/HEAD)."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        return _etag_matches(inm, etag)
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            return False
        return utc(last_modified).replace(microsecond=0) <= since
    return False


def cached_response(request: Request, rendered: Rendered, *, built_from_host: bool = False) -> Response:
    """The rendered bytes (or 304); `built_from_host`: the body holds links made from the Host header."""
    headers = {
        **SECURITY_HEADERS,
        "ETag": f'"{rendered.etag}"',
        "Last-Modified": http_date(rendered.last_modified),
        "Cache-Control": HOST_BUILT_CACHE_CONTROL if built_from_host else CACHE_CONTROL,
        "Content-Security-Policy": rendered.csp or DATA_CSP,
    }
    if built_from_host:
        headers["Vary"] = "Host"
    if not_modified(request, rendered.etag, rendered.last_modified):
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, 200, headers, media_type=rendered.media_type)


def _static_file(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


def _badge_response(request: Request, data: BadgeData, svg: str) -> Response:
    body = svg.encode()
    rendered = Rendered(
        body,
        "image/svg+xml",
        hashlib.sha256(body).hexdigest()[:32],
        data.generated_at,
        "default-src 'none'; style-src 'unsafe-inline'",
    )
    return cached_response(request, rendered)


def page_routes(
    cache: SnapshotSource, renderer: Renderer | None = None, *, public_url: str | None = None
) -> list[Route]:
    """The public routes, reading snapshots from ``cache`` (a SnapshotCache).

    ``public_url`` is the configured SPECTRA_PUBLIC_URL, the base of the feeds' links; None when it is not
    configured (the links then come from the request's Host, see the module's docstring).
    """
    render = renderer or Renderer()

    def feed(request: Request, kind: str, snapshot: PageSnapshot) -> Response:
        if public_url is not None:
            return cached_response(request, render.feed(kind, snapshot, public_url))
        base_url = f"{request.url.scheme}://{request.url.netloc}"
        return cached_response(request, render.feed(kind, snapshot, base_url), built_from_host=True)

    def public(snapshot: PageSnapshot | None) -> PageSnapshot | None:
        return snapshot if snapshot is not None and snapshot.public else None

    async def snapshot_of(request: Request) -> PageSnapshot | None:
        # The cache may rebuild from the database on this read: not on the event loop.
        return public(await run_in_threadpool(cache.get, request.path_params["slug"]))

    async def page(request: Request) -> Response:
        snapshot = await snapshot_of(request)
        return cached_response(request, render.html(snapshot)) if snapshot else not_found()

    async def host_page(request: Request) -> Response:
        snapshot = public(await run_in_threadpool(cache.by_host, request.headers.get("host", "")))
        return cached_response(request, render.html(snapshot)) if snapshot else not_found()

    async def page_json(request: Request) -> Response:
        snapshot = await snapshot_of(request)
        return cached_response(request, render.json(snapshot)) if snapshot else not_found("json")

    async def atom(request: Request) -> Response:
        snapshot = await snapshot_of(request)
        return feed(request, "atom", snapshot) if snapshot else not_found()

    async def rss(request: Request) -> Response:
        snapshot = await snapshot_of(request)
        return feed(request, "rss", snapshot) if snapshot else not_found()

    async def badge_data(request: Request) -> BadgeData | None:
        snapshots = (await run_in_threadpool(cache.all)).values()
        return find_monitor(snapshots, request.path_params["namespace"], request.path_params["monitor"])

    async def status_svg(request: Request) -> Response:
        data = await badge_data(request)
        return _badge_response(request, data, status_badge(data)) if data else not_found()

    async def uptime_svg(request: Request) -> Response:
        data = await badge_data(request)
        return _badge_response(request, data, uptime_badge(data)) if data else not_found()

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        media = STATIC.get(name)
        if media is None:
            return not_found()
        body = _static_file(name)
        headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600", "Content-Security-Policy": DATA_CSP}
        return Response(body, 200, headers, media_type=media)

    return [
        Route("/", host_page, methods=["GET", "HEAD"]),
        Route("/s/static/{name}", static, methods=["GET", "HEAD"]),
        Route("/s/{slug}", page, methods=["GET", "HEAD"]),
        Route("/s/{slug}/feed.atom", atom, methods=["GET", "HEAD"]),
        Route("/s/{slug}/feed.rss", rss, methods=["GET", "HEAD"]),
        Route("/api/v1/status-pages/{slug}", page_json, methods=["GET", "HEAD"]),
        Route("/badges/{namespace}/{monitor}/status.svg", status_svg, methods=["GET", "HEAD"]),
        Route("/badges/{namespace}/{monitor}/uptime.svg", uptime_svg, methods=["GET", "HEAD"]),
    ]
