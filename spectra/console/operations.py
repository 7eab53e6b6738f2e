"""What each JSON endpoint of the console's areas is, for the OpenAPI document at `/api/v1/openapi.json`.

Every area's `api.py` lists its endpoints as `Operation`s beside its routes: the method and path, a
summary, the pydantic models of its query, body and answer (`models.py` of the area), its success status
and the refusals it may answer. The document is generated from these lists and the models, never written
by hand, and a test checks every route under `/api/v1` has its operation.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel


@dataclass(frozen=True)
class Operation:
    method: str  # GET, POST, PUT, PATCH, DELETE
    path: str  # as Starlette routes it: /api/v1/incidents/{incident_id}
    summary: str
    tag: str  # the area: monitors, incidents, oncall, status-pages, organization, platform
    response: type[BaseModel] | None = None  # the answer's body (None: no body)
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    refusals: tuple[int, ...] = (401, 403, 404)  # problem+json answers it may give besides 400/413/422
