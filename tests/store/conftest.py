"""Store fixtures: `make_monitor` adds Monitor rows to the shared migrated database (tests/conftest.py)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from tests.factories.store import MonitorFactory, monitor_factory


@pytest.fixture
def make_monitor(session: Session) -> MonitorFactory:
    """Adds a Monitor resource with its hot-path row and locations; returns the flushed Monitor."""
    return monitor_factory(session)
