"""Opening the shared database in a cluster process: refuse an old schema."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from spectra.store import current_revision, head_revision, make_engine, redacted, session_factory

log = logging.getLogger("spectra")


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
