"""Component and page states from the monitors' combined states."""

from __future__ import annotations

import pytest

from spectra.domain.components import component_state, overall_state


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["up"], "operational"),
        (["up", "up"], "operational"),
        (["up", "degraded"], "degraded"),
        (["degraded"], "degraded"),
        (["up", "down"], "partial_outage"),
        (["degraded", "down"], "partial_outage"),
        (["down"], "major_outage"),
        (["down", "down"], "major_outage"),
        (["down", "pending"], "major_outage"),  # pending carries no data
        (["maintenance"], "maintenance"),
        (["maintenance", "up"], "maintenance"),
        (["maintenance", "down"], "major_outage"),  # the monitor outside the window is down
        (["pending"], "unknown"),
        (["paused"], "unknown"),
        ([None], "unknown"),
        ([], "unknown"),
    ],
)
def test_component_state(states: list[str | None], expected: str) -> None:
    assert component_state(states) == expected


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["operational", "operational"], "operational"),
        (["operational", "maintenance"], "maintenance"),
        (["operational", "degraded", "maintenance"], "degraded"),
        (["degraded", "partial_outage"], "partial_outage"),
        (["major_outage", "partial_outage", "operational"], "major_outage"),
        (["operational", "unknown"], "unknown"),  # no data is never reported as operational
        ([], "unknown"),
    ],
)
def test_overall_is_the_worst(states: list[str], expected: str) -> None:
    assert overall_state(states) == expected
