"""Status pages: page incidents and their updates.

Revision ID: 0004
Revises: 0003
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

revision: str = "0004"
down_revision: str | None = "0003"
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
STATES = "state IN ('investigating', 'identified', 'monitoring', 'resolved')"


def upgrade() -> None:
    op.create_table(
        "page_incidents",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("page_namespace", sa.String(length=63), nullable=False),
        sa.Column("page_name", sa.String(length=253), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("impact", sa.String(length=32), nullable=False),
        sa.Column("components", JSON, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("monitor_incident_id", BIGID, nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.CheckConstraint(STATES, name=op.f("ck_page_incidents_state")),
        sa.CheckConstraint("source IN ('auto', 'manual')", name=op.f("ck_page_incidents_source")),
        sa.ForeignKeyConstraint(
            ["monitor_incident_id"],
            ["incidents.id"],
            name=op.f("fk_page_incidents_monitor_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_incidents")),
        **MYSQL_OPTIONS,
    )
    op.create_index(
        op.f("ix_page_incidents_page_namespace_page_name_started_at"),
        "page_incidents",
        ["page_namespace", "page_name", "started_at"],
    )
    op.create_index(op.f("ix_page_incidents_resolved_at"), "page_incidents", ["resolved_at"])
    op.create_index(op.f("ix_page_incidents_monitor_incident_id"), "page_incidents", ["monitor_incident_id"])

    op.create_table(
        "page_incident_updates",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("page_incident_id", BIGID, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=255), nullable=True),
        sa.CheckConstraint(STATES, name=op.f("ck_page_incident_updates_state")),
        sa.ForeignKeyConstraint(
            ["page_incident_id"],
            ["page_incidents.id"],
            name=op.f("fk_page_incident_updates_page_incident_id_page_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_incident_updates")),
        **MYSQL_OPTIONS,
    )
    op.create_index(
        op.f("ix_page_incident_updates_page_incident_id_at"), "page_incident_updates", ["page_incident_id", "at"]
    )


def downgrade() -> None:
    op.drop_table("page_incident_updates")
    op.drop_table("page_incidents")
