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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from spectra.store.results import HISTOGRAM_COLUMNS, LATENCY_BOUNDS_MS

P50: Final = 0.5
P95: Final = 0.95
BOUNDS: Final[tuple[float, ...]] = tuple(float(bound) for bound in LATENCY_BOUNDS_MS)


@dataclass(slots=True)  # not frozen: a monitor page builds thousands, and frozen ones cost twice as much
class Histogram:
    """Cumulative counts per upper bound (`bounds`, ascending, in ms) and `total` (+Inf); never changed."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    total: int

    def __post_init__(self) -> None:
        if self.bounds is BOUNDS and len(self.cumulative) == len(BOUNDS):
            return  # the rollups' bounds: checked once, below, when the module loads
        if len(self.bounds) != len(self.cumulative):
            raise ValueError(f"{len(self.bounds)} bounds but {len(self.cumulative)} counts")
        if any(b <= a for a, b in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError("bounds must ascend")

    @classmethod
    def of(cls, values: Sequence[Any]) -> Histogram:
        """The histogram of a rollup row's counters: the values of `HISTOGRAM_COLUMNS` in their order."""
        if len(values) != len(HISTOGRAM_COLUMNS):
            raise ValueError(f"{len(values)} counters, expected {len(HISTOGRAM_COLUMNS)}")
        counts = tuple(map(int, values))  # MariaDB's SUM() hands back Decimals
        return cls(BOUNDS, counts[:-1], counts[-1])

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> Histogram:
        """The histogram of a rollup row as a mapping with the store's column names."""
        return cls.of([row[name] for name in HISTOGRAM_COLUMNS])

    def __add__(self, other: Histogram) -> Histogram:
        return summed((self, other))


def summed(histograms: Iterable[Histogram]) -> Histogram:
    """The histogram of every latency the `histograms` counted (they must share their bounds)."""
    bounds: tuple[float, ...] | None = None
    counts: list[int] = []
    total = 0
    for one in histograms:
        if bounds is None:
            bounds, counts = one.bounds, list(one.cumulative)
        elif one.bounds != bounds:
            raise ValueError("histograms of different bounds cannot be added")
        else:
            counts = [a + b for a, b in zip(counts, one.cumulative, strict=True)]
        total += one.total
    return EMPTY if bounds is None else Histogram(bounds, tuple(counts), total)


def empty() -> Histogram:
    return EMPTY


def quantiles(qs: Sequence[float], histogram: Histogram, *, max_ms: float | None = None) -> tuple[float | None, ...]:
    """`quantile` of each of `qs`."""
    return tuple(quantile(q, histogram, max_ms=max_ms) for q in qs)


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
    rank = q * total
    estimate: float | None = None
    below, lower = 0, 0.0
    for bound, counted in zip(histogram.bounds, histogram.cumulative, strict=True):
        # Counters are monotonic as the SQL fills them; make sure of it anyway (as Prometheus does).
        count = below if counted < below else total if counted > total else counted
        if count >= rank and count > below:
            estimate = lower + (bound - lower) * (rank - below) / (count - below)
            break
        below, lower = count, bound
    if estimate is None:  # the +Inf bucket: its lower bound, the last finite one
        estimate = histogram.bounds[-1] if histogram.bounds else 0.0
    if max_ms is not None:
        estimate = min(estimate, max_ms)
    return estimate


Histogram(tuple(b + 0.0 for b in BOUNDS), (0,) * len(BOUNDS), 0)  # checks the rollups' bounds once
EMPTY: Final = Histogram(BOUNDS, (0,) * len(BOUNDS), 0)
