"""Initial schema: config, results and rollups, incidents, outbox, subscribers, accounts.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Generated with autogenerate, then regrouped by concept. Types are spelled out here rather than
imported from the models so that this revision keeps creating the same schema whatever the models
become later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# spectra.store.types as of this revision: BigIntPK, UTCDateTime's storage, JSONType.
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON = sa.JSON(none_as_null=True)
# Under both prefixes: the mariadb dialect (``mariadb://`` URLs) ignores ``mysql_`` table options.
MYSQL_OPTIONS: dict[str, Any] = {
    f"{dialect}_{option}": value
    for dialect in ("mysql", "mariadb")
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}

# Children before parents, for downgrade.
TABLES = (
    "notification_attempts",
    "notifications",
    "escalations",
    "incident_events",
    "incidents",
    "check_rollups_daily",
    "check_rollups_hourly",
    "check_results",
    "monitor_locations",
    "monitors",
    "resources",
    "subscribers",
    "sessions",
    "users",
    "audit_log",
)


def _id() -> sa.Column[Any]:
    return sa.Column("id", BIGID, nullable=False)


def _fk(column: str, target: str, table: str, ondelete: str) -> sa.ForeignKeyConstraint:
    referred = target.partition(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=op.f(f"fk_{table}_{column}_{referred}"), ondelete=ondelete)


def _rollup_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("monitor_id", BIGID, nullable=False),
        sa.Column("location", sa.String(length=63), nullable=False),
        sa.Column("bucket_start", TS, nullable=False),
        sa.Column("checks_total", sa.Integer(), nullable=False),
        sa.Column("checks_up", sa.Integer(), nullable=False),
        sa.Column("checks_degraded", sa.Integer(), nullable=False),
        sa.Column("checks_down", sa.Integer(), nullable=False),
        sa.Column("latency_count", sa.Integer(), nullable=False),
        sa.Column("latency_sum_ms", sa.Double(), nullable=False),
        sa.Column("latency_max_ms", sa.Double(), nullable=True),
        _fk("monitor_id", "monitors.resource_id", name, "CASCADE"),
        sa.PrimaryKeyConstraint("monitor_id", "location", "bucket_start", name=op.f(f"pk_{name}")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f(f"ix_{name}_bucket_start"), name, ["bucket_start"])


def upgrade() -> None:
    # --- desired configuration -----------------------------------------------------------------
    op.create_table(
        "resources",
        _id(),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("uid", sa.String(length=64), nullable=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
        sa.UniqueConstraint("kind", "namespace", "name", name=op.f("uq_resources_kind_namespace_name")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_resources_source"), "resources", ["source"])

    op.create_table(
        "monitors",
        sa.Column("resource_id", BIGID, autoincrement=False, nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=2048), nullable=False),
        sa.Column("interval_ms", sa.Integer(), nullable=False),
        sa.Column("timeout_ms", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("failure_threshold", sa.Integer(), nullable=False),
        sa.Column("success_threshold", sa.Integer(), nullable=False),
        sa.Column("escalation_policy", sa.String(length=253), nullable=True),
        sa.Column("severity", sa.String(length=32), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        _fk("resource_id", "resources.id", "monitors", "CASCADE"),
        sa.PrimaryKeyConstraint("resource_id", name=op.f("pk_monitors")),
        sa.UniqueConstraint("namespace", "name", name=op.f("uq_monitors_namespace_name")),
        **MYSQL_OPTIONS,
    )

    op.create_table(
        "monitor_locations",
        sa.Column("monitor_id", BIGID, nullable=False),
        sa.Column("location", sa.String(length=63), nullable=False),
        _fk("monitor_id", "monitors.resource_id", "monitor_locations", "CASCADE"),
        sa.PrimaryKeyConstraint("monitor_id", "location", name=op.f("pk_monitor_locations")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_monitor_locations_location"), "monitor_locations", ["location"])

    # --- results -------------------------------------------------------------------------------
    op.create_table(
        "check_results",
        _id(),
        sa.Column("monitor_id", BIGID, nullable=False),
        sa.Column("location", sa.String(length=63), nullable=False),
        sa.Column("checked_at", TS, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("details", JSON, nullable=True),
        sa.CheckConstraint("status IN ('up', 'degraded', 'down')", name=op.f("ck_check_results_status")),
        _fk("monitor_id", "monitors.resource_id", "check_results", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_results")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_check_results_checked_at"), "check_results", ["checked_at"])
    op.create_index(op.f("ix_check_results_monitor_id_checked_at"), "check_results", ["monitor_id", "checked_at"])
    _rollup_table("check_rollups_hourly")
    _rollup_table("check_rollups_daily")

    # --- incidents -----------------------------------------------------------------------------
    op.create_table(
        "incidents",
        _id(),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("monitor_id", BIGID, nullable=True),
        sa.Column("monitor_name", sa.String(length=253), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("severity", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=255), nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("escalation_policy", sa.String(length=253), nullable=True),
        sa.Column("policy_snapshot", JSON, nullable=True),
        sa.CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name=op.f("ck_incidents_state")),
        _fk("monitor_id", "monitors.resource_id", "incidents", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("code", name=op.f("uq_incidents_code")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_incidents_monitor_id"), "incidents", ["monitor_id"])
    op.create_index(op.f("ix_incidents_namespace_monitor_id"), "incidents", ["namespace", "monitor_id"])
    op.create_index(op.f("ix_incidents_opened_at"), "incidents", ["opened_at"])
    op.create_index(op.f("ix_incidents_state"), "incidents", ["state"])

    op.create_table(
        "incident_events",
        _id(),
        sa.Column("incident_id", BIGID, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=True),
        _fk("incident_id", "incidents.id", "incident_events", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_events")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_incident_events_incident_id_at"), "incident_events", ["incident_id", "at"])

    op.create_table(
        "escalations",
        sa.Column("incident_id", BIGID, autoincrement=False, nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("repeat_index", sa.Integer(), nullable=False),
        sa.Column("next_step_at", TS, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("status IN ('active', 'stopped', 'exhausted')", name=op.f("ck_escalations_status")),
        _fk("incident_id", "incidents.id", "escalations", "CASCADE"),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_escalations")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_escalations_next_step_at"), "escalations", ["next_step_at"])

    # --- notifications outbox ------------------------------------------------------------------
    op.create_table(
        "notifications",
        _id(),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("incident_id", BIGID, nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'dead')", name=op.f("ck_notifications_status")
        ),
        _fk("incident_id", "incidents.id", "notifications", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_notifications_idempotency_key")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_notifications_incident_id"), "notifications", ["incident_id"])
    op.create_index(op.f("ix_notifications_status_next_attempt_at"), "notifications", ["status", "next_attempt_at"])

    op.create_table(
        "notification_attempts",
        _id(),
        sa.Column("notification_id", BIGID, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("duration_ms", sa.Double(), nullable=True),
        _fk("notification_id", "notifications.id", "notification_attempts", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_attempts")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_notification_attempts_notification_id"), "notification_attempts", ["notification_id"])

    # --- status-page subscribers ---------------------------------------------------------------
    op.create_table(
        "subscribers",
        _id(),
        sa.Column("page_namespace", sa.String(length=63), nullable=False),
        sa.Column("page_name", sa.String(length=253), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("component", sa.String(length=191), nullable=False),  # '' = whole page
        sa.Column("created_at", TS, nullable=False),
        sa.Column("confirmed_at", TS, nullable=True),
        sa.Column("unsubscribed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscribers")),
        sa.UniqueConstraint(
            "page_namespace",
            "page_name",
            "email",
            "component",
            name=op.f("uq_subscribers_page_namespace_page_name_email_component"),
        ),
        **MYSQL_OPTIONS,
    )

    # --- console accounts ----------------------------------------------------------------------
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("organization", sa.String(length=253), nullable=True),
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
        _fk("user_id", "users.id", "sessions", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"])

    op.create_table(
        "audit_log",
        _id(),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=64), nullable=True),
        sa.Column("target_namespace", sa.String(length=63), nullable=True),
        sa.Column("target_name", sa.String(length=253), nullable=True),
        sa.Column("details", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints with it.
    for table in TABLES:
        op.drop_table(table)
