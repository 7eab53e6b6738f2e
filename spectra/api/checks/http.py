"""http(s) checks: the request (method, headers from Secrets, body, redirects) and its expectations.

The block of the same name in a Monitor's spec; the checker is `spectra.probe.checks.http`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import jsonpath
from jsonpath.filter import BaseExpression, FilterQuery
from jsonpath.segments import JSONPathRecursiveDescentSegment
from jsonpath.selectors import Filter, KeysFilter
from pydantic import Field, field_validator, model_validator

from spectra.api.addresses import TargetUrl
from spectra.api.base import ApiModel, FieldError, ValueSource
from spectra.api.durations import Duration

# Header names whose values are credentials: these must come from a Secret.
_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|password|passwd|api[-_]?key|signature", re.I)
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"


class HttpHeader(ApiModel):
    """A request header; credentials come from a Secret through `valueFrom`."""

    name: str = Field(description="Header name.", pattern=_HEADER_NAME, max_length=256)
    value: str | None = Field(default=None, description="Literal value, for headers that are not secret.")
    value_from: ValueSource | None = Field(default=None, description="Value from a Secret key.")

    @model_validator(mode="after")
    def _one_source(self) -> HttpHeader:
        if (self.value is None) == (self.value_from is None):
            raise FieldError("value", "give exactly one of value or valueFrom")
        if self.value is not None and _SECRET_HEADER.search(self.name):
            raise FieldError(
                "value",
                f"header {self.name} carries a credential: use valueFrom.secretKeyRef, not an inline value",
            )
        return self


# What a JSONPath may ask for, so that its cost grows with the body, not with powers of it. Far above
# what monitoring a health endpoint takes; the evaluation budget stops whatever still costs too much.
MAX_JSON_PATH_DESCENTS = 1  # `..`: each one more multiplies the work by the size of the body
MAX_JSON_PATH_FILTER_DEPTH = 3  # filters within filters: `[?@.a[?@.b]]` is 2
MAX_JSON_PATH_SEGMENTS = 32  # `.name`, `[0]`, `[*]`, ... counted over the whole expression, filters included
MAX_JSON_PATH_BRANCHES = 64  # union sizes multiplied: `['a','b'][0,1]` is 4 (a repeated union repeats its work)


@dataclass
class _JsonPathShape:
    descents: int = 0
    filter_depth: int = 0
    segments: int = 0
    branches: int = 1


def json_path_problem(path: str) -> str | None:
    """Why `path` is refused (it does not compile with python-jsonpath, the evaluator's library, or it is
    over a limit above), or None."""
    try:
        compiled = jsonpath.compile(path)
    except RecursionError:  # python-jsonpath's JSONPathRecursionError, too
        return "not a valid JSONPath: nested too deeply"
    except jsonpath.JSONPathError as exc:
        message = str(exc).strip().splitlines()
        return f"not a valid JSONPath: {message[0] if message else type(exc).__name__}"
    shape = _JsonPathShape()
    _measure_path(compiled, 0, shape)
    if shape.descents > MAX_JSON_PATH_DESCENTS:
        return f"at most {MAX_JSON_PATH_DESCENTS} recursive descent (`..`) per JSONPath, found {shape.descents}"
    if shape.filter_depth > MAX_JSON_PATH_FILTER_DEPTH:
        return f"filters nested at most {MAX_JSON_PATH_FILTER_DEPTH} deep, found {shape.filter_depth}"
    if shape.segments > MAX_JSON_PATH_SEGMENTS:
        return f"at most {MAX_JSON_PATH_SEGMENTS} segments per JSONPath, found {shape.segments}"
    if shape.branches > MAX_JSON_PATH_BRANCHES:
        return f"unions multiply to at most {MAX_JSON_PATH_BRANCHES} branches, found {shape.branches}"
    return None


def _measure_path(
    path: jsonpath.JSONPath | jsonpath.CompoundJSONPath, filter_depth: int, shape: _JsonPathShape
) -> None:
    if isinstance(path, jsonpath.CompoundJSONPath):  # `a | b`, `a & b`: every part is evaluated
        _measure_path(path.path, filter_depth, shape)
        for _, part in path.paths:
            _measure_path(part, filter_depth, shape)
        return
    for segment in path.segments:
        shape.segments += 1
        shape.descents += isinstance(segment, JSONPathRecursiveDescentSegment)
        shape.branches *= max(1, len(segment.selectors))
        for selector in segment.selectors:
            if isinstance(selector, Filter | KeysFilter):
                shape.filter_depth = max(shape.filter_depth, filter_depth + 1)
                _measure_expression(selector.expression, filter_depth + 1, shape)


def _measure_expression(expression: BaseExpression, filter_depth: int, shape: _JsonPathShape) -> None:
    """The paths inside a filter (`@.a`, `$.b`, function arguments) count like the outer one."""
    if isinstance(expression, FilterQuery):
        _measure_path(expression.path, filter_depth, shape)
        return
    for child in expression.children():
        _measure_expression(child, filter_depth, shape)


class JsonPathExpectation(ApiModel):
    path: str = Field(
        description="JSONPath into the response body, e.g. `$.status` (python-jsonpath syntax, checked at "
        f"validation). At most {MAX_JSON_PATH_DESCENTS} recursive descent (`..`), filters nested at most "
        f"{MAX_JSON_PATH_FILTER_DEPTH} deep, {MAX_JSON_PATH_SEGMENTS} segments, and unions multiplying to at "
        f"most {MAX_JSON_PATH_BRANCHES} branches. Evaluated with bodyRegex within the probe's evaluation "
        "budget (1s per check).",
        pattern=r"^\$",
        max_length=512,
    )
    equals: str | int | float | bool | None = Field(description="The value found there must equal this.")

    @field_validator("path")
    @classmethod
    def _compiles_within_limits(cls, value: str) -> str:
        problem = json_path_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class HttpExpect(ApiModel):
    status: list[int] | None = Field(
        default=None,
        description="Accepted status codes. Default: any 2xx.",
        min_length=1,
        max_length=64,
    )
    body_contains: str | None = Field(default=None, description="The body must contain this text.", max_length=4096)
    body_regex: str | None = Field(
        default=None,
        description="The body must match this regular expression (searched with the `regex` library). "
        "Evaluated with jsonPath within the probe's evaluation budget (1s per check).",
        max_length=4096,
    )
    json_path: list[JsonPathExpectation] = Field(
        default_factory=list, description="Values the JSON body must hold.", max_length=32
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Response headers that must contain these values (names case-insensitive).",
    )
    max_response_time: Duration | None = Field(default=None, description="Slower answers count as degraded.")
    certificate_min_days: int | None = Field(
        default=None,
        ge=0,
        le=3650,
        description="On https, fewer days of certificate validity left counts as degraded "
        "(expiry is reported either way).",
    )

    @field_validator("status")
    @classmethod
    def _codes(cls, value: list[int] | None) -> list[int] | None:
        for code in value or []:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status code (100-599)")
        return value

    @field_validator("body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class HttpCheck(ApiModel):
    url: TargetUrl = Field(description="http:// or https:// URL to request; no credentials inside.", max_length=2048)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = Field(
        default="GET", description="HTTP method."
    )
    headers: list[HttpHeader] = Field(default_factory=list, description="Request headers.", max_length=64)
    body: str | None = Field(default=None, description="Request body.", max_length=65536)
    follow_redirects: bool = Field(default=True, description="Follow redirects (each hop passes the egress guard).")
    max_redirects: int = Field(default=5, ge=0, le=20, description="Most redirects followed.")
    expect: HttpExpect = Field(default_factory=HttpExpect, description="What makes the check pass.")

    @property
    def target(self) -> str:
        """What is checked, for tables and `.status` (never secrets: URLs cannot carry credentials)."""
        return self.url
