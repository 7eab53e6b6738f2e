"""Secrets at rest: outbox bodies sealed, handled webhook requests remembered.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-20

- ``notifications.payload`` holds link tokens (ack, confirm, unsubscribe) in its text, html, facts and
  headers: rows still to be delivered are sealed with the key derived from SPECTRA_SECRET_KEY
  (``spectra.store.sealing``; run this with the key the processes use), delivered and given-up rows are
  emptied. The column stays JSON; only its values change.
- ``webhook_requests``: the provider ids (Twilio MessageSid, CallSid) of webhook requests already
  handled, unique, with an expiry, so a replayed request does not act again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

from spectra.store.sealing import is_sealed, seal, unseal

revision: str = "0006"
down_revision: str | None = "0005"
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
FINAL_STATUSES = ("sent", "dead")
CHUNK = 500

notifications = sa.table(
    "notifications", sa.column("id", BIGID), sa.column("status", sa.String(16)), sa.column("payload", JSON)
)


def upgrade() -> None:
    op.create_table(
        "webhook_requests",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("request_key", sa.String(length=128), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_requests")),
        sa.UniqueConstraint("request_key", name=op.f("uq_webhook_requests_request_key")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_webhook_requests_expires_at"), "webhook_requests", ["expires_at"])
    if context.is_offline_mode():
        # SQL rendered for a DBA cannot encrypt: final rows are emptied, pending ones stay plain until
        # the sender empties them on delivery (readers take plain and sealed values alike).
        op.execute(
            sa.update(notifications).where(notifications.c.status.in_(FINAL_STATUSES)).values(payload=sa.text("'{}'"))
        )
    else:
        _rewrite_payloads(_sealed_or_emptied)


def downgrade() -> None:
    if not context.is_offline_mode():
        _rewrite_payloads(lambda status, payload: unseal(payload) if is_sealed(payload) else payload)
    op.drop_index(op.f("ix_webhook_requests_expires_at"), table_name="webhook_requests")
    op.drop_table("webhook_requests")


def _sealed_or_emptied(status: str, payload: Any) -> Any:
    if status in FINAL_STATUSES:
        return seal({})  # delivered or given up: the body (and its links) has no use any more
    return payload if is_sealed(payload) else seal(payload or {})


def _rewrite_payloads(rewrite: Callable[[str, Any], Any]) -> None:
    connection = op.get_bind()
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(notifications.c.id, notifications.c.status, notifications.c.payload)
            .where(notifications.c.id > last_id)
            .order_by(notifications.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        for row_id, status, payload in rows:
            connection.execute(
                sa.update(notifications).where(notifications.c.id == row_id).values(payload=rewrite(status, payload))
            )
        last_id = rows[-1][0]
