"""Fault-test fixtures: `cluster` (tests/support/cluster.py) on a fresh MariaDB database, stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.support.providers import Providers


@pytest.fixture
def cluster(mariadb_url: str, tmp_path: Path, providers: Providers) -> Iterator[Cluster]:
    running = Cluster(mariadb_url, tmp_path, providers)
    yield running
    running.close()
