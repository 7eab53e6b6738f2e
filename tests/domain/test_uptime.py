"""Uptime weighting and its text, shared by status pages and the operator's `.status`."""

from __future__ import annotations

import pytest

from spectra.domain.uptime import Counts, uptime_text


@pytest.mark.parametrize(
    ("counts", "share"),
    [(Counts(0, 0, 0), 0.0), (Counts(100, 0, 10), 0.1), (Counts(100, 10, 0), 0.05), (Counts(4, 0, 4), 1.0)],
)
def test_outage_share_weighs_degraded_half(counts: Counts, share: float) -> None:
    assert counts.outage_share == pytest.approx(share)


def test_counts_add_and_subtract() -> None:
    assert Counts(10, 1, 2) + Counts(5, 0, 1) == Counts(15, 1, 3)
    assert Counts(15, 1, 3) - Counts(5, 0, 1) == Counts(10, 1, 2)


@pytest.mark.parametrize(
    ("counts", "text"),
    [
        (Counts(0, 0, 0), None),
        (None, None),
        (Counts(20, 0, 0), "100.00%"),
        (Counts(20, 1, 1), "92.50%"),
        (Counts(2000, 0, 1), "99.95%"),
        (Counts(10_000_000, 0, 1), "99.99%"),  # anything failed: never 100.00%
        (Counts(4, 0, 4), "0.00%"),
    ],
)
def test_uptime_text(counts: Counts | None, text: str | None) -> None:
    assert uptime_text(counts) == text
