"""One checker module per check type behind one interface: `async def check(request, ctx) -> CheckResult`.

`run_check` applies the per-check timeout and turns every failure, including our own bugs, into a
DOWN result with a reason, so one bad monitor never stops a worker.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable

from spectra.probe.context import CheckContext, CheckRequest, MissingSecret
from spectra.probe.egress import EgressRefused
from spectra.probe.result import CheckResult

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


def checker_for(monitor_type: str) -> Checker:
    module = importlib.import_module(_MODULES[monitor_type])
    checker: Checker = module.check
    return checker


async def run_check(request: CheckRequest, ctx: CheckContext) -> CheckResult:
    """Run one check with its timeout; never raises."""
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
        log.exception("checker %s failed on %s", spec.type, request.ref)
        return CheckResult.down(_elapsed(started), f"internal error: {type(exc).__name__}: {exc}")


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
