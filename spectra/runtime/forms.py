"""Request bodies and urlencoded forms, size-capped (starlette's form() needs python-multipart)."""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import Request

MAX_FORM_BYTES: Final = 64 * 1024


def read_form(body: bytes) -> dict[str, list[str]]:
    """An application/x-www-form-urlencoded body, every value kept."""
    form: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


async def read_body(request: Request) -> bytes | None:
    """The request body, or None when it is larger than MAX_FORM_BYTES."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
