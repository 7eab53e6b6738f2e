"""Percentiles of response time from the rollups' latency histograms.

Each rollup bucket (hour or day) keeps a Prometheus-style histogram of its latencies
(`spectra.store.results.LATENCY_BOUNDS_MS`): cumulative counters of the latencies at or below 5, 10,
25, 50, 100, 250, 500, 1000, 2500, 5000 and 10000 ms, and +Inf, the number counted. A percentile is
estimated as Prometheus' `histogram_quantile` does: find the bucket the rank falls in and interpolate
linearly between its lower and upper bound (the first bucket starts at 0 ms). Two differences, both
to never report a number no check measured above the bucket's maximum:

- a rank in the +Inf bucket is that bucket's lower bound (10000 ms), as Prometheus answers;
- every estimate is clamped to the bucket's maximum latency (`latency_max_ms`) when it is known.

An empty histogram has no percentile (None): no latency was recorded, or the bucket was rolled up
before the histograms existed (migration 0011 gave those rows zeros).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from spectra.store.results import HISTOGRAM_COLUMNS, LATENCY_BOUNDS_MS

P50: Final = 0.5
P95: Final = 0.95


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts per upper bound (`bounds`, ascending, in ms) and `total` (+Inf)."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    total: int

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.cumulative):
            raise ValueError(f"{len(self.bounds)} bounds but {len(self.cumulative)} counts")
        if any(b <= a for a, b in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError("bounds must ascend")

    @classmethod
    def of(cls, row: Mapping[str, Any] | Sequence[Any]) -> Histogram:
        """The histogram of a rollup row: a mapping with the store's column names, or the values of
        `HISTOGRAM_COLUMNS` in their order."""
        values = [row[name] for name in HISTOGRAM_COLUMNS] if isinstance(row, Mapping) else list(row)
        if len(values) != len(HISTOGRAM_COLUMNS):
            raise ValueError(f"{len(values)} counters, expected {len(HISTOGRAM_COLUMNS)}")
        counts = [int(v or 0) for v in values]
        return cls(tuple(float(b) for b in LATENCY_BOUNDS_MS), tuple(counts[:-1]), counts[-1])

    def __add__(self, other: Histogram) -> Histogram:
        if self.bounds != other.bounds:
            raise ValueError("histograms of different bounds cannot be added")
        summed = tuple(a + b for a, b in zip(self.cumulative, other.cumulative, strict=True))
        return Histogram(self.bounds, summed, self.total + other.total)


def empty() -> Histogram:
    return Histogram.of([0] * len(HISTOGRAM_COLUMNS))


def quantile(q: float, histogram: Histogram, *, max_ms: float | None = None) -> float | None:
    """The estimated `q`-quantile (0..1) in ms, or None when the histogram is empty.

    Linear interpolation inside the bucket the rank falls in (Prometheus' histogram_quantile); a rank
    beyond the last finite bound answers that bound; the answer never exceeds `max_ms` when given.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is not between 0 and 1")
    total = histogram.total
    if total <= 0:
        return None
    # Counters are monotonic as the SQL fills them; make sure of it anyway (as Prometheus does).
    cumulative: list[int] = []
    for count in histogram.cumulative:
        cumulative.append(min(max(count, cumulative[-1] if cumulative else 0), total))
    rank = q * total
    estimate: float | None = None
    below, lower = 0, 0.0
    for bound, count in zip(histogram.bounds, cumulative, strict=True):
        if count >= rank and count > below:
            estimate = lower + (bound - lower) * (rank - below) / (count - below)
            break
        below, lower = count, bound
    if estimate is None:  # the +Inf bucket: its lower bound, the last finite one
        estimate = histogram.bounds[-1] if histogram.bounds else 0.0
    if max_ms is not None:
        estimate = min(estimate, max_ms)
    return estimate
