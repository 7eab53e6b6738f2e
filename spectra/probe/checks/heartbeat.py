"""Heartbeat (push) check: DOWN when no push arrived within the interval plus the grace period.

The pushes themselves arrive over HTTP (`/api/v1/heartbeat/{token}`) and land in the store; this
check only reads when the last one came, through ``ctx.last_push`` (the worker wires it to the
store). A monitor that never received a push is measured from when the worker first saw it, which
the worker notes with :func:`note_first_seen` (or, failing that, from this check's first run).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from spectra.api.durations import format_duration
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import CheckResult

FIRST_SEEN = "heartbeat.first_seen"  # ctx.shared name: {monitor ref: when the worker first saw it}


def _first_seen(ctx: CheckContext) -> dict[str, datetime]:
    seen: dict[str, datetime] = ctx.shared(FIRST_SEEN, dict)
    return seen


def note_first_seen(ctx: CheckContext, request: CheckRequest, at: datetime) -> None:
    """Remember when a heartbeat monitor appeared (kept if it was seen before)."""
    _first_seen(ctx).setdefault(request.ref, at)


def _span(value: timedelta) -> str:
    """A measured time in whole seconds, the way durations are written (5m12s)."""
    return format_duration(timedelta(seconds=max(0, int(value.total_seconds()))))


async def check(request: CheckRequest, ctx: CheckContext) -> CheckResult:
    spec = request.spec
    if spec.heartbeat is None:
        raise ValueError("heartbeat check without a heartbeat block")
    if ctx.last_push is None:
        return CheckResult.down(None, "heartbeat pushes cannot be read here (no store)")
    now = datetime.now(UTC)
    last = await ctx.last_push(request)
    allowed = spec.interval + spec.heartbeat.grace
    expected = f"expected every {format_duration(spec.interval)} + grace {format_duration(spec.heartbeat.grace)}"
    if last is None:
        since = _first_seen(ctx).setdefault(request.ref, now)
        silent = now - since
        if silent > allowed:
            return CheckResult.down(None, f"no push for {_span(silent)}, never pushed ({expected})", last_push_at=None)
        return CheckResult.up(None, f"waiting for the first push ({expected})", last_push_at=None)
    silent = now - last
    facts = {"last_push_at": last.isoformat(), "seconds_since_push": round(silent.total_seconds(), 3)}
    if silent > allowed:
        return CheckResult.down(None, f"no push for {_span(silent)} ({expected})", **facts)
    return CheckResult.up(None, f"last push {_span(silent)} ago", **facts)
