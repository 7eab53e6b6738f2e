"""Server-side printing, as kube-apiserver does it for custom resources: what `kubectl get` shows.

`kubectl get` asks for a `meta.k8s.io/v1` Table (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`)
and prints the cells it gets: for custom resources the API server makes them from the CRD's
`additionalPrinterColumns` (apiextensions-apiserver's tableconvertor), one JSONPath per column. This
module does the same, so that tests see what a user of a real cluster sees:

- the first column is NAME; every column's first JSONPath result is its cell; no result: an empty cell;
- `string` cells print the value as Go's `fmt.Fprint` would (a list reads `[a b]`); `integer`, `number`
  and `boolean` cells keep JSON values of their type and are empty otherwise;
- `date` cells are ages (apimachinery's `duration.HumanDuration` of now minus the time: `5m`, `3h20m`),
  `<unknown>` for an empty string, `<invalid>` for what is not RFC 3339, and `<invalid>` for a time more than
  a second in the future: a `date` column cannot show a future time;
- a CRD version without columns gets AGE (`.metadata.creationTimestamp`).

The JSONPath subset is what CRD columns use (fields, `[n]`, `[*]`, `[?(@.path=="literal")]`); anything else
raises `UnsupportedJsonPath`, so a new column the emulator cannot print fails its test instead of
showing an empty cell.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from itertools import pairwise
from typing import Any

Obj = dict[str, Any]

NAME_COLUMN: Obj = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
DEFAULT_COLUMNS: list[Obj] = [
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "Creation time."}
]
TABLE_VERSIONS = ("v1", "v1beta1")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")


class UnsupportedJsonPath(ValueError):
    """A printer column JSONPath outside the subset this emulator evaluates."""


class _NoValue(Exception):
    """The JSONPath failed on this object (the API server leaves the cell empty)."""


# --- content negotiation ---------------------------------------------------------------------------


def table_version(headers: Mapping[str, str]) -> str | None:
    """`meta.k8s.io/v1` (or v1beta1) when the Accept header asks for a Table before plain JSON, else None."""
    accept = next((value for key, value in headers.items() if key.lower() == "accept"), "")
    for media in accept.split(","):
        kind, *raw_params = (part.strip() for part in media.split(";"))
        params = dict(param.partition("=")[::2] for param in raw_params)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in TABLE_VERSIONS:
            return f"meta.k8s.io/{params['v']}"
        if "as" not in params and kind in {"application/json", "application/*", "*/*"}:
            return None
    return None


def printer_columns(crd: Mapping[str, Any], version: str | None) -> list[Obj] | None:
    """The served version's additionalPrinterColumns (AGE when it declares none); None if not served."""
    for served in (crd.get("spec") or {}).get("versions") or []:
        if served.get("name") == version:
            return list(served.get("additionalPrinterColumns") or DEFAULT_COLUMNS)
    return None


# --- the Table -------------------------------------------------------------------------------------


def table(
    columns: Sequence[Mapping[str, Any]],
    objects: Sequence[Mapping[str, Any]],
    *,
    api_version: str,
    resource_version: str,
    include_object: str = "Metadata",
    now: datetime.datetime | None = None,
) -> Obj:
    """The Table kube-apiserver answers for these objects (its `includeObject` default is Metadata)."""
    moment = now or datetime.datetime.now(datetime.UTC)
    paths = [_parse(str(column["jsonPath"])) for column in columns]
    definitions = [NAME_COLUMN] + [
        {
            "name": column["name"],
            "type": column["type"],
            "format": column.get("format", ""),
            "description": column.get("description")
            or f"Custom resource definition column (in JSONPath format): {column['jsonPath']}",
            "priority": column.get("priority", 0),
        }
        for column in columns
    ]
    rows = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        cells = [meta.get("name")]
        cells += [
            _cell(str(column["type"]), _first(path, obj), moment) for column, path in zip(columns, paths, strict=True)
        ]
        row: Obj = {"cells": cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }


_MISSING: Any = object()


def _cell(column_type: str, value: Any, now: datetime.datetime) -> Any:
    """One cell as tableconvertor makes it (`cellForJSONValue`, or `PrintResults` for strings)."""
    if value is _MISSING:
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if column_type == "string":
        return go_print(value)
    if column_type == "integer":
        return int(value) if is_number else None  # Go's int64(float64) truncates, as int() does
    if column_type == "number":
        return float(value) if is_number else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        return age(value, now) if isinstance(value, str) else None
    return None


def age(timestamp: str, now: datetime.datetime) -> str:
    """A `date` cell: metav1.Time's query-parameter parsing, then HumanDuration of now minus it."""
    if not timestamp:
        return "<unknown>"
    if not _RFC3339.fullmatch(timestamp):
        return "<invalid>"
    return human_duration(now - datetime.datetime.fromisoformat(timestamp))


def human_duration(elapsed: datetime.timedelta) -> str:
    """apimachinery's `duration.HumanDuration` (Go truncates toward zero; so does int())."""
    seconds = int((elapsed // datetime.timedelta(microseconds=1)) / 1_000_000)
    # The API server allows a second of clock difference; later than that is not an age.
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m" if seconds % 60 == 0 else f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d" if hours % 24 == 0 else f"{days}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{days // 365}y" if days % 365 == 0 else f"{days // 365}y{days % 365}d"
    return f"{days // 365}y"


def go_print(value: Any) -> str:
    """What Go's `fmt.Fprint` writes for a decoded JSON value (client-go jsonpath's PrintResults)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list):
        return "[" + " ".join(go_print(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_print(value[key])}" for key in sorted(value)) + "]"
    return str(value)


def _go_float(value: float) -> str:
    """`%v` of a float64: the shortest digits, with an exponent when it is below -4 or at least 6."""
    shortest = Decimal(repr(abs(value))).normalize()  # repr: the shortest digits that read back the same
    digits, exponent = shortest.as_tuple().digits, shortest.as_tuple().exponent
    assert isinstance(exponent, int), "JSON has no infinities or NaN"
    point = len(digits) + exponent - 1
    prefix = "-" if value < 0 else ""
    if value != 0 and (point < -4 or point >= 6):
        mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if point < 0 else '+'}{abs(point):02d}"
    return prefix + format(shortest, "f")


# --- the JSONPath subset of printer columns --------------------------------------------------------

_FIELD = re.compile(r"\.([A-Za-z0-9_-]+)")
_BRACKET_FIELD = re.compile(r"\[(['\"])([^'\"]+)\1\]")
_INDEX = re.compile(r"\[(-?\d+|\*)\]")
_FILTER = re.compile(r"\[\?\(@((?:\.[A-Za-z0-9_-]+)+)\s*(==|!=)\s*(\"[^\"]*\"|'[^']*'|-?\d+(?:\.\d+)?)\)\]")

Step = tuple[str, Any]


def _parse(path: str) -> list[Step]:
    """`.status.conditions[?(@.type=="Ready")].status` -> steps; raises UnsupportedJsonPath."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text.removeprefix("$")
    steps: list[Step] = []
    position = 0
    while position < len(text):
        if match := _FIELD.match(text, position):
            steps.append(("field", match[1]))
        elif match := _BRACKET_FIELD.match(text, position):
            steps.append(("field", match[2]))
        elif match := _INDEX.match(text, position):
            steps.append(("all", None) if match[1] == "*" else ("index", int(match[1])))
        elif match := _FILTER.match(text, position):
            literal = match[3][1:-1] if match[3][0] in "\"'" else json.loads(match[3])
            steps.append(("filter", (_parse(match[1]), match[2], literal)))
        else:
            raise UnsupportedJsonPath(f"the emulator does not evaluate {path!r} (at {text[position:]!r})")
        position = match.end()
    return steps


def _first(steps: list[Step], obj: Any) -> Any:
    """The first result, as the tableconvertor takes `results[0][0]`; _MISSING when there is none."""
    try:
        found = _walk(steps, [obj])
    except _NoValue:
        return _MISSING
    return found[0] if found else _MISSING


def _walk(steps: list[Step], values: list[Any]) -> list[Any]:
    for kind, argument in steps:
        found: list[Any] = []
        for value in values:
            if kind == "field":
                # A real API server prunes nulls from custom resources, so a null is as good as absent.
                if isinstance(value, dict) and value.get(argument) is not None:
                    found.append(value[argument])
                continue
            if not isinstance(value, list):
                raise _NoValue  # "is not array or slice": the whole column fails for this object
            if kind == "all":
                found.extend(value)
            elif kind == "index":
                index = argument + len(value) if argument < 0 else argument
                if not 0 <= index < len(value):
                    raise _NoValue  # "array index out of bounds"
                found.append(value[index])
            else:
                path, operator, literal = argument
                for item in value:
                    left = _walk(path, [item])
                    if len(left) > 1:
                        raise _NoValue  # "can only compare one element at a time"
                    if not left:
                        continue
                    if isinstance(left[0], str) != isinstance(literal, str):
                        raise _NoValue  # Go: "incompatible types for comparison"
                    if (left[0] == literal) == (operator == "=="):
                        found.append(item)
        values = found
    return values


# --- reading what kubectl printed ------------------------------------------------------------------

_HEADER = re.compile(r"\S+(?: \S+)*")  # kubectl pads columns with 3+ spaces; a header may hold single spaces


def read_table(printed: str) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of cells) of `kubectl get` output; a cell starts where its header starts."""
    lines = [line for line in printed.splitlines() if line.strip()]
    if not lines:
        return [], []
    headers = list(_HEADER.finditer(lines[0]))
    starts = [match.start() for match in headers] + [None]
    rows = [[line[start:end].strip() for start, end in pairwise(starts)] for line in lines[1:]]
    return [match[0] for match in headers], rows
