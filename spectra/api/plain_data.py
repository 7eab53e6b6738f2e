"""Manifests are plain data: bounded nesting, a bounded size, no cycles, no control characters.

A manifest is hostile input (a tenant writes it). YAML can express what JSON cannot: an alias that
contains itself (a cycle), aliases that multiply one list into millions of values ("billion laughs"),
and nesting thousands of levels deep; any of them makes a recursive validator, serializer or hasher
crash or hang. Strings may carry terminal escapes, NUL or other control characters that break feeds,
logs and mail headers; a field name may hold none of them, nor a line break or an invisible (format)
character, since names are quoted in every error's path, one line each. One iterative walk refuses all
of it, with the path of the first offender, before anything else looks at a document, in `spectra
validate`, `spectra run` and the operator alike.
"""

from __future__ import annotations

import re
from typing import Any, Final

MAX_DEPTH: Final = 32  # Kubernetes objects and our specs nest far less
MAX_VALUES: Final = 20_000  # values in one object once aliases are expanded
# C0 controls except tab, newline and carriage return; DEL; C1 controls. Markdown keeps its newlines.
CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
NAME_REFUSED: Final = "control characters, line breaks and invisible characters are not allowed in field names"


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (line breaks, controls, invisible format
    characters) written as its escape (``\\r``, ``\\x85``, ``\\u2028``): an error line quotes names and
    values from a hostile manifest, and must stay one line with nothing hidden."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def plain_data_problem(data: Any) -> tuple[str, str] | None:
    """(field path, why) for the first part of ``data`` that is not plain manifest data, or None."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    seen = 0
    while stack:
        value, path, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return path, f"more than {MAX_VALUES:,} values (YAML aliases that repeat a list?)"
        if depth > MAX_DEPTH:
            path = path if len(path) <= 80 else f"{path[:80]}..."
            return path, f"nested deeper than {MAX_DEPTH} levels (or a YAML alias that contains itself)"
        if isinstance(value, str):
            found = CONTROL.search(value)
            if found is not None:
                return path, f"control character U+{ord(found.group()):04X} is not allowed in text"
        elif isinstance(value, dict):
            for key, item in value.items():
                name = str(key)
                if not name.isprintable():  # a name shows in every error path: one line, nothing hidden
                    return path, NAME_REFUSED
                stack.append((item, f"{path}.{name}" if path else name, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))
    return None
