"""plain_data_problem: manifests are plain data (bounded depth and size, no cycles, no control characters)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spectra.api import InvalidObject, parse_object
from spectra.api.plain_data import MAX_DEPTH, MAX_VALUES, plain_data_problem


def _cycle() -> list[Any]:
    items: list[Any] = []
    items.append(items)
    return items


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _laughs() -> Any:
    row: list[Any] = ["lol"] * 10
    for _ in range(5):  # shared rows, as YAML aliases make them: 10^5 values from a few lines
        row = [row] * 10
    return row


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({"spec": {"locations": _cycle()}}, "spec.locations[0]", "contains itself"),
        ({"spec": {"x": _nested(MAX_DEPTH + 5)}}, "spec.x[0]", f"deeper than {MAX_DEPTH}"),
        ({"spec": {"x": _laughs()}}, "spec.x", f"more than {MAX_VALUES:,} values"),
        ({"spec": {"title": "Status\x07 page"}}, "spec.title", "U+0007"),
        ({"spec": {"title": "\x1b[31mred"}}, "spec.title", "U+001B"),
        ({"spec": {"title": "nul\x00"}}, "spec.title", "U+0000"),
        ({"spec": {"title": "c1\x85"}}, "spec.title", "U+0085"),
        ({"spec": {"groups": [{"name": "a\x7f"}]}}, "spec.groups[0].name", "U+007F"),
        ({"spec": {"bad\x01key": 1}}, "spec", "field names"),
        ({"spec": {"two\nlines": {"x": "\x04"}}}, "spec", "field names"),  # the name, before its value
        ({"spec": {"tab\tbed": 1}}, "spec", "field names"),
        ({"spec": {"para\u2029graph": 1}}, "spec", "field names"),  # a line break to str.splitlines
        ({"spec": {"zero\u200bwidth": 1}}, "spec", "field names"),  # invisible in a terminal
    ],
)
def test_what_is_not_plain_data_is_named(data: Any, path: str, words: str) -> None:
    found = plain_data_problem(data)
    assert found is not None
    assert found[0].startswith(path)
    assert words in found[1]


@pytest.mark.parametrize(
    "data",
    [
        {"spec": {"description": "line one\nline two\twith a tab\r\n"}},
        {"spec": {"title": "Ünïcödé — status ✓ 日本"}},
        {"spec": {"x": _nested(MAX_DEPTH - 3)}},
        {"a": [1, 2.5, True, None, "s"]},
    ],
)
def test_plain_data_passes(data: Any) -> None:
    assert plain_data_problem(data) is None


def test_parse_object_refuses_it_for_the_operator_too() -> None:
    body = {
        "apiVersion": "spectra.dev/v1alpha1",
        "kind": "StatusPage",
        "metadata": {"name": "p"},
        "spec": {"slug": "p", "title": "Status\x1b[2J", "groups": []},
    }
    with pytest.raises(InvalidObject) as refused:
        parse_object(body)
    [problem] = refused.value.problems
    assert (problem.field, "U+001B" in problem.message) == ("spec.title", True)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@given(json_values)
def test_any_json_value_gets_an_answer_without_an_exception(value: Any) -> None:
    found = plain_data_problem(value)
    assert found is None or (isinstance(found[0], str) and found[1])
