"""Column types that behave the same on SQLite and MySQL/MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator, TypeEngine

MYSQL_DIALECTS: Final = ("mysql", "mariadb")

# A free lease's lease_until: long past on every clock.
NEVER: Final = datetime(1970, 1, 1, tzinfo=UTC)

# SQLite only autoincrements an ``INTEGER PRIMARY KEY`` (the rowid alias), never a BIGINT one.
BigIntPK: Final[TypeEngine[int]] = BigInteger().with_variant(Integer(), "sqlite")

# ``none_as_null``: Python ``None`` is SQL NULL, not the JSON text 'null', so IS NULL works.
JSONType: Final[TypeEngine[Any]] = JSON(none_as_null=True)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the only kind the store accepts)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC with microseconds.

    Naive datetimes are refused: guessing their zone is how off-by-hours bugs start.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in MYSQL_DIALECTS:
            # Plain DATETIME drops microseconds on MySQL; SQLite keeps them in its text format.
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime expects a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: pass an aware datetime, "
                "e.g. datetime.now(UTC) or dt.replace(tzinfo=UTC)"
            )
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)
