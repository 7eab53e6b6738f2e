"""Turn pydantic validation errors into `field: message` lines people can act on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from spectra.api.base import FieldError


@dataclass(frozen=True)
class Problem:
    """One error in one object: the dotted field path (`spec.http.url`) and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def field_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


_MESSAGES = {
    "extra_forbidden": "unknown field (check the spelling; see the field reference)",
    "missing": "required field is missing",
}


def problems_from(error: ValidationError, prefix: Sequence[int | str] = ()) -> list[Problem]:
    """Flatten a ValidationError, keeping only the useful branch of unions (`str | None` etc.)."""
    found: list[Problem] = []
    type_errors: dict[str, list[str]] = {}
    for detail in error.errors(include_url=False):
        problem = _problem(detail, prefix)
        expected = _TYPE_NAMES.get(detail["type"])
        if expected is not None:
            # A union such as `str | int | bool` fails once per member: report one line for all.
            if problem.field not in type_errors:
                type_errors[problem.field] = []
                found.append(problem)
            type_errors[problem.field].append(expected)
        elif problem not in found:
            found.append(problem)
    return [
        Problem(p.field, f"wrong type: expected {' or '.join(type_errors[p.field])}")
        if len(type_errors.get(p.field, ())) > 1
        else p
        for p in found
    ]


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _problem(detail: ErrorDetails, prefix: Sequence[int | str]) -> Problem:
    # Drop pydantic's union-branch markers such as 'function-after[...]' or 'str' from the path.
    loc = [part for part in detail["loc"] if isinstance(part, int) or not _is_marker(part)]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    cause = ctx.get("error")
    if isinstance(cause, FieldError):
        return Problem(field_path([*prefix, *loc, *_split(cause.field)]), cause.message)
    message = detail["msg"]
    if detail["type"] in ("value_error", "assertion_error"):
        message = str(cause) if cause is not None else message.removeprefix("Value error, ")
    elif detail["type"] == "extra_forbidden":
        message = _MESSAGES["extra_forbidden"]
    elif detail["type"] == "missing":
        message = _MESSAGES["missing"]
    elif detail["type"] == "string_pattern_mismatch":
        message = f"{detail['input']!r} does not match the pattern {ctx.get('pattern')}"
    return Problem(field_path([*prefix, *loc]), message)


def _split(field: str) -> list[int | str]:
    parts: list[int | str] = []
    for piece in field.replace("]", "").split("."):
        name, *indexes = piece.split("[")
        if name:
            parts.append(name)
        parts.extend(int(index) for index in indexes)
    return parts


def _is_marker(part: str) -> bool:
    return "[" in part or part in {"str", "int", "float", "bool", "none", "list", "dict", "is-instance"}
