"""Reliability: one unresolved incident per monitor; staleness judged in the database's time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

- ``incidents.open_monitor_id``: a virtual generated column (the monitor id while the incident is open
  or acknowledged, NULL once resolved) with a unique index, so two alerters (or an alerter racing a
  console action) can never hold two unresolved incidents for one monitor.
- ``monitor_states.reported_at``: when the probe's result was stored, by the database's clock.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
OPEN_MONITOR_ID = "CASE WHEN state IN ('open', 'acknowledged') THEN monitor_id END"


def upgrade() -> None:
    # Older stores may hold several unresolved incidents for one monitor (the race this closes): keep
    # the newest open, resolve the others, so the unique index can be built.
    op.execute(
        "UPDATE incidents SET state = 'resolved', resolved_at = opened_at "
        "WHERE state IN ('open', 'acknowledged') AND monitor_id IS NOT NULL AND id NOT IN ("
        "  SELECT newest FROM (SELECT MAX(id) AS newest FROM incidents"
        "  WHERE state IN ('open', 'acknowledged') AND monitor_id IS NOT NULL GROUP BY monitor_id) AS keep)"
    )
    op.add_column(
        "incidents", sa.Column("open_monitor_id", BIGID, sa.Computed(OPEN_MONITOR_ID, persisted=False), nullable=True)
    )
    op.create_index("uq_incidents_open_monitor_id", "incidents", ["open_monitor_id"], unique=True)
    op.add_column("monitor_states", sa.Column("reported_at", TS, nullable=True))


def downgrade() -> None:
    op.drop_column("monitor_states", "reported_at")
    op.drop_index("uq_incidents_open_monitor_id", table_name="incidents")
    op.drop_column("incidents", "open_monitor_id")
