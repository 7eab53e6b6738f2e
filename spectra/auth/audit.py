"""The audit log: append-only from the application's side, filterable, exportable.

Every module of spectra.auth (and the console after it) records through `record`; nothing updates or
deletes a row. An action is a dotted verb (`user.login`, `user.login_failed`, `mfa.enrolled`,
`member.role_changed`, `token.created`, `impersonation.started`, `maintenance.global_on`, ...); the
target names what it acted on; `details` holds what else matters, never a secret.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.auth.identity import Actor
from spectra.runtime.timefmt import rfc3339
from spectra.store.accounts import AuditLog

EXPORT_FIELDS = (
    "at",
    "actor",
    "impersonator",
    "organization",
    "ip",
    "action",
    "targetKind",
    "targetNamespace",
    "targetName",
    "details",
)


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    now: datetime,
    organization: str | None = None,
    target: tuple[str, str | None, str | None] | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditLog:
    """Add one record (flushed with the caller's transaction: an action and its record commit together).
    `organization` defaults to the actor's; `target` is (kind, namespace, name)."""
    kind, namespace, name = target if target is not None else (None, None, None)
    row = AuditLog(
        at=now,
        actor=actor.name,
        actor_user_id=actor.user_id,
        impersonator=actor.impersonator,
        organization=organization if organization is not None else actor.organization,
        ip=actor.ip,
        action=action,
        target_kind=kind,
        target_namespace=namespace,
        target_name=name,
        details={**actor.details, **(details or {})} or None,
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class AuditFilter:
    """Which records: one organization's (None: every one, for platform admins), an action prefix
    (`user.` for every sign-in event), an actor, a time range [since, until)."""

    organization: str | None = None
    action_prefix: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def query(session: Session, where: AuditFilter, *, limit: int = 100, before_id: int | None = None) -> list[AuditLog]:
    """Newest first; `before_id` is the cursor of the next page."""
    statement = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if where.organization is not None:
        statement = statement.where(AuditLog.organization == where.organization)
    if where.action_prefix:
        statement = statement.where(AuditLog.action.startswith(where.action_prefix, autoescape=True))
    if where.actor:
        statement = statement.where(AuditLog.actor == where.actor.strip().lower())
    if where.since is not None:
        statement = statement.where(AuditLog.at >= where.since)
    if where.until is not None:
        statement = statement.where(AuditLog.at < where.until)
    if before_id is not None:
        statement = statement.where(AuditLog.id < before_id)
    return list(session.scalars(statement))


def as_dict(row: AuditLog) -> dict[str, Any]:
    """A record as the API and the exports name it (camelCase, as everywhere under /api/v1)."""
    return {
        "at": rfc3339(row.at),
        "actor": row.actor,
        "impersonator": row.impersonator,
        "organization": row.organization,
        "ip": row.ip,
        "action": row.action,
        "targetKind": row.target_kind,
        "targetNamespace": row.target_namespace,
        "targetName": row.target_name,
        "details": row.details,
    }


def export_json_lines(rows: Iterable[AuditLog]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(as_dict(row), ensure_ascii=False, separators=(",", ":")) + "\n"


def export_csv(rows: Iterable[AuditLog]) -> Iterator[str]:
    """CSV with a header; cells that a spreadsheet would run as a formula are quoted with a leading '."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    yield _take(out)
    for row in rows:
        values = as_dict(row)
        cells = [
            json.dumps(values[f]) if f == "details" and values[f] is not None else values[f] for f in EXPORT_FIELDS
        ]
        writer.writerow([_defused("" if cell is None else str(cell)) for cell in cells])
        yield _take(out)


def _defused(cell: str) -> str:
    # OWASP CSV injection: a cell starting with = + - @ (or a tab/CR) would be a formula in a spreadsheet.
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _take(out: io.StringIO) -> str:
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text
