"""Which monitors make a component, and component and page states from the monitors' combined states."""

from __future__ import annotations

import pytest

from spectra.api.statuspage import Component
from spectra.domain.components import component_monitors, component_state, overall_state
from spectra.domain.monitors import MonitorRef


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


MONITORS = {
    "shop": [
        MonitorRef(1, "shop", "web-2", {"tier": "web"}),
        MonitorRef(2, "shop", "web-1", {"tier": "web", "zone": "a"}),
        MonitorRef(3, "shop", "db", {"tier": "data"}),
    ],
    "other": [MonitorRef(4, "other", "web-3", {"tier": "web"})],
}


@pytest.mark.parametrize(
    ("component", "names"),
    [
        ({"monitors": ["db", "web-1"]}, ["db", "web-1"]),  # named: in the order given
        ({"monitors": ["db", "gone"]}, ["db"]),  # a name without a monitor is left out
        ({"monitors": ["web-3"]}, []),  # names are looked up in the page's namespace only
        ({"monitorSelector": {"matchLabels": {"tier": "web"}}}, ["web-1", "web-2"]),  # selected: by name
        ({"monitorSelector": {"matchLabels": {"tier": "web", "zone": "a"}}}, ["web-1"]),
    ],
)
def test_component_monitors(component: dict[str, object], names: list[str]) -> None:
    model = Component.model_validate({"name": "C", **component})
    assert [m.name for m in component_monitors("shop", model, MONITORS)] == names
    assert component_monitors("empty", model, MONITORS) == ()


JOINING = {
    "shop": [
        MonitorRef(1, "shop", "listed", {}),
        MonitorRef(2, "shop", "joined", {"spectra.dev/status-page": "public", "spectra.dev/component": "web-shop"}),
        MonitorRef(
            3, "shop", "other-page", {"spectra.dev/status-page": "internal", "spectra.dev/component": "web-shop"}
        ),
        MonitorRef(4, "shop", "selected", {"tier": "web"}),
    ],
    "other": [
        MonitorRef(5, "other", "elsewhere", {"spectra.dev/status-page": "public", "spectra.dev/component": "web-shop"})
    ],
}


@pytest.mark.parametrize(
    ("component", "page", "names"),
    [
        ({"monitors": ["listed"]}, "public", ["listed", "joined"]),  # named first, then those that joined
        ({"monitors": ["joined"]}, "public", ["joined"]),  # listed and joined: once
        ({"monitorSelector": {"matchLabels": {"tier": "web"}}}, "public", ["joined", "selected"]),
        ({"monitors": ["listed"]}, "internal", ["listed", "other-page"]),
        ({"monitors": ["listed"]}, None, ["listed"]),  # no page named: labels do not join
    ],
)
def test_monitors_join_a_component_by_label(component: dict[str, object], page: str | None, names: list[str]) -> None:
    model = Component.model_validate({"name": "Web Shop", **component})
    assert [m.name for m in component_monitors("shop", model, JOINING, page=page)] == names
