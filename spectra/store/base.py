"""Declarative base shared by every store model."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Final

from sqlalchemy import MetaData, Table
from sqlalchemy.orm import DeclarativeBase

from spectra.store.types import JSONType, UTCDateTime

# Deterministic constraint names: Alembic can only drop or alter what it can name, and MySQL caps
# identifiers at 64 characters (tests/store/test_migrate.py checks every name fits).
NAMING_CONVENTION: Final[dict[str, str]] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Every table is utf8mb4 whatever the database default is, and compares strings byte-wise like
# SQLite does, so uniqueness and ordering are the same on both databases. Spelled for both dialect
# names: a ``mariadb://`` URL selects SQLAlchemy's mariadb dialect, which ignores ``mysql_`` options.
MYSQL_TABLE_OPTIONS: Final[dict[str, str]] = {
    f"{dialect}_{option}": value
    for dialect in ("mysql", "mariadb")
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


class Base(DeclarativeBase):
    """Base class of all models; its metadata is Alembic's target."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Every model maps exactly one Table, so ``Model.__table__`` can go straight to Core statements
    # and :func:`spectra.store.upsert.upsert`.
    __table__: ClassVar[Table]
    # A bare ``Mapped[datetime]`` is always an aware UTC timestamp; JSON columns name their type.
    type_annotation_map: Any = {datetime: UTCDateTime, dict[str, Any]: JSONType}
