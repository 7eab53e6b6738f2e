"""What `/readyz` answers: None while ready, else why not."""

from __future__ import annotations

from collections.abc import Callable

ReadinessCheck = Callable[[], str | None]
"""Returns None when ready, else why not."""


class Readiness:
    """A readiness a process sets as it starts and stops ("starting" until :func:`serve` runs)."""

    def __init__(self) -> None:
        self.problem: str | None = "starting"

    def __call__(self) -> str | None:
        return self.problem
