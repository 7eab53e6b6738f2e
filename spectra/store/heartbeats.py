"""``heartbeat_pushes``: the last push per heartbeat monitor, found by the SHA-256 of its token."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final

from sqlalchemy import BigInteger, ForeignKey, select
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.dml import Insert

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.config import Monitor
from spectra.store.types import MYSQL_DIALECTS, BigIntPK, UTCDateTime
from spectra.store.upsert import UnsupportedDatabase, connection_of


class HeartbeatPush(Base):
    """The last push a heartbeat monitor received, and how many it has received."""

    __tablename__ = "heartbeat_pushes"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    monitor_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("monitors.resource_id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    last_push_at: Mapped[datetime] = mapped_column(UTCDateTime)
    pushes: Mapped[int] = mapped_column(BigInteger, default=0)


HEARTBEAT_PUSHES: Final = HeartbeatPush.__table__


def push_token_hash(token: str) -> str:
    """What ``monitors.push_token_hash`` holds for a heartbeat token (the token itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _push_statement(dialect_name: str) -> Insert:
    table = HEARTBEAT_PUSHES
    if dialect_name == "sqlite":
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(
            index_elements=["monitor_id"],
            set_={"last_push_at": lite.excluded.last_push_at, "pushes": table.c.pushes + 1},
        )
    if dialect_name in MYSQL_DIALECTS:
        my = mysql.insert(table)
        return my.on_duplicate_key_update(last_push_at=my.inserted.last_push_at, pushes=table.c.pushes + 1)
    raise UnsupportedDatabase(dialect_name)


def record_push(session: Session, token: str, at: datetime) -> bool:
    """Record a push for the monitor whose token this is; False when no monitor has it."""
    monitor_id = session.scalar(select(Monitor.resource_id).where(Monitor.push_token_hash == push_token_hash(token)))
    if monitor_id is None:
        return False
    conn = connection_of(session)
    conn.execute(_push_statement(conn.dialect.name), {"monitor_id": monitor_id, "last_push_at": at, "pushes": 1})
    return True


def last_push(session: Session, monitor_id: int) -> datetime | None:
    return session.scalar(select(HeartbeatPush.last_push_at).where(HeartbeatPush.monitor_id == monitor_id))
