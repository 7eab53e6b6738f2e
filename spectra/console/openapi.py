"""The OpenAPI 3.1 document of `/api/v1`, generated from every area's OPERATIONS and their pydantic models.

`document()` builds it (the models' JSON Schemas hoisted into `components.schemas`, problem details per
RFC 9457 as the shared `Problem`, the security schemes, `limit`/`cursor` as shared parameters, a tag per
area, a relative server); `openapi_routes()` serves it at `GET /api/v1/openapi.json`, public (it says
nothing secret) and cacheable with an ETag. Nothing here is written by hand per endpoint: a new endpoint
is an Operation in its area's api.py, and a test fails until it is.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from functools import cache
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spectra.web.auth_routes import PROBLEM_JSON

from . import web_api
from .incidents.api import OPERATIONS as INCIDENTS
from .monitors.api import OPERATIONS as MONITORS
from .oncall.api import OPERATIONS as ONCALL
from .operations import Operation
from .organization.api import OPERATIONS as ORGANIZATION
from .platform.api import OPERATIONS as PLATFORM
from .statuspages.api import OPERATIONS as STATUSPAGES

PATH: Final = web_api.OPENAPI
REF: Final = "#/components/schemas/{model}"
VERSION: Final = "1"

OPERATIONS: Final[tuple[Operation, ...]] = (
    *MONITORS,
    *INCIDENTS,
    *ONCALL,
    *STATUSPAGES,
    *ORGANIZATION,
    *PLATFORM,
    *web_api.OPERATIONS,
)

TAGS: Final = (
    ("monitors", "Monitors, their state, checks and latency (read-only: monitors are configured in Git)"),
    ("incidents", "Incidents: list, timeline, acknowledge, resolve, notes, escalate, reassign"),
    ("oncall", "On-call schedules, who is on call, the caller's shifts and overrides"),
    ("status-pages", "Status pages: incidents posted by hand, updates, post-mortems, ad-hoc maintenance"),
    ("organization", "Organization admin: members, API tokens, settings, the audit log"),
    ("platform", "Platform admin: tenants, impersonation, global maintenance, the system"),
    ("auth", "Signing in: sessions for browsers and API clients, two-factor authentication"),
    ("heartbeats", "Heartbeat monitors' pushes"),
    ("public", "What anyone may read: public status pages and this document"),
)

DESCRIPTION: Final = """The SpectraMonitor JSON API: every power of the console.

Callers send `Authorization: Bearer <token>`: an API token (`spt_...`, made in the console or with
`POST /api/v1/tokens`; its scopes decide what it may do) or a session's access token (from
`POST /api/v1/auth/login`). Browsers use the session cookie instead and send the CSRF token in the
`X-CSRF-Token` header on every change.

Errors are problem details (RFC 9457, `application/problem+json`) whose `detail` is the sentence to show.
Another organization's object is 404, as one that does not exist. Lists take `limit` (1..500) and an
opaque `cursor`, and answer `{"items": [...], "next": <the next page's relative URL, or null>}`.
"""

# Path parameters: what each name holds (a Kubernetes name, a number, ...).
_DNS_LABEL: Final = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_ID: Final = {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999}
PATH_PARAMETERS: Final[dict[str, dict[str, Any]]] = {
    "namespace": _DNS_LABEL,
    "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
    "slug": _DNS_LABEL,
    "email": {"type": "string", "pattern": "^[^/@\\s]+@[^/@\\s]+$", "maxLength": 320},
    "token": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
    "incident_id": _ID,
    "maintenance_id": _ID,
    "override_id": _ID,
    "token_id": _ID,
    "impersonation_id": _ID,
}

PROBLEM: Final = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details; `detail` is the sentence a person reads.",
    "properties": {
        "type": {"type": "string", "default": "about:blank"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail"],
}

LIMIT: Final = {
    "name": "limit",
    "in": "query",
    "required": False,
    "description": "How many items a page holds",
    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
}
CURSOR: Final = {
    "name": "cursor",
    "in": "query",
    "required": False,
    "description": "Opaque: the `next` of the previous page holds it",
    "schema": {"type": "string"},
}

REASONS: Final = {
    400: "The request is not valid (the sentence names the field)",
    401: "Not signed in, or the credentials are no longer valid",
    403: "Not allowed (role, scope, or a missing CSRF header)",
    404: "Not found, or not yours to see",
    409: "Not in a state that allows it (e.g. already acknowledged)",
    413: "The request body is too large",
    421: "Answered on loopback only until an API token exists",
    429: "Too many attempts: wait for Retry-After",
}

# Answers that are not JSON or not problem details, by (method, path).
_PLAIN: Final = {"content": {"text/plain": {"schema": {"type": "string"}}}}
OTHER_ANSWERS: Final[dict[tuple[str, str], dict[int, dict[str, Any]]]] = {
    ("GET", web_api.HEARTBEAT): {
        200: {"description": "The push is recorded", **_PLAIN},
        404: {"description": "No monitor has this token", **_PLAIN},
        429: {"description": "Too many unknown tokens from this address", **_PLAIN},
    },
    ("GET", web_api.PUBLIC_PAGE): {
        304: {"description": "Not modified (If-None-Match / If-Modified-Since)"},
        404: {
            "description": "No public page has this slug",
            "content": {"application/json": {"schema": {"$ref": REF.format(model="PublicNotFound")}}},
        },
    },
    ("GET", PATH): {304: {"description": "Not modified (If-None-Match)"}},
    ("GET", "/api/v1/monitors"): {304: {"description": "Not modified (If-None-Match)"}},
    ("GET", "/api/v1/monitors/{namespace}/{name}"): {304: {"description": "Not modified (If-None-Match)"}},
}
OTHER_ANSWERS[("POST", web_api.HEARTBEAT)] = OTHER_ANSWERS[("GET", web_api.HEARTBEAT)]
# Other media types the success may take (GET /api/v1/audit?format=csv|jsonl streams the selection).
ALSO: Final[dict[tuple[str, str], dict[str, Any]]] = {
    ("GET", "/api/v1/audit"): {
        "text/csv": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
}


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    seen: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for op in operations:
        if op.response is not None:
            seen[(op.response, "serialization")] = None
        for model in (op.body, op.query):
            if model is not None:
                seen[(model, "validation")] = None
    seen[(web_api.PublicNotFound, "serialization")] = None
    return list(seen)


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without `null` (a parameter left out is how a query says none)."""
    options = schema.get("anyOf")
    if options is None:
        return schema
    kept = [option for option in options if option.get("type") != "null"]
    rest = {key: value for key, value in schema.items() if key != "anyOf" and (key, value) != ("default", None)}
    return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    found: list[dict[str, Any]] = []
    for name, given in schema.get("properties", {}).items():
        field = _without_null(given)
        described = {key: value for key, value in field.items() if key not in ("title", "description")}
        if name == "limit" and described == LIMIT["schema"]:
            found.append({"$ref": "#/components/parameters/limit"})
            continue
        if name == "cursor" and described == CURSOR["schema"]:
            found.append({"$ref": "#/components/parameters/cursor"})
            continue
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": described}
        if "description" in field:
            parameter["description"] = field["description"]
        if described.get("type") == "array":
            parameter["explode"] = True
        found.append(parameter)
    return found


def _security(op: Operation) -> list[dict[str, list[str]]]:
    if (op.method, op.path) in web_api.PUBLIC:
        return []
    if op.method == "GET":
        return [{"bearer": []}, {"cookie": []}]
    return [{"bearer": []}, {"cookie": [], "csrf": []}]


def _problem(status: int) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{status}"}


def _operation(op: Operation, schemas: dict[str, dict[str, Any]], refs: dict[Any, Any]) -> dict[str, Any]:
    key = (op.method, op.path)
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.query is not None:
        parameters += _query_parameters(schemas[_name(refs[(op.query, "validation")])])
    success: dict[str, Any] = {"description": op.summary}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": refs[(op.response, "serialization")]}}
        success["content"].update(ALSO.get(key, {}))
    responses: dict[str, Any] = {str(op.status): success}
    codes = {400, *op.refusals} if (op.query or op.body or "{" in op.path) else set(op.refusals)
    if op.body is not None:
        codes.add(413)
    for code in sorted(codes):
        responses[str(code)] = _problem(code)
    for code, answer in OTHER_ANSWERS.get(key, {}).items():
        responses[str(code)] = answer
    found: dict[str, Any] = {
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": _operation_id(op),
        "security": _security(op),
    }
    if parameters:
        found["parameters"] = parameters
    if op.body is not None:
        found["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    found["responses"] = dict(sorted(responses.items()))
    return found


def _name(ref: dict[str, str]) -> str:
    return ref["$ref"].rsplit("/", 1)[1]


def _operation_id(op: Operation) -> str:
    words = re.sub(r"[{}]", "", op.path.removeprefix("/api/v1/")).replace("-", "_").replace(".", "_")
    return f"{op.method.lower()}_" + "_".join(part for part in words.split("/") if part)


def document(operations: Iterable[Operation] = OPERATIONS) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations` (default: every endpoint under /api/v1)."""
    operations = list(operations)
    refs, generated = models_json_schema(_models(operations), ref_template=REF)
    schemas: dict[str, dict[str, Any]] = dict(generated.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas, refs)
    for query in {_name(refs[(op.query, "validation")]) for op in operations if op.query is not None}:
        if json.dumps([paths, {k: v for k, v in schemas.items() if k != query}]).count(f'/{query}"') == 0:
            del schemas[query]  # only its parameters are in the document
    schemas["Problem"] = PROBLEM
    return _short_names(
        {
            "openapi": "3.1.0",
            "info": {"title": "SpectraMonitor API", "version": VERSION, "description": DESCRIPTION},
            "servers": [{"url": "/"}],
            "tags": [{"name": name, "description": text} for name, text in TAGS],
            "paths": dict(sorted(paths.items())),
            "components": {
                "schemas": dict(sorted(schemas.items())),
                "parameters": {"limit": LIMIT, "cursor": CURSOR},
                "responses": {
                    str(code): {
                        "description": reason,
                        "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}},
                    }
                    for code, reason in sorted(REASONS.items())
                },
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API token (spt_...), or a session's access token (POST /api/v1/auth/login)",
                    },
                    "cookie": {
                        "type": "apiKey",
                        "in": "cookie",
                        "name": "spectra-access",
                        "description": "A browser's session (named __Host-spectra-access behind https)",
                    },
                    "csrf": {
                        "type": "apiKey",
                        "in": "header",
                        "name": "X-CSRF-Token",
                        "description": "With the cookie, on every change: the CSRF token of the session",
                    },
                },
            },
        }
    )


def _short_names(found: dict[str, Any]) -> dict[str, Any]:
    """pydantic names two models of one name by their modules (`spectra__console__incidents__models__X`):
    the document calls them by their area instead (`IncidentsX`)."""
    schemas = found["components"]["schemas"]
    text = json.dumps(found)
    for long in [name for name in schemas if "__" in name]:
        parts = long.split("__")
        area = parts[-3] if parts[-2] == "models" else parts[-2]
        short = "".join(word.capitalize() for word in area.split("_")) + parts[-1]
        assert short not in schemas, short
        text = text.replace(f'"{long}"', f'"{short}"').replace(f'/{long}"', f'/{short}"')
    renamed: dict[str, Any] = json.loads(text)
    renamed["components"]["schemas"] = dict(sorted(renamed["components"]["schemas"].items()))
    return renamed


@cache
def rendered() -> tuple[bytes, str]:
    """The document as JSON and its ETag (it changes only with the code)."""
    body = json.dumps(document(), ensure_ascii=False, separators=(",", ":")).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def openapi_routes() -> list[Route]:
    async def openapi(request: Request) -> Response:
        body, etag = rendered()
        headers = {"ETag": etag, "Cache-Control": "public, max-age=300"}
        asked = [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]
        if etag in asked or f"W/{etag}" in asked or "*" in asked:
            return Response(status_code=304, headers=headers)
        return Response(body, 200, headers=headers, media_type="application/json")

    return [Route(PATH, openapi, methods=["GET"])]
