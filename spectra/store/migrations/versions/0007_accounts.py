"""Accounts: users, memberships, sessions with rotating refresh tokens, API tokens, recovery codes,
impersonations, global maintenance, throttles, used links; the audit log says who acted for whom.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

The `users` and `sessions` tables of 0001 were placeholders nothing ever wrote: they are replaced (a
role and one organization per user become memberships; a session becomes a refresh token family).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0007"
down_revision: str | None = "0006"
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
NAME = 253
EMAIL = 320
DIGEST = 64


def _id() -> sa.Column[Any]:
    return sa.Column("id", BIGID, nullable=False, autoincrement=True)


def _fk(column: str, target: str, table: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [target], name=op.f(f"fk_{table}_{column}_{target.split('.', maxsplit=1)[0]}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.drop_table("sessions")
    op.drop_table("users")
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.String(length=EMAIL), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("platform_admin", sa.Boolean(), nullable=False),
        sa.Column("mfa_secret", sa.String(length=512), nullable=True),
        sa.Column("mfa_enabled", sa.Boolean(), nullable=False),
        sa.Column("mfa_last_step", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("password_changed_at", TS, nullable=True),
        sa.Column("last_login_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        **MYSQL_OPTIONS,
    )
    op.create_table(
        "memberships",
        _id(),
        sa.Column("user_id", BIGID, nullable=False),
        sa.Column("organization", sa.String(length=NAME), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _fk("user_id", "users.id", "memberships"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
        sa.UniqueConstraint("user_id", "organization", name=op.f("uq_memberships_user_id_organization")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_memberships_organization"), "memberships", ["organization"])
    op.create_table(
        "impersonations",
        _id(),
        sa.Column("impersonator_id", BIGID, nullable=False),
        sa.Column("user_id", BIGID, nullable=False),
        sa.Column("organization", sa.String(length=NAME), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        _fk("impersonator_id", "users.id", "impersonations"),
        _fk("user_id", "users.id", "impersonations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_impersonations")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_impersonations_impersonator_id"), "impersonations", ["impersonator_id"])
    op.create_index(op.f("ix_impersonations_user_id"), "impersonations", ["user_id"])
    op.create_table(
        "sessions",
        _id(),
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("user_id", BIGID, nullable=False),
        sa.Column("organization", sa.String(length=NAME), nullable=True),
        sa.Column("impersonation_id", BIGID, nullable=True),
        sa.Column("mfa_verified", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_reason", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        _fk("user_id", "users.id", "sessions"),
        _fk("impersonation_id", "impersonations.id", "sessions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("sid", name=op.f("uq_sessions_sid")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"])
    op.create_table(
        "refresh_tokens",
        _id(),
        sa.Column("session_id", BIGID, nullable=False),
        sa.Column("token_hash", sa.String(length=DIGEST), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("rotated_at", TS, nullable=True),
        _fk("session_id", "sessions.id", "refresh_tokens"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_refresh_tokens_session_id"), "refresh_tokens", ["session_id"])
    op.create_table(
        "api_tokens",
        _id(),
        sa.Column("user_id", BIGID, nullable=False),
        sa.Column("organization", sa.String(length=NAME), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=DIGEST), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        _fk("user_id", "users.id", "api_tokens"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
        sa.UniqueConstraint("user_id", "organization", "name", name=op.f("uq_api_tokens_user_id_organization_name")),
        **MYSQL_OPTIONS,
    )
    op.create_table(
        "recovery_codes",
        _id(),
        sa.Column("user_id", BIGID, nullable=False),
        sa.Column("code_hash", sa.String(length=DIGEST), nullable=False),
        sa.Column("used_at", TS, nullable=True),
        _fk("user_id", "users.id", "recovery_codes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_recovery_codes_user_id"), "recovery_codes", ["user_id"])
    op.create_table(
        "global_maintenance",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("message", sa.String(length=2000), nullable=False),
        sa.Column("show_on_status_pages", sa.Boolean(), nullable=False),
        sa.Column("until", TS, nullable=True),
        sa.Column("started_by", sa.String(length=EMAIL), nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_global_maintenance")),
        **MYSQL_OPTIONS,
    )
    op.create_table(
        "throttles",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_throttles")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_throttles_updated_at"), "throttles", ["updated_at"])
    op.create_table(
        "used_links",
        sa.Column("token_hash", sa.String(length=DIGEST), nullable=False),
        sa.Column("used_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_used_links")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_used_links_expires_at"), "used_links", ["expires_at"])
    with op.batch_alter_table("audit_log") as audit:
        audit.add_column(sa.Column("actor_user_id", sa.BigInteger(), nullable=True))
        audit.add_column(sa.Column("impersonator", sa.String(length=EMAIL), nullable=True))
        audit.add_column(sa.Column("organization", sa.String(length=NAME), nullable=True))
        audit.add_column(sa.Column("ip", sa.String(length=45), nullable=True))
    op.create_index(op.f("ix_audit_log_organization_at"), "audit_log", ["organization", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_organization_at"), table_name="audit_log")
    with op.batch_alter_table("audit_log") as audit:
        for column in ("ip", "organization", "impersonator", "actor_user_id"):
            audit.drop_column(column)
    for table in (
        "used_links",
        "throttles",
        "global_maintenance",
        "recovery_codes",
        "api_tokens",
        "refresh_tokens",
        "sessions",
        "impersonations",
        "memberships",
        "users",
    ):
        op.drop_table(table)
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.String(length=EMAIL), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("organization", sa.String(length=NAME), nullable=True),
        sa.Column("mfa_secret", sa.String(length=255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        **MYSQL_OPTIONS,
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", BIGID, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        _fk("user_id", "users.id", "sessions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"])
