"""seconds_setting and count_setting: numbers from the environment, refused by name when they are not."""

from __future__ import annotations

import pytest

from spectra.store.environment import count_setting, seconds_setting

NAME = "SPECTRA_TEST_SECONDS"


@pytest.mark.parametrize(("raw", "expected"), [(None, 15.0), ("", 15.0), ("  ", 15.0), ("30", 30.0), ("2.5", 2.5)])
def test_a_number_in_range_or_the_default(monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: float) -> None:
    if raw is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, raw)
    assert seconds_setting(NAME, 15.0, minimum=1, maximum=3600) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [("abc", "is not a number of seconds"), ("0.5", "between 1 and 3600"), ("1e9", "between 1 and 3600"), ("nan", "")],
)
def test_anything_else_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ValueError, match=NAME) as refused:
        seconds_setting(NAME, 15.0, minimum=1, maximum=3600)
    assert message in str(refused.value)


@pytest.mark.parametrize(("raw", "expected"), [(None, 1000), ("", 1000), (" 50 ", 50), ("1", 1), ("100000", 100_000)])
def test_a_count_in_range_or_the_default(monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: int) -> None:
    if raw is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, raw)
    assert count_setting(NAME, 1000, minimum=1, maximum=100_000) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [("many", "is not a whole number"), ("2.5", "is not a whole number"), ("0", "between 1 and 100000")],
)
def test_anything_else_is_not_a_count(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ValueError, match=NAME) as refused:
        count_setting(NAME, 1000, minimum=1, maximum=100_000)
    assert message in str(refused.value)
