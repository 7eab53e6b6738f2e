"""One function per time format; naive datetimes are taken as UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from spectra.runtime.timefmt import iso_utc, rfc3339, utc, utc_text, utc_text_seconds

BERLIN = datetime.fromisoformat("2026-03-02T11:30:12.999+01:00")


def test_rfc3339_is_utc_whole_seconds() -> None:
    assert rfc3339(BERLIN) == "2026-03-02T10:30:12Z"
    assert rfc3339(None) is None


def test_iso_utc_keeps_microseconds_and_says_z() -> None:
    assert iso_utc(BERLIN) == "2026-03-02T10:30:12.999000Z"


def test_text_forms_for_people() -> None:
    assert utc_text(BERLIN) == "2026-03-02 10:30 UTC"
    assert utc_text_seconds(BERLIN) == "2026-03-02 10:30:12 UTC"
    assert utc_text_seconds(None) == ""


def test_a_naive_datetime_is_taken_as_utc() -> None:
    naive = datetime(2026, 3, 2, 10, 30)
    assert utc(naive) == datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    assert rfc3339(naive) == "2026-03-02T10:30:00Z"
