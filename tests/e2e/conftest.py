"""End-to-end fixtures: a local HTTP target the test controls, and the mail and SMS provider stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Target
from tests.support.providers import Providers


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    server = Target(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def providers() -> Iterator[Providers]:
    fakes = Providers()
    yield fakes
    fakes.close()
