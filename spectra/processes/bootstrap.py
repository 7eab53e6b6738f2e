"""What the long-running commands share, written once.

- :func:`with_current_schema`: open the shared database and refuse an old schema (cluster processes
  never migrate on their own; `spectra db upgrade` and the chart's hook do).
- :func:`public_url`: the base of every link we send (ack, confirm, unsubscribe, Twilio callbacks).
- :func:`secret_key_is_set`: links are signed with SPECTRA_SECRET_KEY; without it they die with the
  process and other replicas refuse them.
- :func:`server_limits`: the web server's limits from the environment (read deadline, connection cap,
  trusted proxies).
- :func:`serve_app`: the web app beside the components until SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Final

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from spectra.runtime.collector import freeze_once_ready
from spectra.runtime.lifecycle import serve, web_server
from spectra.runtime.public_url import configured_public_url
from spectra.runtime.readiness import Readiness
from spectra.runtime.server_limits import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_TIMEOUT_S,
    ServerLimits,
    trusted_proxies,
)
from spectra.store import current_revision, head_revision, make_engine, redacted, session_factory
from spectra.store.environment import count_setting, seconds_setting
from spectra.web.app import AppParts, create_app

log = logging.getLogger("spectra")

READ_TIMEOUT_ENV: Final = "SPECTRA_HTTP_READ_TIMEOUT_S"
MAX_CONNECTIONS_ENV: Final = "SPECTRA_HTTP_MAX_CONNECTIONS"
TRUSTED_PROXIES_ENV: Final = "SPECTRA_TRUSTED_PROXIES"


async def schema_is_current(engine: Engine, url: str) -> bool:
    """Cluster processes never migrate on their own: they refuse an old schema and say what to run."""
    revision = await asyncio.to_thread(current_revision, engine)
    if revision == head_revision():
        return True
    log.error(
        "database %s is at revision %s, expected %s: run `spectra db upgrade`", redacted(url), revision, head_revision()
    )
    return False


async def with_current_schema(url: str, run: Callable[[sessionmaker[Session]], Awaitable[int]]) -> int:
    """Open the database, refuse an old schema (exit 1), run `run` with a session factory, then close."""
    engine = make_engine(url)
    try:
        if not await schema_is_current(engine, url):
            return 1
        return await run(session_factory(engine))
    finally:
        engine.dispose()


def public_url(explicit: str | None, host: str, port: int, *, unset_warning: str | None = None) -> str:
    """`explicit`, else SPECTRA_PUBLIC_URL, else ``http://HOST:PORT`` (logging `unset_warning` with the URL)."""
    public = (explicit or "").strip().rstrip("/") or configured_public_url()
    if public:
        return public
    bracketed = f"[{host}]" if ":" in host else host
    fallback = f"http://{bracketed}:{port}"
    if unset_warning is not None:
        log.warning("SPECTRA_PUBLIC_URL is not set: %s %s", unset_warning, fallback)
    return fallback


def secret_key_is_set(consequence: str) -> bool:
    """Whether SPECTRA_SECRET_KEY is set; warns with `consequence` when it is not."""
    if os.environ.get("SPECTRA_SECRET_KEY"):
        return True
    log.warning("SPECTRA_SECRET_KEY is not set: %s", consequence)
    return False


def server_limits() -> ServerLimits:
    """The web server's limits: $SPECTRA_HTTP_READ_TIMEOUT_S, $SPECTRA_HTTP_MAX_CONNECTIONS and
    $SPECTRA_TRUSTED_PROXIES, else safe defaults; ValueError naming the variable that is wrong."""
    return ServerLimits(
        read_timeout_s=seconds_setting(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT_S, minimum=1, maximum=300),
        max_connections=count_setting(MAX_CONNECTIONS_ENV, DEFAULT_MAX_CONNECTIONS, minimum=1, maximum=100_000),
        trusted_proxies=trusted_proxies(os.environ.get(TRUSTED_PROXIES_ENV, ""), setting=TRUSTED_PROXIES_ENV),
    )


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


async def serve_app(
    parts: AppParts,
    readiness: Readiness,
    components: Mapping[str, Coroutine[Any, Any, Any]],
    *,
    host: str,
    port: int,
    stop: Callable[[], Awaitable[None]],
    announce: str,
    background: Mapping[str, Coroutine[Any, Any, Any]] | None = None,
) -> int:
    """Log `announce` with the address, then serve `create_app(parts)` beside `components` until SIGTERM.

    Returns 1 at once, naming the setting, when a web setting in the environment is not valid.
    """
    try:
        limits = server_limits()
        app = create_app(parts)  # reads the settings of its routes (the heartbeat limit)
    except ValueError as exc:
        log.error("%s", exc)
        for coroutine in (*components.values(), *(background or {}).values()):
            coroutine.close()  # never started: closed so that nothing warns of a coroutine never awaited
        return 1
    log.info("%s, listening on http://%s:%d", announce, f"[{host}]" if ":" in host else host, port)
    server = web_server(app, host, port, limits)
    loops = {**(background or {}), "collector": freeze_once_ready(readiness)}
    return await serve(components, server, readiness=readiness, stop=stop, background=loops)
