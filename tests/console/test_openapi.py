"""The OpenAPI 3.1 document of /api/v1 (spectra.console.openapi): every route under /api/v1 of the app
`spectra run` serves has exactly one operation and every operation a route; the document is valid OpenAPI
3.1; it is served public with an ETag; and it is kept as tests/golden/openapi.json so every change to the
API is reviewed (rewrite it with SPECTRA_UPDATE_GOLDEN=1 and review the diff)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from anyio.from_thread import BlockingPortal
from openapi_spec_validator import validate
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute, Mount, Route

from spectra.console import openapi
from tests.factories.api_world import spectra_run_app
from tests.support.paths import REPO
from tests.support.web import Client

GOLDEN = REPO / "tests" / "golden" / "openapi.json"
UPDATE = os.environ.get("SPECTRA_UPDATE_GOLDEN") == "1"


def _routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _routes(list(route.routes), prefix + route.path)
        elif isinstance(route, Route) and (prefix + route.path).startswith("/api/v1/"):
            for method in sorted(route.methods or ()):
                if method != "HEAD":  # Starlette's own twin of every GET
                    yield method, prefix + route.path


def test_every_route_under_api_v1_has_exactly_one_operation(sessions: sessionmaker[Session]) -> None:
    app = spectra_run_app(sessions)
    served = list(_routes(list(app.routes)))
    listed = [(op.method, op.path) for op in openapi.OPERATIONS]
    assert len(served) == len(set(served)), "a route is served twice"
    assert len(listed) == len(set(listed)), "an operation is listed twice"
    assert sorted(set(served) - set(listed)) == [], "routes without an Operation"
    assert sorted(set(listed) - set(served)) == [], "Operations without a route"


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi.document()
    validate(document)  # openapi-spec-validator: OpenAPI 3.1 and its JSON Schema dialect
    assert document["openapi"] == "3.1.0"
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert len(operations) == len(openapi.OPERATIONS)
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    text = json.dumps(document)
    for name in document["components"]["schemas"]:
        assert "__" not in name
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        kind, name = ref.removeprefix("#/components/").split("/")
        assert name in document["components"][kind], ref


def test_the_document_is_as_reviewed() -> None:
    text = json.dumps(openapi.document(), indent=2, ensure_ascii=False) + "\n"
    if UPDATE:
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.is_file(), f"{GOLDEN} is missing: run with SPECTRA_UPDATE_GOLDEN=1 and review it"
    assert text == GOLDEN.read_text(encoding="utf-8"), (
        "the OpenAPI document changed: if on purpose, SPECTRA_UPDATE_GOLDEN=1 and review tests/golden/openapi.json"
    )


def test_served_public_with_an_etag(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    client = Client(spectra_run_app(sessions), portal)
    found = client.get("/api/v1/openapi.json")
    assert found.status_code == 200
    assert found.headers["content-type"] == "application/json"
    assert found.json() == openapi.document()
    etag = found.headers["etag"]
    assert found.headers["cache-control"] == "public, max-age=300"
    again = client.get("/api/v1/openapi.json", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)


CAMEL = re.compile(r"[a-z][a-zA-Z0-9]*")


def _schemas_used(node: object, schemas: dict[str, Any], found: set[str]) -> set[str]:
    """The names of the component schemas `node` refers to, and of those they refer to."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in found:
                found.add(name)
                _schemas_used(schemas[name], schemas, found)
        for value in node.values():
            _schemas_used(value, schemas, found)
    elif isinstance(node, list):
        for value in node:
            _schemas_used(value, schemas, found)
    return found


def _field_names(schema: object) -> set[str]:
    if isinstance(schema, dict):
        names = set(schema.get("properties", {}))
        return names.union(*(_field_names(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_field_names(value) for value in schema))
    return set()


def test_every_field_of_the_api_is_camel_case_but_signing_in() -> None:
    """docs/api.md's convention, over the whole document: every body and answer field of every operation is
    camelCase, save `/api/v1/auth/*` (OAuth 2.0's names); every body refuses fields it does not know."""
    document = openapi.document()
    schemas = document["components"]["schemas"]
    names: set[str] = set()
    for path, operations in document["paths"].items():
        if path.startswith("/api/v1/auth/"):
            continue
        for operation in operations.values():
            used = _schemas_used(operation, schemas, set())
            names |= _field_names([operation.get("requestBody", {}), operation.get("responses", {})])
            names |= set().union(*(_field_names(schemas[name]) for name in used))
    assert {"openedAt", "monitorState", "componentImpacts", "timeZone", "onCall", "platformAdmin", "checkedAt",
            "showOnStatusPages", "latencyMs", "items", "next"} <= names  # fmt: skip
    assert {name for name in names if not CAMEL.fullmatch(name)} == set()
    bodies = [op.body for op in openapi.OPERATIONS if op.body is not None and not op.path.startswith("/api/v1/auth/")]
    assert bodies
    assert all(body.model_config.get("extra") == "forbid" for body in bodies), [
        body.__name__ for body in bodies if body.model_config.get("extra") != "forbid"
    ]
