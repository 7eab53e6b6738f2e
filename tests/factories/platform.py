"""What the platform pages show, made in the store: Organizations with a plan and trial (as the operator
stores them), probe workers holding monitor leases, a leader lease, outbox messages (no bodies needed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from spectra.store import Notification, Resource, acquire_lease
from spectra.store.worker_leases import ensure_leases, take_leases, touch_worker


def tenant(session: Session, name: str, namespaces: Sequence[str], **spec: Any) -> None:
    """An Organization owning `namespaces`, with camelCase spec fields (plan, trialEnds, suspended); flushed."""
    body = {"displayName": name.title(), "namespaces": list(namespaces), **spec}
    session.add(Resource(kind="Organization", namespace="", name=name, spec=body, spec_hash="0" * 64, source="cluster"))
    session.flush()


def worker_holding(
    session: Session, worker_id: str, location: str, monitor_ids: Sequence[int], *, now: datetime, until: datetime
) -> int:
    """A probe worker of `location`, seen at `now`, holding the leases of `monitor_ids` until `until`; how many."""
    touch_worker(session, worker_id, location, now)
    ensure_leases(session, monitor_ids, location)
    held = take_leases(session, worker_id, location, monitor_ids, now=now, until=until)
    session.flush()
    return held


def leader(session: Session, name: str, holder: str, *, now: datetime, until: datetime) -> None:
    assert acquire_lease(session, name, holder, now=now, until=until)
    session.flush()


def outbox_message(session: Session, key: str, status: str, *, created_at: datetime) -> None:
    session.add(
        Notification(
            idempotency_key=key,
            channel="email",
            recipient="someone@example.com",
            subject="A secret subject",
            payload={"text": "A secret body"},
            status=status,
            next_attempt_at=created_at,
            created_at=created_at,
        )
    )
    session.flush()
