"""The database's clock: the one every lease and staleness decision is made in.

Processes on different nodes disagree about the time (NTP drift, a VM resumed from a pause). Comparing
one node's clock with a timestamp another node wrote lets a node whose clock runs ahead take a lease
from a healthy holder, or see a monitor that reports every two seconds as silent. Every such decision
reads the time from the database instead, so all processes compare against one clock.

On SQLite the database is a file of this process (standalone mode), so its clock is the local one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from spectra.store.types import MYSQL_DIALECTS, utcnow


def database_now(session: Session) -> datetime:
    """The current UTC time by the database's clock (microseconds), as an aware datetime."""
    bind = session.get_bind()
    if bind.dialect.name not in MYSQL_DIALECTS:
        return utcnow()
    value = session.execute(text("SELECT UTC_TIMESTAMP(6)")).scalar_one()
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
