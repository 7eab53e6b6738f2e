"""Status pages from the console: each affected component's impact and the post-mortem of a page incident,
and ad-hoc maintenance of a page's components.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON = sa.JSON(none_as_null=True)
MYSQL_OPTIONS: dict[str, Any] = {
    f"{dialect}_{option}": value
    for dialect in ("mysql", "mariadb")
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def upgrade() -> None:
    with op.batch_alter_table("page_incidents") as batch:
        batch.add_column(sa.Column("component_impacts", JSON, nullable=True))
        batch.add_column(sa.Column("postmortem", sa.Text(), nullable=True))
        batch.add_column(sa.Column("postmortem_at", TS, nullable=True))
    op.create_table(
        "page_maintenance",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("page_namespace", sa.String(length=63), nullable=False),
        sa.Column("page_name", sa.String(length=253), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("components", JSON, nullable=False),
        sa.Column("monitors", JSON, nullable=False),
        sa.Column("starts_at", TS, nullable=False),
        sa.Column("ends_at", TS, nullable=False),
        sa.Column("started_by", sa.String(length=255), nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("ended_by", sa.String(length=255), nullable=True),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_page_maintenance_window")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_maintenance")),
        **MYSQL_OPTIONS,
    )
    op.create_index(
        op.f("ix_page_maintenance_page_namespace_page_name_ends_at"),
        "page_maintenance",
        ["page_namespace", "page_name", "ends_at"],
    )


def downgrade() -> None:
    op.drop_table("page_maintenance")
    with op.batch_alter_table("page_incidents") as batch:
        batch.drop_column("postmortem_at")
        batch.drop_column("postmortem")
        batch.drop_column("component_impacts")
