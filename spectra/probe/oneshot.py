"""Run every monitor once (`spectra check`): the pull-request dry run of a set of manifests."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spectra.probe.checks import run_check
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import CheckResult

# Heartbeats wait for pushes and paused monitors are off: neither can be checked once.
_NOT_CHECKABLE = {"heartbeat": "not checked: heartbeat monitors wait for pushes"}


@dataclass(frozen=True)
class Outcome:
    request: CheckRequest
    result: CheckResult | None  # None: skipped
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.result is not None and self.result.status == "down"


async def check_once(
    requests: Sequence[CheckRequest],
    ctx: CheckContext,
    *,
    concurrency: int = 16,
    skip: Mapping[str, str] | None = None,
) -> list[Outcome]:
    """Check each monitor once, at most `concurrency` at a time; results keep the input order.

    `skip` maps a monitor's ref to why it is not checked (e.g. its Secret is not in the manifests).
    """
    gate = asyncio.Semaphore(concurrency)
    skip = skip or {}

    async def one(request: CheckRequest) -> Outcome:
        if request.ref in skip:
            return Outcome(request, None, skip[request.ref])
        if request.spec.paused:
            return Outcome(request, None, "not checked: paused")
        if str(request.spec.type) in _NOT_CHECKABLE:
            return Outcome(request, None, _NOT_CHECKABLE[str(request.spec.type)])
        async with gate:
            return Outcome(request, await run_check(request, ctx))

    try:
        return list(await asyncio.gather(*(one(request) for request in requests)))
    finally:
        await ctx.aclose()


def render_table(outcomes: Sequence[Outcome]) -> str:
    """A plain-text table: monitor, type, result, latency, reason."""
    rows = [("MONITOR", "TYPE", "RESULT", "LATENCY", "REASON")]
    for outcome in outcomes:
        result = outcome.result
        latency = f"{result.latency_ms:.0f} ms" if result is not None and result.latency_ms is not None else "-"
        rows.append(
            (
                outcome.request.ref,
                str(outcome.request.spec.type),
                str(result.status) if result is not None else "skipped",
                latency,
                result.reason if result is not None else outcome.note,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows]
    return "\n".join(line.rstrip() for line in lines)
