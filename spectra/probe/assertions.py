"""Expectations on what a target answered, shared by the checkers (http, tcp, udp, browser).

Each function returns None when the expectation holds, otherwise one line for people saying what
was found instead. Values quoted in reasons are shortened so a reason stays one line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonpath
import regex

_QUOTE_LIMIT = 80
# Control characters are shown escaped so a reason stays one line; backslashes stay as typed (regexes).
_CONTROL = {code: f"\\x{code:02x}" for code in range(32)} | {9: "\\t", 10: "\\n", 13: "\\r", 127: "\\x7f"}


def quote(value: Any, limit: int = _QUOTE_LIMIT) -> str:
    """A value as it appears in a reason: strings quoted, others as JSON (true, null, 3)."""
    if isinstance(value, str):
        text = "'" + value.translate(_CONTROL) + "'"
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError):
            text = repr(value)
        text = text.translate(_CONTROL)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def body_contains(text: str, needle: str) -> str | None:
    if needle in text:
        return None
    return f"body does not contain {quote(needle)}"


def body_regex(text: str, pattern: str, timeout_s: float) -> str | None:
    """Search (not full match) with a time cap: a catastrophic pattern fails instead of hanging the worker."""
    try:
        found = regex.search(pattern, text, timeout=timeout_s)
    except TimeoutError:
        return f"regex timed out after {timeout_s:g}s"
    except regex.error as exc:
        return f"invalid regex {quote(pattern)}: {exc}"
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


def json_path_equals(document: Any, path: str, expected: Any) -> str | None:
    """The first value `path` selects in `document` must equal `expected` (a JSON scalar)."""
    try:
        match = jsonpath.match(path, document)
    except jsonpath.JSONPathError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"invalid JSONPath {path}: {detail}"
    if match is None:
        return f"{path} not found in the body"
    if _same(match.obj, expected):
        return None
    return f"{path} is {quote(match.obj)}, expected {quote(expected)}"


def header_contains(headers: Mapping[str, str], name: str, expected: str) -> str | None:
    """Header `name` (any case) must be present and contain `expected`; repeated headers count together."""
    wanted = name.lower()
    values = [value for key, value in headers.items() if key.lower() == wanted]
    if not values:
        return f"header {name} is missing"
    joined = ", ".join(values)
    if expected in joined:
        return None
    return f"header {name} is {quote(joined)}, expected it to contain {quote(expected)}"
