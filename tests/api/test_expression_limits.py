"""JSONPath and regex expectations are checked at validation: they compile with the library the probe
uses, and a JSONPath whose cost would grow with powers of the body is refused, naming the field."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from spectra.api import InvalidObject, parse_object
from spectra.api.checks.http import (
    MAX_JSON_PATH_BRANCHES,
    MAX_JSON_PATH_DESCENTS,
    MAX_JSON_PATH_FILTER_DEPTH,
    MAX_JSON_PATH_SEGMENTS,
)


def monitor(expect: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "spectra.dev/v1alpha1",
        "kind": "Monitor",
        "metadata": {"name": "api"},
        "spec": {"type": "http", "http": {"url": "https://status.example.com/health", "expect": expect}},
    }


def json_paths(*paths: str) -> dict[str, Any]:
    return {"jsonPath": [{"path": path, "equals": "ok"} for path in paths]}


# (case, expectations, field named, words of the message)
REFUSED = [
    ("nested-descents", json_paths("$..*..*..*..x"), "spec.http.expect.jsonPath[0].path", "found 4"),
    ("two-descents", json_paths("$..a..b"), "spec.http.expect.jsonPath[0].path", "at most 1 recursive descent"),
    ("descent-in-a-filter", json_paths("$..a[?@..b]"), "spec.http.expect.jsonPath[0].path", "found 2"),
    ("descent-in-a-function", json_paths("$..a[?count(@..b) > 1]"), "spec.http.expect.jsonPath[0].path", "found 2"),
    ("descents-over-a-union", json_paths("$..a | $..b"), "spec.http.expect.jsonPath[0].path", "found 2"),
    ("second-item", json_paths("$.ok", "$..a..b"), "spec.http.expect.jsonPath[1].path", "recursive descent"),
    (
        "filters-nested-four-deep",
        json_paths("$[?@.a[?@.b[?@.c[?@.d]]]]"),
        "spec.http.expect.jsonPath[0].path",
        "filters nested at most 3 deep, found 4",
    ),
    ("too-many-segments", json_paths("$" + ".a" * 33), "spec.http.expect.jsonPath[0].path", "at most 32 segments"),
    (
        "repeated-unions",
        json_paths("$[0,0,0,0,0][0,0,0,0,0][0,0,0]"),
        "spec.http.expect.jsonPath[0].path",
        "at most 64 branches, found 75",
    ),
    ("does-not-compile", json_paths("$["), "spec.http.expect.jsonPath[0].path", "not a valid JSONPath"),
    ("unknown-function", json_paths("$[?nope(@)]"), "spec.http.expect.jsonPath[0].path", "not a valid JSONPath"),
    (
        "filters-nested-127-deep",
        json_paths("$" + "[?@" * 127 + "]" * 127),
        "spec.http.expect.jsonPath[0].path",
        "found 127",
    ),
    ("not-from-the-root", json_paths("status"), "spec.http.expect.jsonPath[0].path", "does not match the pattern"),
    ("invalid-regex", {"bodyRegex": "(unclosed"}, "spec.http.expect.bodyRegex", "not a valid regular expression"),
]


@pytest.mark.parametrize(("expect", "field", "words"), [pytest.param(*case[1:], id=case[0]) for case in REFUSED])
def test_refused_expressions_name_the_field(expect: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidObject) as caught:
        parse_object(monitor(expect))
    problems = {problem.field: problem.message for problem in caught.value.problems}
    assert field in problems, problems
    assert words in problems[field]


def test_a_path_nested_beyond_the_parser_is_refused_not_a_crash() -> None:
    # The parser recurses; at Python's default limit (other tests' libraries raise it) 500 levels overflow.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        with pytest.raises(InvalidObject) as caught:
            parse_object(monitor(json_paths("$[?" + "!" * 500 + "@.a]")))
    finally:
        sys.setrecursionlimit(limit)
    problems = {problem.field: problem.message for problem in caught.value.problems}
    assert problems == {"spec.http.expect.jsonPath[0].path": "not a valid JSONPath: nested too deeply"}


ACCEPTED = [
    "$.status",
    "$.checks.db.status",
    "$.items[0].name",
    "$.items[*].name",
    "$..status",
    "$..book[?@.price < 10].title",
    "$.items[?@.state == 'up' && @.region == 'eu'].name",
    "$[?@.a[?@.b[?@.c]]]",  # three filters deep
    "$.items[?match(@.name, 'web-[0-9]+')].ready",
    "$['a','b'][0,1]",
    "$" + ".a" * 32,
    "$.a | $.b",
]


@pytest.mark.parametrize("path", ACCEPTED)
def test_paths_real_users_write_pass(path: str) -> None:
    parse_object(monitor({**json_paths(path), "bodyRegex": r"status: (ok|fine)"}))


def test_the_limits_are_those_the_field_description_states() -> None:
    assert (MAX_JSON_PATH_DESCENTS, MAX_JSON_PATH_FILTER_DEPTH, MAX_JSON_PATH_SEGMENTS, MAX_JSON_PATH_BRANCHES) == (
        1,
        3,
        32,
        64,
    )
