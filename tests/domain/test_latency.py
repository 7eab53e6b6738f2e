"""Percentiles estimated from the rollups' latency histograms, as Prometheus' histogram_quantile does,
never above the bucket's maximum."""

from __future__ import annotations

import pytest

from spectra.domain.latency import P50, P95, Histogram, empty, quantile
from spectra.store.results import HISTOGRAM_COLUMNS, LATENCY_BOUNDS_MS


def hist(**per_bucket: int) -> Histogram:
    """A histogram from per-bucket counts: `le_50=3` is three latencies in (25, 50]; `inf=2` two above 10 s."""
    counts = [per_bucket.get(f"le_{bound}", 0) for bound in LATENCY_BOUNDS_MS]
    unknown = set(per_bucket) - {f"le_{bound}" for bound in LATENCY_BOUNDS_MS} - {"inf"}
    assert not unknown, unknown
    cumulative, running = [], 0
    for count in counts:
        running += count
        cumulative.append(running)
    return Histogram.of([*cumulative, running + per_bucket.get("inf", 0)])


CASES = [
    # (name, histogram, q, max_ms, expected)
    ("empty", hist(), P50, None, None),
    ("empty with a maximum", hist(), P95, 120.0, None),
    ("all in one bucket, middle", hist(le_100=10), P50, None, 75.0),
    ("all in one bucket, p95", hist(le_100=10), P95, None, 97.5),
    ("first bucket starts at 0", hist(le_5=4), P50, None, 2.5),
    ("first bucket, clamped to the maximum", hist(le_5=4), P95, 3.0, 3.0),
    ("rank on a bucket's edge", hist(le_50=5, le_100=5), P50, None, 50.0),
    ("two buckets, p95 in the upper", hist(le_50=10, le_100=10), P95, None, 95.0),
    ("empty buckets between", hist(le_10=10, le_1000=10), P95, None, 500 + 500 * 0.9),
    ("+Inf: the last finite bound", hist(le_100=1, inf=19), P50, None, 10000.0),
    ("+Inf, clamped to a lower maximum", hist(inf=4), P95, 9000.0, 9000.0),
    ("+Inf, maximum above the bound", hist(inf=4), P95, 30000.0, 10000.0),
    ("q = 0: the first latency's bucket lower bound", hist(le_250=3), 0.0, None, 100.0),
    ("q = 1: the top of the last filled bucket", hist(le_25=1, le_250=3), 1.0, None, 250.0),
    ("q = 1, clamped", hist(le_25=1, le_250=3), 1.0, 180.0, 180.0),
    ("single latency", hist(le_1000=1), P50, 700.0, 700.0),
]


@pytest.mark.parametrize(("histogram", "q", "max_ms", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_quantile(histogram: Histogram, q: float, max_ms: float | None, expected: float | None) -> None:
    got = quantile(q, histogram, max_ms=max_ms)
    assert got == (None if expected is None else pytest.approx(expected))


def test_the_estimate_never_exceeds_the_maximum() -> None:
    histogram = hist(le_10=50, le_50=30, le_500=15, le_10000=4, inf=1)
    for q in (0.0, 0.25, P50, 0.9, P95, 0.99, 1.0):
        value = quantile(q, histogram, max_ms=12_000.0)
        assert value is not None
        assert value <= 10_000.0
        assert (quantile(q, histogram, max_ms=42.0) or 0.0) <= 42.0


def test_counters_that_step_back_are_read_as_monotonic() -> None:
    """As Prometheus does: a counter below the previous one is taken as equal to it."""
    bounds = tuple(float(b) for b in LATENCY_BOUNDS_MS)
    broken = Histogram(bounds, (0, 0, 0, 0, 10, 8, 10, 10, 10, 10, 10), 10)
    assert quantile(P50, broken) == pytest.approx(75.0)


def test_of_reads_a_row_and_histograms_add() -> None:
    row = dict.fromkeys(HISTOGRAM_COLUMNS, 0) | {"latency_le_100_ms": 2, "latency_le_inf": 3}
    one = Histogram.of_row(row)
    assert one.total == 3
    assert one.cumulative[LATENCY_BOUNDS_MS.index(100)] == 2
    assert (one + one).total == 6
    assert (one + empty()) == one


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: quantile(1.5, empty()), "quantile 1.5 is not between 0 and 1"),
        (lambda: quantile(-0.1, empty()), "quantile -0.1 is not between 0 and 1"),
        (lambda: Histogram.of([0, 1]), "2 counters, expected 12"),
        (lambda: Histogram((1.0, 2.0), (1,), 1), "2 bounds but 1 counts"),
        (lambda: Histogram((2.0, 1.0), (1, 1), 1), "bounds must ascend"),
    ],
)
def test_refusals(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match=message.replace("+", r"\+").replace(".", r"\.")):
        call()
