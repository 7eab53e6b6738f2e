"""The shared expectations: None when satisfied, else one readable line."""

from __future__ import annotations

import time
from typing import Any

import pytest

from spectra.probe import assertions

DOC = {"status": "ok", "version": 3, "ratio": 0.5, "healthy": True, "maintenance": None, "checks": {"db": "up"},
       "items": [{"name": "a"}, {"name": "b"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "needle", "reason"),
    [
        ("status: ok", "ok", None),
        ("status: ok", "OK", "body does not contain 'OK'"),
        ("", "ok", "body does not contain 'ok'"),
        ("abc", "line\nbreak", "body does not contain 'line\\nbreak'"),
    ],
)
def test_body_contains(text: str, needle: str, reason: str | None) -> None:
    assert assertions.body_contains(text, needle) == reason


def test_long_needles_are_shortened_to_keep_one_line() -> None:
    reason = assertions.body_contains("", "x" * 500)
    assert reason is not None
    assert len(reason) < 120
    assert reason.endswith("...")


@pytest.mark.parametrize(
    ("text", "pattern", "reason"),
    [
        ("version 1.2.3 ready", r"version \d+\.\d+", None),  # searched, not full-matched
        ("status: ok", r"^status: (ok|fine)$", None),
        ("status: down", r"status: (ok|fine)", "body does not match 'status: (ok|fine)'"),
        ("build 7", r"build \d{2}", "body does not match 'build \\d{2}'"),  # shown as typed
        ("abc", r"(unclosed", "invalid regex '(unclosed': missing ) at position 9"),
    ],
)
def test_body_regex(text: str, pattern: str, reason: str | None) -> None:
    assert assertions.body_regex(text, pattern, 1.0) == reason


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("x" * 5000, r"(x+x+)+y"),
        ("a" * 64 + "!", r"^(a|aa)+$"),
    ],
)
def test_catastrophic_regex_is_capped(text: str, pattern: str) -> None:
    started = time.perf_counter()
    reason = assertions.body_regex(text, pattern, 0.1)
    assert reason == "regex search exceeded its 0.1s budget"
    # Not a speed benchmark: without the cap these patterns run for hours, so finishing at all is the point.
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize(
    ("path", "expected", "reason"),
    [
        ("$.status", "ok", None),
        ("$.status", "down", "$.status is 'ok', expected 'down'"),
        ("$.version", 3, None),
        ("$.version", 3.0, None),
        ("$.version", "3", "$.version is 3, expected '3'"),
        ("$.ratio", 0.5, None),
        ("$.healthy", True, None),
        ("$.healthy", 1, "$.healthy is true, expected 1"),  # JSON true is not the number 1
        ("$.version", True, "$.version is 3, expected true"),
        ("$.maintenance", None, None),
        ("$.checks.db", "up", None),
        ("$.items[1].name", "b", None),
        ("$.items[*].name", "a", None),  # the first match counts
        ("$.checks", "up", '$.checks is {"db": "up"}, expected \'up\''),
        ("$.missing", "ok", "$.missing not found in the body"),
        ("$.items[7].name", "a", "$.items[7].name not found in the body"),
    ],
)
def test_json_path_equals(path: str, expected: Any, reason: str | None) -> None:
    assert assertions.json_path_equals(DOC, path, expected) == reason


def test_invalid_json_path_is_one_line() -> None:
    reason = assertions.json_path_equals(DOC, "$[", "x")
    assert reason is not None
    assert reason.startswith("invalid JSONPath $[: ")
    assert "\n" not in reason


@pytest.mark.parametrize(
    ("name", "expected", "reason"),
    [
        ("Content-Type", "json", None),
        ("content-type", "application/json", None),  # names are case-insensitive
        ("X-Cache", "HIT", None),
        (
            "Content-Type",
            "html",
            "header Content-Type is 'application/json; charset=utf-8', expected it to contain 'html'",
        ),
        ("X-Missing", "x", "header X-Missing is missing"),
    ],
)
def test_header_contains(name: str, expected: str, reason: str | None) -> None:
    headers = {"content-type": "application/json; charset=utf-8", "x-cache": "MISS, HIT"}
    assert assertions.header_contains(headers, name, expected) == reason
