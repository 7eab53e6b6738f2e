"""JSON request bodies as pydantic models, the one way every JSON endpoint reads them.

A body is read with the forms' size limit (spectra.runtime.forms: 413 above it), parsed strictly (types
as sent, no coercion; the model's own `extra` setting refuses unknown fields), and a bad one is a 400
problem whose detail names each field (`field: message`, spectra.api.errors), or "The request body must be
a JSON object." for what is not one. An empty body is the empty object.
"""

from __future__ import annotations

from typing import Final, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from spectra.api.errors import problems_from
from spectra.runtime.forms import read_body
from spectra.web.auth_routes import BODY_NOT_JSON, Refusal

BODY_TOO_LARGE: Final = "The request body is too large."

M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request, model: type[M]) -> M:
    """The request's JSON object as `model`, or a Refusal (400 naming each bad field, 413 too large)."""
    raw = await read_body(request)
    if raw is None:
        raise Refusal(413, BODY_TOO_LARGE)
    try:
        return model.model_validate_json(raw if raw.strip() else b"{}", strict=True)
    except ValidationError as invalid:
        if any(error["type"] in ("json_invalid", "model_type") for error in invalid.errors()):
            raise Refusal(400, BODY_NOT_JSON) from None
        raise Refusal(400, "; ".join(str(found) for found in problems_from(invalid))) from None
