"""Which database backends a test runs on: both by default (the `database_url` fixture), or one."""

from __future__ import annotations

import pytest

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For tests of logic above the store, where a second backend adds time and no coverage."""

mariadb_only = pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
"""For what only MySQL/MariaDB does (locking, deadlocks, isolation)."""
