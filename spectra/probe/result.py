"""What one check found: status, latency, a reason people can read, and type-specific facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    # No verdict: the probe's own lag (stopped, starved) ate the check's time budget. Never stored as a
    # check result, never counted toward the failure or success threshold.
    STALLED = "stalled"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    `reason` is one line for people ("HTTP 500 from https://...", "expected 'ok' in body"); it never
    holds secret values. `facts` carries type-specific details (status code, timings, certificate days
    left, DNS answers, packet loss) as JSON-ready values.
    """

    status: Status
    latency_ms: float | None
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return self.status is Status.UP

    @property
    def judges_target(self) -> bool:
        """Whether this result says anything about the target (a stalled probe's result does not)."""
        return self.status is not Status.STALLED

    @classmethod
    def up(cls, latency_ms: float | None, reason: str = "ok", **facts: Any) -> CheckResult:
        return cls(Status.UP, latency_ms, reason, facts)

    @classmethod
    def degraded(cls, latency_ms: float | None, reason: str, **facts: Any) -> CheckResult:
        return cls(Status.DEGRADED, latency_ms, reason, facts)

    @classmethod
    def down(cls, latency_ms: float | None, reason: str, **facts: Any) -> CheckResult:
        return cls(Status.DOWN, latency_ms, reason, facts)

    @classmethod
    def stalled(cls, latency_ms: float | None, reason: str, **facts: Any) -> CheckResult:
        return cls(Status.STALLED, latency_ms, reason, facts)
