"""Latency histograms in the hourly and daily rollups (p50 and p95 per hour), the manifest file each
standalone resource came from, and an index on monitor_states.changed_at (the console's live hub reads
the states changed since its last poll).

Rows rolled up before this revision get zeros in every histogram counter: their +Inf counter
(latency_le_inf) is 0 while latency_count is not, so their percentiles are unknown (and shown as such),
never made up. Resources applied before it have no source_file until they are applied again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLLUP_TABLES = ("check_rollups_hourly", "check_rollups_daily")
# Frozen copies of spectra.store.results.LATENCY_BOUNDS_MS / HISTOGRAM_COLUMNS as of this revision.
HISTOGRAM_COLUMNS = (
    *(f"latency_le_{bound}_ms" for bound in (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)),
    "latency_le_inf",
)


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN (SQLite takes NOT NULL with a default): no table rebuild, and the
    # offline SQL (`spectra migrate --sql`) needs no live connection.
    for table in ROLLUP_TABLES:
        for name in HISTOGRAM_COLUMNS:
            op.add_column(table, sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("resources", sa.Column("source_file", sa.String(length=1024), nullable=True))
    op.create_index(op.f("ix_monitor_states_changed_at"), "monitor_states", ["changed_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_monitor_states_changed_at"), table_name="monitor_states")
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("source_file")
    for table in ROLLUP_TABLES:
        with op.batch_alter_table(table) as batch:
            for name in reversed(HISTOGRAM_COLUMNS):
                batch.drop_column(name)
