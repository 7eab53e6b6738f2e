"""The console's static files: its stylesheet and script, and the vendored htmx (static/vendor).

Served at `/console/static/<name>` from an allowlist (no path is ever joined from the request), with
the status pages' headers for data (nothing in them may run a page of its own). A page links each one as
`<name>?v=<hash>`: a new release changes the hash, so the files can be cached for a year and still never
be stale.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from spectra.runtime.headers import DATA_CSP, SECURITY_HEADERS

STATIC_PATH: Final = "/console/static"
FILES: Final = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "vendor/htmx.min.js": "text/javascript; charset=utf-8",
    "vendor/htmx-ext-sse.js": "text/javascript; charset=utf-8",
}
_CACHED: Final = {
    **SECURITY_HEADERS,
    "Cache-Control": "public, max-age=31536000, immutable",
    "Content-Security-Policy": DATA_CSP,
}


@functools.cache
def asset_bytes(name: str) -> bytes:
    return resources.files("spectra.console").joinpath("static", *name.split("/")).read_bytes()


@functools.cache
def asset_url(name: str) -> str:
    """The URL a page links `name` by, versioned by its content."""
    if name not in FILES:
        raise KeyError(name)
    return f"{STATIC_PATH}/{name}?v={hashlib.sha256(asset_bytes(name)).hexdigest()[:12]}"


async def static(request: Request) -> Response:
    name = str(request.path_params["name"])
    media = FILES.get(name)
    if media is None:
        return PlainTextResponse("not found", 404, headers={**SECURITY_HEADERS, "Content-Security-Policy": DATA_CSP})
    return Response(asset_bytes(name), 200, headers=_CACHED, media_type=media)
