"""Expectations whose cost the tenant controls (bodyRegex, JSON parsing and jsonPath) run in evaluator
processes under a time budget: a hostile expression or body makes the check DOWN with a reason, the
worker's loop runs on, and the next evaluation works. Plain checks start no evaluator at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from spectra.api.checks.http import HttpCheck, HttpExpect, JsonPathExpectation
from spectra.api.monitor import MonitorSpec, MonitorType
from spectra.probe.checks import run_check
from spectra.probe.context import EVALUATION_BUDGET_S, CheckContext, CheckRequest
from spectra.probe.evaluator import BodyExpectations, Evaluators, JsonScalar, evaluate_body
from spectra.probe.result import Status
from tests.support.processes import evaluator_pids
from tests.support.waiting import eventually

from .servers import ServeApp, check_context


def chain(depth: int, width: int) -> dict[str, Any]:
    """Objects nested `depth` deep, each with a list of `width` numbers: 9 KB of JSON at 100 x 20."""
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        node = {"n": node, "items": list(range(width))}
    return node


# Each `..` multiplies the work by the depth: four of them over these 9 KB take CPU-minutes.
NESTED = json.dumps(chain(100, 20))
NESTED_DESCENTS = "$..*..*..*..x"  # refused at validation; evaluated anyway here (an older manifest, a bug)
LONG_NAMES = json.dumps({"items": [{"name": "x" * 40, "tags": ["x" * 40]} for _ in range(50)]})
FILTER_REGEX = "$..[?@ =~ /(x+x+)+y/]"  # passes validation: one descent; the regex is what costs
BUDGET = r"exceeded its 1s budget$"

# case: (body, Content-Type, expectations as in a manifest, the reason as a regex)
HOSTILE: dict[str, tuple[bytes, str, dict[str, Any], str]] = {
    "nested-descents": (
        NESTED.encode(),
        "application/json",
        {"jsonPath": [(NESTED_DESCENTS, 1)]},
        r"^JSONPath \$\.\.\*\.\.\*\.\.\*\.\.x " + BUDGET,
    ),
    "filter-regex": (
        LONG_NAMES.encode(),
        "application/json",
        {"jsonPath": [(FILTER_REGEX, 1)]},
        r"^JSONPath \$\.\.\[\?@ =~ /\(x\+x\+\)\+y/\] " + BUDGET,
    ),
    "catastrophic-regex": (b"x" * 5000, "text/plain", {"bodyRegex": r"(x+x+)+y"}, r"^regex search " + BUDGET),
    "alternation-regex": (b"a" * 64 + b"!", "text/plain", {"bodyRegex": r"^(a|aa)+$"}, r"^regex search " + BUDGET),
    "regex-compile-explosion": (
        b"a",
        "text/plain",
        {"bodyRegex": r"(?:(?:a{200}){200}){200}"},
        r"^regex search exceeded its 1s budget$|needed more than 256 MiB$",
    ),
    "deeply-nested-json": (
        b"[" * 100_000 + b"]" * 100_000,
        "application/json",
        {"jsonPath": [("$[0]", 1)]},
        r"^body is nested too deeply to parse as JSON$",
    ),
    "too-deep-to-search": (
        b"[" * 900 + b"]" * 900,
        "application/json",
        {"jsonPath": [("$..x", 1)]},
        r"^\$\.\.x: the body is nested too deeply to search$",
    ),
    "huge-number": (
        b"1" * 100_000,
        "application/json",
        {"jsonPath": [("$", 1)]},
        r"^body holds a number longer than 4300 digits$",
    ),
    "many-long-numbers": (
        ("[" + ",".join(["9" * 4000] * 200) + "]").encode(),
        "application/json",
        {"jsonPath": [("$[0]", 1)]},
        r"^\$\[0\] is 9{77}\.\.\., expected 1$",
    ),
    "float-overflow": (
        b"1e999999",
        "application/json",
        {"jsonPath": [("$", 1)]},
        r"^\$ is Infinity, expected 1$",
    ),
    "invalid-utf-8": (
        b'{"status": "\xff\xfe ok"}',
        "application/json",
        {"jsonPath": [("$.status", "ok")]},
        "^\\$\\.status is '\ufffd\ufffd ok', expected 'ok'$",
    ),
    "lone-surrogate-from-charset": (
        b'{"status": "\\ud800"}',
        "application/json; charset=unicode_escape",
        {"jsonPath": [("$.status", "ok")]},
        r"^\$\.status is '\\ud800', expected 'ok'$",
    ),
    "line-breaks-in-a-value": (
        b'{"status": "down\\n\\u2028forged: line"}',
        "application/json",
        {"jsonPath": [("$.status", "ok")]},
        r"^\$\.status is 'down\\n\\u2028forged: line', expected 'ok'$",
    ),
}
HEALTHY = {"bodyRegex": "status", "jsonPath": [("$.status", "ok")]}


def unvalidated_http(url: str, expect: dict[str, Any]) -> CheckRequest:
    """An http monitor whose expectations skipped validation, so refused JSONPaths reach the evaluator too."""
    expectations = HttpExpect.model_construct(
        body_regex=expect.get("bodyRegex"),
        json_path=[
            JsonPathExpectation.model_construct(path=path, equals=equals) for path, equals in expect.get("jsonPath", [])
        ],
    )
    check = HttpCheck.model_construct(url=url, expect=expectations)
    spec = MonitorSpec.model_construct(type=MonitorType.HTTP, timeout=timedelta(seconds=30), http=check)
    return CheckRequest("default", "hostile", spec)


def expecting(regex: str | None = None, *json_paths: tuple[str, JsonScalar]) -> BodyExpectations:
    return BodyExpectations(regex, tuple(json_paths))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
async def base(serve_app: ServeApp) -> str:
    async def case(request: web.Request) -> web.Response:
        body, content_type, _, _ = HOSTILE[request.match_info["name"]]
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthy(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/case/{name}", case)
    app.router.add_get("/healthy", healthy)
    return await serve_app(app)


@pytest.fixture
async def evaluators() -> AsyncIterator[Evaluators]:
    pool = Evaluators(EVALUATION_BUDGET_S)
    try:
        yield pool
    finally:
        await pool.aclose()


# --- hostile input is contained, and the next check works ---------------------------------------------


@pytest.mark.parametrize("case", HOSTILE)
async def test_hostile_input_is_a_down_with_a_reason_and_the_next_check_works(
    base: str, ctx: CheckContext, case: str
) -> None:
    _, _, expect, reason = HOSTILE[case]
    result = await run_check(unvalidated_http(f"{base}/case/{case}", expect), ctx)
    assert result.status is Status.DOWN
    assert re.search(reason, result.reason), result.reason
    assert len(result.reason.splitlines()) == 1
    result.reason.encode()  # storable: no lone surrogates

    after = await run_check(unvalidated_http(f"{base}/healthy", HEALTHY), ctx)
    assert (after.status, after.reason) == (Status.UP, "HTTP 200")


@pytest.mark.parametrize("charset", ["zlib", "idna", "rot13", "no-such-codec"])
async def test_a_charset_that_cannot_decode_text_falls_back_to_utf_8(
    serve_app: ServeApp, ctx: CheckContext, charset: str
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=b'{"status": "ok"}', headers={"Content-Type": f"application/json; charset={charset}"})

    app = web.Application()
    app.router.add_get("/", answer)
    url = await serve_app(app)
    result = await run_check(unvalidated_http(url + "/", HEALTHY), ctx)
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")


# --- the loop, the processes -------------------------------------------------------------------------


async def test_the_loop_runs_on_while_an_evaluation_would_take_minutes() -> None:
    """With a long budget the hostile evaluation keeps one process busy: another check's evaluation is
    answered meanwhile (in seconds, while the hostile one would take minutes); cancelling the hostile
    one (the check's timeout) kills its process."""
    pool = Evaluators(budget_s=600)
    try:
        hostile = asyncio.create_task(pool.evaluate(NESTED, expecting(None, (NESTED_DESCENTS, 1))))
        await eventually(lambda: len(pool.pids) == 1, timeout=30)
        [busy] = pool.pids
        await eventually(lambda: cpu_seconds(busy) > 1.0, timeout=60)

        healthy = await asyncio.wait_for(pool.evaluate('{"status": "ok"}', expecting(None, ("$.status", "ok"))), 30)
        assert healthy is None
        assert not hostile.done()

        hostile.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hostile
        await eventually(lambda: busy not in evaluator_pids(os.getpid()), timeout=30)
        assert len(pool.pids) == 1
    finally:
        await pool.aclose()


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
async def test_an_evaluator_that_died_while_idle_is_replaced(evaluators: Evaluators, stop: signal.Signals) -> None:
    assert await evaluators.evaluate('{"a": 1}', expecting(None, ("$.a", 1))) is None
    [pid] = evaluators.pids
    os.kill(pid, stop)
    assert await evaluators.evaluate('{"a": 1}', expecting(None, ("$.a", 2))) == "$.a is 1, expected 2"
    assert len(evaluators.pids) == 1
    assert pid not in evaluators.pids


async def test_an_evaluator_killed_mid_evaluation_is_a_reason_and_is_replaced() -> None:
    pool = Evaluators(budget_s=600)
    try:
        hostile = asyncio.create_task(pool.evaluate(NESTED, expecting(None, (NESTED_DESCENTS, 1))))
        await eventually(lambda: len(pool.pids) == 1, timeout=30)
        [pid] = pool.pids
        await eventually(lambda: cpu_seconds(pid) > 1.0, timeout=60)  # well into the JSONPath
        os.kill(pid, signal.SIGKILL)
        reason = await asyncio.wait_for(hostile, 30)
        assert reason == f"JSONPath {NESTED_DESCENTS} ended the evaluator process (signal SIGKILL)"
        assert await pool.evaluate("status: ok", expecting("status: (ok|fine)")) is None
        assert pid not in pool.pids
    finally:
        await pool.aclose()


async def test_closing_the_context_stops_every_evaluator() -> None:
    async with check_context() as context:
        pool = context.evaluators()
        ok = expecting(None, ("$.a", 1))
        both = await asyncio.gather(pool.evaluate('{"a": 1}', ok), pool.evaluate('{"a": 1}', ok))
        assert list(both) == [None, None]
        assert len(evaluator_pids(os.getpid())) == 2
    assert evaluator_pids(os.getpid()) == set()


async def test_plain_checks_start_no_evaluator(base: str, ctx: CheckContext) -> None:
    for expect in ({}, {"bodyContains": "ok"}):
        result = await run_check(unvalidated_http(f"{base}/healthy", expect), ctx)
        assert result.status is Status.UP
    assert evaluator_pids(os.getpid()) == set()


@pytest.mark.parametrize("expect", [{"bodyRegex": "ok"}, {"jsonPath": [{"path": "$.a", "equals": 1}]}])
async def test_an_evaluator_that_cannot_start_is_no_verdict_on_the_target(
    base: str, ctx: CheckContext, monkeypatch: pytest.MonkeyPatch, expect: dict[str, Any]
) -> None:
    """Our failure, not the target's: STALLED (never stored, never counted), as when the probe is starved."""
    monkeypatch.setattr("spectra.probe.evaluator.sys.executable", "/nonexistent/python")
    result = await run_check(unvalidated_http(f"{base}/healthy", expect), ctx)
    assert result.status is Status.STALLED, result
    assert result.reason.startswith(
        "probe could not evaluate the expectations: the expression evaluator could not start"
    )


# --- tenants share the processes ------------------------------------------------------------------------


async def test_a_tenant_with_many_costly_evaluations_does_not_make_another_wait_behind_them_all() -> None:
    """Six evaluations of one tenant that each run out the 1 s budget, then one of another tenant: the
    other's comes third (the turn after the two running ones), not seventh."""
    pool = Evaluators(EVALUATION_BUDGET_S)
    done: list[str] = []

    async def evaluation(tenant: str, text: str, expectations: BodyExpectations) -> None:
        await pool.evaluate(text, expectations, tenant=tenant)
        done.append(tenant)

    try:
        hostile = [
            asyncio.create_task(evaluation("evil", NESTED, expecting(None, (NESTED_DESCENTS, 1)))) for _ in range(6)
        ]
        await eventually(lambda: pool.waiting == 4, timeout=30)
        await asyncio.wait_for(evaluation("shop", '{"status": "ok"}', expecting(None, ("$.status", "ok"))), 120)
        assert done == ["evil", "evil", "shop"]
        for task in hostile:
            task.cancel()
        await asyncio.gather(*hostile, return_exceptions=True)
    finally:
        await pool.aclose()


async def test_a_check_that_timed_out_waiting_for_a_busy_evaluator_is_no_verdict_on_its_target(base: str) -> None:
    """Both processes busy with another tenant's long evaluations: the check's own time runs out while it
    waits for one. The probe's capacity, not the target: STALLED (never stored, never paged), not DOWN."""
    async with check_context(evaluation_budget_s=600) as context:
        pool = context.evaluators()
        hostile = [
            asyncio.create_task(pool.evaluate(NESTED, expecting(None, (NESTED_DESCENTS, 1)), tenant="evil"))
            for _ in range(2)
        ]
        try:
            await eventually(lambda: len(pool.pids) == 2, timeout=60)
            request = unvalidated_http(f"{base}/healthy", HEALTHY)
            request = CheckRequest("shop", "api", request.spec.model_copy(update={"timeout": timedelta(seconds=2)}))
            result = await run_check(request, context)
        finally:
            for task in hostile:
                task.cancel()
            await asyncio.gather(*hostile, return_exceptions=True)
    assert result.status is Status.STALLED, result
    assert re.fullmatch(
        r"probe stalled: waited 2\.\ds for one of the 2 evaluator processes \(all busy\), no verdict on the target "
        r"\(it would have been down: timed out after 2s\)",
        result.reason,
    ), result.reason
    assert result.facts["stall_cause"] == "queued"


# --- ordinary expectations pass and fail as they did in-process --------------------------------------

ORDINARY = [
    ("status: ok", expecting(r"status: (ok|fine)"), None),
    ("status: down", expecting(r"status: (ok|fine)"), "body does not match 'status: (ok|fine)'"),
    ("abc", expecting(r"(unclosed"), "invalid regex '(unclosed': missing ) at position 9"),
    ('{"status": "ok", "n": 3}', expecting(None, ("$.status", "ok"), ("$.n", 3)), None),
    ('{"status": "ok", "n": 3}', expecting(None, ("$.n", 3.0)), None),
    ('{"status": "ok", "n": 3}', expecting(None, ("$.n", True)), "$.n is 3, expected true"),
    ('{"status": "ok"}', expecting(None, ("$.missing", "ok")), "$.missing not found in the body"),
    ("status: ok", expecting(None, ("$.status", "ok")), "body is not JSON: Expecting value: line 1 column 1 (char 0)"),
    ('{"status": "ok"}', expecting("ok", ("$.status", "down")), "$.status is 'ok', expected 'down'"),
    ("null", expecting(None, ("$", None)), None),
]


@pytest.mark.parametrize(("text", "expectations", "reason"), ORDINARY)
async def test_ordinary_expectations(
    evaluators: Evaluators, text: str, expectations: BodyExpectations, reason: str | None
) -> None:
    assert await evaluators.evaluate(text, expectations) == reason
    assert evaluate_body(text, expectations, EVALUATION_BUDGET_S) == reason  # the same function, in-process
