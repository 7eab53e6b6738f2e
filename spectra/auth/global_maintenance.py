"""Turning global maintenance on and off, audited (`maintenance.global_on`, `maintenance.global_off`).

What it does and how the alerter and status pages read it: spectra.domain.global_maintenance (the
floor below, which cannot write the audit log). Who may call these (platform admins; the command line
as `cli`) is decided by the caller; these record who did, in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from spectra.auth.audit import record
from spectra.auth.identity import Actor
from spectra.domain.global_maintenance import GlobalMaintenanceRefused, Status, current, switch_off, switch_on

__all__ = ["GlobalMaintenanceRefused", "Status", "current", "turn_off", "turn_on"]


def turn_on(
    session: Session,
    *,
    message: str,
    until: datetime | None,
    show_on_status_pages: bool,
    actor: Actor,
    now: datetime,
) -> Status:
    """Turn global maintenance on (or change the one in effect) and audit it; the status after.

    GlobalMaintenanceRefused (exact text, nothing written) for an empty, too long or control-character
    message, or an `until` that is not in the future. Flushes; the caller commits.
    """
    before, after = switch_on(
        session,
        message=message,
        until=until,
        show_on_status_pages=show_on_status_pages,
        started_by=actor.name,
        now=now,
    )
    details = {
        "message": after.message,
        "until": after.as_dict()["until"],
        "show_on_status_pages": after.show_on_status_pages,
        "changed": before.on,  # True: it was on already and this changed its message, end or banner
    }
    record(session, actor, "maintenance.global_on", now=now, details=details)
    return after


def turn_off(session: Session, *, actor: Actor, now: datetime) -> Status:
    """Turn global maintenance off now and audit it; the status after (pages held by it fall due now).

    GlobalMaintenanceRefused when it is not on (nothing written). Flushes; the caller commits.
    """
    before = switch_off(session, now=now)
    details = {"message": before.message, "started_at": before.as_dict()["startedAt"], "started_by": before.started_by}
    record(session, actor, "maintenance.global_off", now=now, details=details)
    return current(session, now=now)
