"""Expectations on what a target answered, shared by the checkers (http, tcp, udp, browser).

Each function returns None when the expectation holds, otherwise one line for people saying what
was found instead; none raises, whatever the target sent. Values quoted in reasons are shortened so a
reason stays one line. Those whose cost the tenant controls (regexes, JSON parsing and JSONPath) are
called by the evaluator processes (:mod:`spectra.probe.evaluator`), never on a worker's event loop.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonpath
import regex

_QUOTE_LIMIT = 80
# Control characters (C0, C1, DEL, the Unicode line and paragraph separators) are shown escaped so a
# reason stays one line; backslashes stay as typed (regexes).
_CONTROL = (
    {code: f"\\x{code:02x}" for code in [*range(32), *range(127, 160)]}
    | {code: f"\\u{code:04x}" for code in (0x2028, 0x2029)}
    | {9: "\\t", 10: "\\n", 13: "\\r"}
)


def quote(value: Any, limit: int = _QUOTE_LIMIT) -> str:
    """A value as it appears in a reason: strings quoted, others as JSON (true, null, 3)."""
    if isinstance(value, str):
        text = "'" + value + "'"
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError, RecursionError):  # RecursionError: a value nested too deeply to print
            text = f"<{type(value).__name__}>"
    text = _escaped(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _escaped(text: str) -> str:
    """One line that can be stored: control characters escaped, and lone surrogates (a target's charset
    can make one) too."""
    return text.translate(_CONTROL).encode("utf-8", "backslashreplace").decode("utf-8")


def body_contains(text: str, needle: str) -> str | None:
    if needle in text:
        return None
    return f"body does not contain {quote(needle)}"


def body_regex(text: str, pattern: str, timeout_s: float) -> str | None:
    """Search (not full match) with the regex library's own time cap, worded like the evaluator's budget."""
    try:
        found = regex.search(pattern, text, timeout=timeout_s)
    except TimeoutError:
        return f"regex search exceeded its {timeout_s:g}s budget"
    except regex.error as exc:
        return f"invalid regex {quote(pattern)}: {_first_line(exc)}"
    except RecursionError:
        return f"regex {quote(pattern)} is nested too deeply to compile"
    if found is None:
        return f"body does not match {quote(pattern)}"
    return None


def _same(found: Any, expected: Any) -> bool:
    # JSON true is not 1: YAML `equals: 1` must not be satisfied by a boolean, nor the reverse.
    if isinstance(found, bool) or isinstance(expected, bool):
        return type(found) is type(expected) and found == expected
    if isinstance(found, int | float) and isinstance(expected, int | float):
        return found == expected
    return type(found) is type(expected) and found == expected


@dataclass(frozen=True)
class JsonBody:
    """A body parsed as JSON (a wrapper, since the document itself may be null)."""

    document: Any


def parse_json(text: str) -> JsonBody | str:
    """The body as JSON, or why it is not."""
    try:
        return JsonBody(json.loads(text))
    except RecursionError:
        return "body is nested too deeply to parse as JSON"
    except json.JSONDecodeError as exc:
        return f"body is not JSON: {_first_line(exc)}"
    except ValueError:  # the one other: an integer longer than Python converts
        return f"body holds a number longer than {sys.get_int_max_str_digits()} digits"


def json_path_equals(document: Any, path: str, expected: Any) -> str | None:
    """The first value `path` selects in `document` must equal `expected` (a JSON scalar)."""
    shown = _escaped(path)
    try:
        match = jsonpath.match(path, document)
    except RecursionError:  # python-jsonpath's own limit (JSONPathRecursionError) or Python's
        return f"{shown}: the body is nested too deeply to search"
    except jsonpath.JSONPathError as exc:
        return f"invalid JSONPath {shown}: {_first_line(exc)}"
    if match is None:
        return f"{shown} not found in the body"
    if _same(match.obj, expected):
        return None
    return f"{shown} is {quote(match.obj)}, expected {quote(expected)}"


def header_contains(headers: Mapping[str, str], name: str, expected: str) -> str | None:
    """Header `name` (any case) must be present and contain `expected`; repeated headers count together."""
    wanted = name.lower()
    name = _escaped(name)  # expectation header names are free text
    values = [value for key, value in headers.items() if key.lower() == wanted]
    if not values:
        return f"header {name} is missing"
    joined = ", ".join(values)
    if expected in joined:
        return None
    return f"header {name} is {quote(joined)}, expected it to contain {quote(expected)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return _escaped(text.splitlines()[0]) if text else type(exc).__name__
