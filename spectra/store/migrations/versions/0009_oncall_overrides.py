"""On-call overrides taken at runtime in the console or the API, and the version of each user's
on-call calendar feed URL.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
MYSQL_OPTIONS: dict[str, Any] = {
    f"{dialect}_{option}": value
    for dialect in ("mysql", "mariadb")
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def upgrade() -> None:
    op.create_table(
        "oncall_overrides",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("schedule_namespace", sa.String(length=63), nullable=False),
        sa.Column("schedule_name", sa.String(length=253), nullable=False),
        sa.Column("contact_namespace", sa.String(length=63), nullable=False),
        sa.Column("contact_name", sa.String(length=253), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("taken_by", sa.String(length=320), nullable=False),
        sa.Column("starts_at", TS, nullable=False),
        sa.Column("ends_at", TS, nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.Column("cancelled_by", sa.String(length=320), nullable=True),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_oncall_overrides_window")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_overrides")),
        **MYSQL_OPTIONS,
    )
    op.create_index(
        op.f("ix_oncall_overrides_schedule_namespace_schedule_name_ends_at"),
        "oncall_overrides",
        ["schedule_namespace", "schedule_name", "ends_at"],
    )
    op.create_index(
        op.f("ix_oncall_overrides_contact_namespace_contact_name"),
        "oncall_overrides",
        ["contact_namespace", "contact_name"],
    )

    op.create_table(
        "oncall_feeds",
        sa.Column("user_id", BIGID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rotated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oncall_feeds_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_oncall_feeds")),
        **MYSQL_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("oncall_feeds")
    op.drop_table("oncall_overrides")
