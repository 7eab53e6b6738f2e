"""The real services tests use (MariaDB, kubectl/helm, Chromium, dnsmasq, ...): when one is missing,
a skip that says how to get it locally, a failure under CI=true (CI must not silently test less)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

MARIADB_URL = os.environ.get("SPECTRA_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
MARIADB_HINT = (
    "MariaDB is not reachable on 127.0.0.1:3306; start it with "
    "`start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` "
    "(scripts/test does this for you)"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing_service(message: str) -> NoReturn:
    """In CI a missing service is a failure; locally a skip that says how to start it."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)
