"""What a location's workers read of the configuration: its monitors, a cheap fingerprint, specs by id."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from spectra.store.batches import CHUNK
from spectra.store.location_monitors import existing_monitors, location_fingerprint, location_monitors, monitor_specs
from tests.factories.store import NOW, MonitorFactory


def test_location_monitors_and_fingerprint(session: Session, make_monitor: MonitorFactory) -> None:
    a = make_monitor("a", locations=("eu", "us"))
    make_monitor("b", locations=("us",))
    before = location_fingerprint(session, "eu")
    rows = location_monitors(session, "eu")
    assert [(r.monitor_id, r.name, r.paused, r.spec) for r in rows] == [
        (a.resource_id, "a", False, {"type": "http", "http": {"url": "https://a.example"}})
    ]
    assert location_monitors(session, "eu", with_spec=False)[0].spec is None
    assert location_fingerprint(session, "eu") == before
    a.resource.updated_at = NOW + timedelta(days=3650)
    session.flush()
    assert location_fingerprint(session, "eu") != before
    assert location_fingerprint(session, "nowhere") == (0, 0, None)


def test_existing_monitors_and_specs_by_id_over_more_ids_than_one_statement_takes(
    session: Session, make_monitor: MonitorFactory
) -> None:
    a, b = make_monitor("a"), make_monitor("b")
    asked = [*range(10_000, 10_000 + 2 * CHUNK), a.resource_id, b.resource_id, a.resource_id]

    assert existing_monitors(session, asked) == {a.resource_id, b.resource_id}
    assert monitor_specs(session, asked) == {
        a.resource_id: {"type": "http", "http": {"url": "https://a.example"}},
        b.resource_id: {"type": "http", "http": {"url": "https://b.example"}},
    }
    assert existing_monitors(session, []) == set()
    assert monitor_specs(session, []) == {}
