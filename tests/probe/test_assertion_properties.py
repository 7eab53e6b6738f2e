"""Properties of the expectation evaluators over hostile input (the fuzzing tier of issue 13): whatever
the document, body, header or expression, each returns None or one storable line, and never raises."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectra.probe import assertions
from spectra.probe.evaluator import BodyExpectations, JsonScalar, evaluate_body

FAST = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
SHORT_CAP_S = 0.05  # the regex library's own cap; random patterns can backtrack

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
documents = st.recursive(
    scalars, lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
)
expected_values: st.SearchStrategy[JsonScalar] = st.none() | st.booleans() | st.integers() | st.floats() | st.text()

# JSONPaths that mostly parse (names, indexes, wildcards, descents, slices, filters), and any text at all.
_segments = st.sampled_from(
    [
        ".a",
        ".status",
        "[0]",
        "[-1]",
        "[*]",
        ".*",
        "..a",
        "..*",
        "[1:3]",
        "[::2]",
        "['a','b']",
        "[0,1]",
        "[?@.a]",
        "[?@.a == 1]",
        "[?@ > 2]",
        "[?length(@) > 1]",
        "[?match(@, 'a.*')]",
        "[?@ =~ /a/]",
        "[?@.a[?@.b]]",
        "~",
        "[",
        "]",
        "?",
        "'",
        " ",
        "\n",
        "\u2028",
    ]
)
json_paths = st.lists(_segments, max_size=6).map(lambda parts: "$" + "".join(parts)) | st.text(max_size=40)
patterns = st.sampled_from([r"a+", r"(a|b)*c", r"^\d+$", r"(x+x+)+y", r"[", r"(?P<n>a)(?P=n)", r"\p{L}+"]) | st.text(
    max_size=20
)
bodies = st.text() | documents.map(lambda document: json.dumps(document, ensure_ascii=False))
headers = st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4)


def assert_reason(reason: Any) -> None:
    """None, or one line that a database and a chat message can hold."""
    if reason is None:
        return
    assert isinstance(reason, str)
    assert reason
    assert len(reason.splitlines()) == 1, repr(reason)
    reason.encode("utf-8")  # no lone surrogates


@FAST
@given(document=documents, path=json_paths, expected=expected_values)
def test_json_path_equals_answers_for_any_document_and_path(document: Any, path: str, expected: JsonScalar) -> None:
    assert_reason(assertions.json_path_equals(document, path, expected))


@FAST
@given(text=bodies)
def test_parse_json_answers_for_any_body(text: str) -> None:
    parsed = assertions.parse_json(text)
    if isinstance(parsed, str):
        assert_reason(parsed)
    else:
        assert isinstance(parsed, assertions.JsonBody)


@FAST
@given(text=bodies, pattern=patterns)
def test_body_regex_answers_for_any_body_and_pattern(text: str, pattern: str) -> None:
    assert_reason(assertions.body_regex(text, pattern, SHORT_CAP_S))


@FAST
@given(text=bodies, needle=st.text())
def test_body_contains_answers_for_any_body(text: str, needle: str) -> None:
    assert_reason(assertions.body_contains(text, needle))


@FAST
@given(found=headers, name=st.text(min_size=1, max_size=10), expected=st.text())
def test_header_contains_answers_for_any_headers(found: dict[str, str], name: str, expected: str) -> None:
    assert_reason(assertions.header_contains(found, name, expected))


@FAST
@given(value=documents)
def test_quote_is_one_short_line(value: Any) -> None:
    quoted = assertions.quote(value)
    assert_reason(quoted)
    assert len(quoted) <= 80


@FAST
@given(
    text=bodies,
    regex=st.none() | patterns,
    paths=st.lists(st.tuples(json_paths, expected_values), max_size=3),
)
def test_evaluate_body_answers_for_any_body_and_expectations(
    text: str, regex: str | None, paths: list[tuple[str, JsonScalar]]
) -> None:
    """What an evaluator process runs: every input gives a reason or None, so the process answers."""
    assert_reason(evaluate_body(text, BodyExpectations(regex, tuple(paths)), SHORT_CAP_S))


@FAST
@given(depth=st.integers(min_value=1, max_value=5000), path=st.sampled_from(["$..a", "$[0]", "$..*", "$"]))
def test_deep_documents_are_reasons_not_recursion_errors(depth: int, path: str) -> None:
    text = "[" * depth + "]" * depth
    parsed = assertions.parse_json(text)
    if isinstance(parsed, str):
        assert_reason(parsed)
    else:
        assert_reason(assertions.json_path_equals(parsed.document, path, 1))
