"""Alerting: leader leases (one active alerter per database).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Types are spelled out here (as in 0001) so this revision keeps creating the same schema whatever the
models become later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
MYSQL_OPTIONS: dict[str, Any] = {
    f"{dialect}_{option}": value
    for dialect in ("mysql", "mariadb")
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def upgrade() -> None:
    op.create_table(
        "leader_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("lease_until", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leader_leases")),
        **MYSQL_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("leader_leases")
