"""A saturated probe reports no target down: `spectra run` with more 1 s monitors than its one core can
check, healthy targets on another core (bench/saturation.py's quick run, about 30 s).

Checks that waited for the busy event loop, or started far behind their slot and then ran out of time,
end as "probe stalled" (no verdict); none is stored as DOWN. The test asserts counts only, never wall
times: a busy machine makes the probe later, which the probe must then say, not blame on the target.
"""

from __future__ import annotations

import os

import pytest

from bench.saturation import saturation

CORES = sorted(os.sched_getaffinity(0))

# Never beside the quick bench's own saturation run (both pin to the same cores): ONE_WORKER_MODULES in
# tests/conftest.py puts both modules on one worker.
pytestmark = pytest.mark.e2e


@pytest.mark.skipif(len(CORES) < 2, reason="needs two cores: one to saturate the probe on, one for the target")
async def test_a_saturated_probe_reports_no_healthy_target_down() -> None:
    result = await saturation("quick", CORES[0], CORES[1])
    assert "error" not in result, result
    assert result["saturated"], result  # behind its schedule (slots missed) or its core fully used
    assert result["up_checks"] > 0, result
    assert result["down_checks"] == 0, result["down_reasons"]
    assert result["met"], result
