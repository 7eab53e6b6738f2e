"""Fixtures of the web tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    """An event loop in a thread, for calling the app's async client from synchronous tests."""
    with start_blocking_portal() as running:
        yield running
