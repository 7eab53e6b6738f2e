"""schemathesis (property-based, from the OpenAPI document at /api/v1/openapi.json) against the app
`spectra run` serves, in process over ASGI: every operation, with an API token of every scope of acme's
admin, on a store holding two organizations' monitors, incidents, status pages and schedules
(tests/factories/api_world.py). No answer may be a 5xx, break the documented schema or have an
undocumented status. Examples are few per operation and derandomized (the same run every time, in CI)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

import pytest
import schemathesis
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlalchemy.orm import Session, sessionmaker

from spectra.console import openapi
from tests.factories.api_world import ApiWorld, api_world

EXAMPLES: Final = 25  # per operation: 56 operations, about a minute a database on 2 cores
CHECKS: Final = [not_a_server_error, response_schema_conformance, status_code_conformance]


def _real_path(case: Any, world: ApiWorld) -> Any:
    """`case` on acme's own objects (random names reach only 404s)."""
    a = world.a
    path = case.operation.path
    if path.startswith("/api/v1/oncall/"):
        namespace, name = a.schedule
    elif path.startswith("/api/v1/status-pages/"):
        namespace, name = a.page
    else:
        namespace, name = a.monitor
    incident = a.page_incident_id if path.startswith("/api/v1/status-pages/") else a.incident_id
    known = {
        "namespace": namespace,
        "name": name,
        "incident_id": incident,
        "maintenance_id": a.maintenance_id,
        "override_id": a.override_id,
        "token_id": a.token_id,
        "email": a.user,  # not the caller: disabling themselves would end the run's token
        "slug": "main",
    }
    if case.path_parameters:
        case.path_parameters = {key: known.get(key, value) for key, value in case.path_parameters.items()}
    return case


def test_schemathesis_finds_no_5xx_and_no_answer_off_the_schema(
    sessions: sessionmaker[Session], portal: BlockingPortal
) -> None:
    world = api_world(sessions, portal)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", world.app)
    headers = {"Authorization": f"Bearer {world.a.token}"}
    operations = [found.ok() for found in schema.get_all_operations() if isinstance(found, Ok)]
    listed = {f"{op.method} {op.path}" for op in openapi.OPERATIONS}
    # Every one loaded but the document's own, which schemathesis leaves out (test_openapi.py checks it).
    assert {operation.label for operation in operations} == listed - {"GET /api/v1/openapi.json"}
    failures: list[str] = []
    statuses: dict[str, Counter[int]] = {}
    for operation in operations:
        made = operation.as_strategy()
        real = made.map(lambda case: _real_path(case, world))

        @given(case=st.one_of(made, real))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            answer = case.call_and_validate(headers=headers, checks=CHECKS)
            statuses.setdefault(case.operation.label, Counter())[answer.status_code] += 1

        try:
            run()
        except (Exception, FailureGroup) as failed:  # every operation is tried; the report names each one that failed
            failures.append(f"{operation.label}: {failed}")
    assert failures == [], "\n\n".join(failures)
    # The real objects' paths reach success, not only refusals: most operations answered 2xx at least once.
    succeeded = sorted(label for label, seen in statuses.items() if any(200 <= status < 300 for status in seen))
    assert len(succeeded) >= 20, sorted(statuses.items())


def test_the_checks_bite(sessions: sessionmaker[Session], portal: BlockingPortal) -> None:
    """A control: with a document that says `email` is a number, the same checks refuse `GET /api/v1/auth/me`."""
    world = api_world(sessions, portal)
    document = openapi.document()
    document["components"]["schemas"]["Who"]["properties"]["email"] = {"type": "integer"}
    schema = schemathesis.openapi.from_dict(document)
    schema.app = world.app
    operation = schema["/api/v1/auth/me"]["GET"]
    case = operation.Case()
    with pytest.raises(FailureGroup) as failed:
        case.call_and_validate(headers={"Authorization": f"Bearer {world.a.token}"}, checks=CHECKS)
    assert [str(found).splitlines()[0] for found in failed.value.exceptions] == ["Response violates schema"]
