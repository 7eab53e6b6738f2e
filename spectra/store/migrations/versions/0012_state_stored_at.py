"""``monitor_states.state_stored_at``: when a location's state last changed, by the database's clock,
indexed in place of ``changed_at`` (the probe's clock).

The console's live hub asks for the states stored since its last poll that changed lately. It used to
filter on ``reported_at`` (moved by every check) and ``changed_at`` (within two minutes): after many
monitors changed at once, each poll re-read all of them for two minutes. The new column moves only when
the state does, so a poll reads only rows that changed. Existing rows get their ``reported_at``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As spectra.store.types.UTCDateTime stores it (a frozen copy: migrations do not import the models).
TS = sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("monitor_states", sa.Column("state_stored_at", TS, nullable=True))
    op.execute("UPDATE monitor_states SET state_stored_at = reported_at")
    op.drop_index(op.f("ix_monitor_states_changed_at"), table_name="monitor_states")
    op.create_index(op.f("ix_monitor_states_state_stored_at"), "monitor_states", ["state_stored_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_monitor_states_state_stored_at"), table_name="monitor_states")
    op.create_index(op.f("ix_monitor_states_changed_at"), "monitor_states", ["changed_at"])
    with op.batch_alter_table("monitor_states") as batch:
        batch.drop_column("state_stored_at")
