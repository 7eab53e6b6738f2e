"""The probe worker's Prometheus metrics (spectra.probe.metrics)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from spectra.probe.metrics import ProbeMetrics


def test_checks_are_counted_by_type_and_status_and_timed_by_type() -> None:
    metrics = ProbeMetrics(CollectorRegistry())
    for _ in range(3):
        metrics.observe_check("http", "up", 0.02)
    metrics.observe_check("http", "down", 0.5)
    metrics.observe_check("tcp", "up", 0.001)
    metrics.observe_check("http", "stalled", None)  # no verdict, no duration
    sample = metrics.registry.get_sample_value
    assert sample("spectra_checks_total", {"type": "http", "status": "up"}) == 3
    assert sample("spectra_checks_total", {"type": "http", "status": "down"}) == 1
    assert sample("spectra_checks_total", {"type": "http", "status": "stalled"}) == 1
    assert sample("spectra_checks_total", {"type": "tcp", "status": "up"}) == 1
    assert sample("spectra_check_duration_seconds_count", {"type": "http"}) == 4
    assert sample("spectra_check_duration_seconds_sum", {"type": "http"}) == pytest.approx(0.56)
    assert sample("spectra_check_duration_seconds_count", {"type": "tcp"}) == 1


def test_each_worker_counts_into_its_own_registry() -> None:
    first, second = ProbeMetrics(CollectorRegistry()), ProbeMetrics(CollectorRegistry())
    first.observe_check("http", "up", 0.01)
    assert first.registry.get_sample_value("spectra_checks_total", {"type": "http", "status": "up"}) == 1
    assert second.registry.get_sample_value("spectra_checks_total", {"type": "http", "status": "up"}) is None
