"""Request bodies and urlencoded forms: every value kept, blank ones too; bodies above the cap refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spectra.runtime.forms import MAX_FORM_BYTES, read_body, read_form


def test_every_value_is_kept_in_order() -> None:
    assert read_form(b"to=a&to=b&to=a&x=1") == {"to": ["a", "b", "a"], "x": ["1"]}


def test_blank_values_are_kept() -> None:
    assert read_form(b"digits=&note=") == {"digits": [""], "note": [""]}
    assert read_form(b"") == {}


def test_values_are_decoded() -> None:
    assert read_form(b"msg=caf%C3%A9+ok%21&amp%26=%3D") == {"msg": ["café ok!"], "amp&": ["="]}
    assert read_form(b"bad=%FF") == {"bad": ["\ufffd"]}  # not UTF-8: replaced, not an error


async def echo(request: Request) -> Response:
    body = await read_body(request)
    if body is None:
        return JSONResponse({"error": "too large"}, status_code=413)
    return JSONResponse({"bytes": len(body), "form": read_form(body)})


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Route("/form", echo, methods=["POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://spectra.test") as client:
        yield client


async def test_a_body_up_to_the_cap_is_read(http: httpx.AsyncClient) -> None:
    body = b"a=" + b"x" * (MAX_FORM_BYTES - 2)
    response = await http.post("/form", content=body)
    assert response.status_code == 200
    assert response.json()["bytes"] == MAX_FORM_BYTES


async def test_a_body_above_the_cap_is_none(http: httpx.AsyncClient) -> None:
    response = await http.post("/form", content=b"a=" + b"x" * (MAX_FORM_BYTES - 1))
    assert response.status_code == 413


async def test_a_streamed_body_is_counted_across_chunks(http: httpx.AsyncClient) -> None:
    async def chunks(count: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            yield b"x" * 1024

    small = await http.post("/form", content=chunks(4))
    large = await http.post("/form", content=chunks(MAX_FORM_BYTES // 1024 + 1))
    assert (small.status_code, small.json()["bytes"]) == (200, 4096)
    assert large.status_code == 413


async def test_a_posted_form_round_trips(http: httpx.AsyncClient) -> None:
    response = await http.post("/form", data={"Digits": "1", "blank": ""})
    assert response.json()["form"] == {"Digits": ["1"], "blank": [""]}
