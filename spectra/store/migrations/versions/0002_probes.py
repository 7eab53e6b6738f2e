"""Probe bookkeeping: monitor states, worker leases, heartbeat pushes; slot times of results.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Types are spelled out here (as in 0001) so this revision keeps creating the same schema whatever the
models become later. Columns are added in batch mode, which on SQLite alters in place where it can
and rebuilds the table where it must (the downgrade's column drops).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
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

TABLES = ("heartbeat_pushes", "monitor_leases", "probe_workers", "monitor_states")


def _monitor_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["monitor_id"], ["monitors.resource_id"], name=op.f(f"fk_{table}_monitor_id_monitors"), ondelete="CASCADE"
    )


def upgrade() -> None:
    with op.batch_alter_table("monitors") as batch:
        batch.add_column(sa.Column("push_token_hash", sa.String(length=64), nullable=True))
        batch.create_index(op.f("ix_monitors_push_token_hash"), ["push_token_hash"], unique=True)
    with op.batch_alter_table("check_results") as batch:
        batch.add_column(sa.Column("scheduled_at", TS, nullable=True))

    op.create_table(
        "monitor_states",
        sa.Column("monitor_id", BIGID, nullable=False),
        sa.Column("location", sa.String(length=63), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("consecutive_successes", sa.Integer(), nullable=False),
        sa.Column("last_check_at", TS, nullable=True),
        sa.Column("last_latency_ms", sa.Double(), nullable=True),
        sa.Column("last_reason", sa.String(length=500), nullable=False),
        sa.Column("changed_at", TS, nullable=False),
        sa.Column("facts", JSON, nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'up', 'down', 'degraded', 'paused')", name=op.f("ck_monitor_states_state")
        ),
        _monitor_fk("monitor_states"),
        sa.PrimaryKeyConstraint("monitor_id", "location", name=op.f("pk_monitor_states")),
        **MYSQL_OPTIONS,
    )

    op.create_table(
        "probe_workers",
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=63), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_probe_workers")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_probe_workers_location"), "probe_workers", ["location"])

    op.create_table(
        "monitor_leases",
        sa.Column("monitor_id", BIGID, nullable=False),
        sa.Column("location", sa.String(length=63), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=True),
        sa.Column("lease_until", TS, nullable=False),
        _monitor_fk("monitor_leases"),
        sa.PrimaryKeyConstraint("monitor_id", "location", name=op.f("pk_monitor_leases")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_monitor_leases_location_lease_until"), "monitor_leases", ["location", "lease_until"])

    op.create_table(
        "heartbeat_pushes",
        sa.Column("monitor_id", BIGID, autoincrement=False, nullable=False),
        sa.Column("last_push_at", TS, nullable=False),
        sa.Column("pushes", sa.BigInteger(), nullable=False),
        _monitor_fk("heartbeat_pushes"),
        sa.PrimaryKeyConstraint("monitor_id", name=op.f("pk_heartbeat_pushes")),
        **MYSQL_OPTIONS,
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
    with op.batch_alter_table("check_results") as batch:
        batch.drop_column("scheduled_at")
    with op.batch_alter_table("monitors") as batch:
        batch.drop_index(op.f("ix_monitors_push_token_hash"))
        batch.drop_column("push_token_hash")
