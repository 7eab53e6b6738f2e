"""One checker module per check type behind one interface: `async def check(request, ctx) -> CheckResult`.

`run_check` applies the per-check timeout and turns every failure, including our own bugs, into a
DOWN result with a reason, so one bad monitor never stops a worker. It is also where a result leaves the
checker: every secret value the check resolved is taken out of its reason and facts
(:mod:`spectra.probe.scrubbing`), whatever the target echoed. A DOWN or DEGRADED result that the
probe's own lateness explains (:func:`spectra.probe.lag.lateness_cause`: its event loop lost a real
share of the time budget, or the check started far behind its slot and then ran out of time) becomes a
STALLED result instead: timeouts, packet loss and slow answers measured while the probe was not running,
was saturated, or kept the check waiting for its own shared evaluator processes, say nothing about the
target.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from functools import cache

from spectra.domain.egress import EgressRefused
from spectra.probe.context import CheckContext, CheckRequest, MissingSecret
from spectra.probe.lag import LatenessCause, lateness_cause, queue_of_this_check
from spectra.probe.result import CheckResult, Status
from spectra.probe.scrubbing import ResolvedSecrets, collecting

log = logging.getLogger(__name__)

Checker = Callable[[CheckRequest, CheckContext], Awaitable[CheckResult]]

# Modules are imported on first use: browser checks pull in Playwright, which is an optional extra.
_MODULES = {
    "http": "spectra.probe.checks.http",
    "tcp": "spectra.probe.checks.tcp",
    "udp": "spectra.probe.checks.udp",
    "dns": "spectra.probe.checks.dns",
    "icmp": "spectra.probe.checks.icmp",
    "tls": "spectra.probe.checks.tls",
    "heartbeat": "spectra.probe.checks.heartbeat",
    "browser": "spectra.probe.checks.browser",
}


@cache  # asked once per check; a type's module is imported on first use (browser checks pull in Playwright)
def checker_for(monitor_type: str) -> Checker:
    module = importlib.import_module(_MODULES[monitor_type])
    checker: Checker = module.check
    return checker


# What the probe's own lag can cause: a deadline passing, an answer counted slow.
_LAG_SENSITIVE = frozenset({Status.DOWN, Status.DEGRADED})


async def run_check(request: CheckRequest, ctx: CheckContext, *, due: float | None = None) -> CheckResult:
    """Run one check with its timeout; never raises. STALLED when the probe's own lateness voids a failure
    (``due``: the epoch time of the check's slot, when it has one). No secret value the check resolved is
    left in the result."""
    with collecting() as secrets:
        result = await _judged(request, ctx, secrets, due)
    return secrets.scrub_result(result)


async def _judged(request: CheckRequest, ctx: CheckContext, secrets: ResolvedSecrets, due: float | None) -> CheckResult:
    lag = ctx.loop_lag
    started_late_s = 0.0 if due is None else max(0.0, time.time() - due)
    mark = lag.mark() if lag is not None else 0.0
    started = time.perf_counter()
    with queue_of_this_check() as queued:
        result = await _run_check(request, ctx, secrets)
    if result.status not in _LAG_SENSITIVE:
        return result
    lost_s = lag.since(mark) if lag is not None else 0.0
    cause = lateness_cause(
        timeout_s=request.spec.effective_timeout.total_seconds(),
        loop_lag_s=lost_s,
        started_late_s=started_late_s,
        elapsed_s=time.perf_counter() - started,
        slow=result.status is Status.DEGRADED,
        queued_s=queued.seconds,
    )
    if cause is None:
        return result
    if cause is LatenessCause.LOOP_LAG:
        why = f"not running for {lost_s:.1f}s of the check"
    elif cause is LatenessCause.QUEUED:
        why = f"waited {queued.seconds:.1f}s for {queued.what}"
    else:
        why = f"started {started_late_s:.1f}s after its slot (the probe is saturated)"
    reason = f"probe stalled: {why}, no verdict on the target (it would have been {result.status}: {result.reason})"
    facts = {
        **result.facts,
        "probe_lag_s": round(lost_s, 3),
        "started_late_s": round(started_late_s, 3),
        "queued_s": round(queued.seconds, 3),
        "stall_cause": cause.value,
        "voided_status": result.status.value,
    }
    return CheckResult.stalled(result.latency_ms, reason, **facts)


async def _run_check(request: CheckRequest, ctx: CheckContext, secrets: ResolvedSecrets) -> CheckResult:
    spec = request.spec
    timeout = spec.effective_timeout.total_seconds()
    started = time.perf_counter()
    try:
        checker = checker_for(str(spec.type))
        async with asyncio.timeout(timeout):
            return await checker(request, ctx)
    except TimeoutError:
        return CheckResult.down(_elapsed(started), f"timed out after {timeout:g}s")
    except EgressRefused as exc:
        return CheckResult.down(None, f"refused by the egress policy: {exc}")
    except MissingSecret as exc:
        return CheckResult.down(None, str(exc))
    except ImportError as exc:
        return CheckResult.down(None, f"{spec.type} checks are not installed here: {exc}")
    except Exception as exc:  # a checker bug must not take the worker down
        # The traceback may quote what the target sent (an echoed secret): logged scrubbed.
        log.error("checker %s failed on %s\n%s", spec.type, request.ref, secrets.scrub(traceback.format_exc()))
        return CheckResult.down(_elapsed(started), f"internal error: {type(exc).__name__}: {exc}")


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
