"""Store queries of status pages: ad-hoc maintenance is forgotten once it is older than the longest history
a page shows, and not before (its hours still count in uptime until then)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.store import PageMaintenance
from spectra.store.statuspages import PAGE_MAINTENANCE_KEPT, prune_page_maintenance

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _maintenance(session: Session, title: str, starts: datetime, ends: datetime, ended: datetime | None = None) -> None:
    session.add(
        PageMaintenance(
            page_namespace="acme", page_name="public", title=title, components=["Site"], monitors=["web"],
            starts_at=starts, ends_at=ends, ended_at=ended, started_by="ada@acme.example",
        )
    )  # fmt: skip


def test_only_maintenance_past_the_longest_history_is_forgotten(session: Session) -> None:
    old = NOW - PAGE_MAINTENANCE_KEPT - timedelta(days=1)
    _maintenance(session, "long ago", old - timedelta(hours=2), old)
    _maintenance(session, "ended early long ago, planned later", old - timedelta(hours=2), NOW, ended=old)
    _maintenance(session, "a long one, ended recently", old - timedelta(hours=2), NOW - timedelta(days=10))
    _maintenance(session, "within the history", NOW - timedelta(days=30), NOW - timedelta(days=29))
    _maintenance(session, "to come", NOW + timedelta(days=1), NOW + timedelta(days=2))
    session.flush()
    assert prune_page_maintenance(session, NOW) == 2
    kept = set(session.scalars(select(PageMaintenance.title)))
    assert kept == {"a long one, ended recently", "within the history", "to come"}
    assert prune_page_maintenance(session, NOW) == 0
