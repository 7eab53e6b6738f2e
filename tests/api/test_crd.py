"""Generated CRDs: fresh, valid apiextensions.k8s.io/v1, structural, and agreeing with the examples."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml
from celpy.adapter import json_to_cel

from spectra.api import KINDS
from spectra.api.crd import all_crds, file_name, render
from spectra.manifests import discover, read_documents
from tests.support.paths import CRDS as CRDS_DIR
from tests.support.paths import EXAMPLES as EXAMPLES_DIR
from tests.support.paths import REPO

CRDS = {crd["spec"]["names"]["kind"]: crd for crd in all_crds()}


def schema_of(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_crd_files_are_current() -> None:
    """Fails when crds/ is stale: regenerate with `spectra crds -o crds`."""
    expected = {file_name(crd): render(crd) for crd in all_crds()}
    actual = {path.name: path.read_text(encoding="utf-8") for path in CRDS_DIR.glob("*.yaml")}
    assert sorted(actual) == sorted(expected), "crds/ has missing or extra files: run `spectra crds -o crds`"
    stale = [name for name in expected if actual[name] != expected[name]]
    assert not stale, f"stale CRDs {stale}: run `spectra crds -o crds`"


def test_one_crd_per_kind() -> None:
    assert sorted(CRDS) == sorted(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_crd_is_valid_kubernetes_object(kind: str) -> None:
    kubernetes_validate.validate(copy.deepcopy(CRDS[kind]), "1.34", strict=True)


def _nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_schema_is_structural(kind: str) -> None:
    """The API server's structural-schema rules (apiextensions.k8s.io/v1 requires them)."""
    for path, node in _nodes(schema_of(kind), kind):
        assert "$ref" not in node, path
        assert "$defs" not in node, path
        assert "default" not in node, f"{path}: defaults belong in the models, not in stored objects"
        typed = (
            "type" in node or node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
        )
        assert typed, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        for key in ("anyOf", "oneOf", "allOf", "not"):
            assert key not in node, f"{path} uses {key}"
        if path != kind and not path.endswith(("[]", "{}")) and node.get("type") == "object":
            assert "description" in node or path.endswith(".metadata"), f"{path} has no description"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_crd_names_and_subresources(kind: str) -> None:
    crd = CRDS[kind]
    names = crd["spec"]["names"]
    version = crd["spec"]["versions"][0]
    assert crd["metadata"]["name"] == f"{names['plural']}.spectra.dev"
    assert names["shortNames"]
    assert "spectra" in names["categories"]
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["scope"] == ("Cluster" if kind == "Organization" else "Namespaced")
    assert version["additionalPrinterColumns"][-1]["name"] == "Age"


def test_monitor_printer_columns() -> None:
    columns = CRDS["Monitor"]["spec"]["versions"][0]["additionalPrinterColumns"]
    names = [c["name"] for c in columns]
    assert names == ["Type", "Target", "State", "Uptime 24h", "Last Check", "Ready", "Age"]
    status = schema_of("Monitor")["properties"]["status"]["properties"]
    for column in columns[1:-2]:
        assert column["jsonPath"].removeprefix(".status.") in status


# Times that are always in the past: a `date` column shows an age and prints a future time as <invalid>.
PAST_TIMES = {".metadata.creationTimestamp", ".status.lastCheck"}
COLUMN_TYPES = {"string": {"string", "array", "boolean"}, "integer": {"integer"}, "boolean": {"boolean"}}


def _column_field(kind: str, json_path: str) -> dict[str, Any]:
    """The schema node a printer column's JSONPath reads (filters and `[*]` step into list items)."""
    node = schema_of(kind)
    for part in re.findall(r"\.(\w+)|\[[^]]*\]", json_path):
        if not part:  # a bracket: [*], [0] or a filter, all of which read items
            node = node["items"]
        elif part == "metadata":
            return {"type": "object"}
        else:
            node = node["properties"][part]
    return node


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_printer_columns_read_well(kind: str) -> None:
    """Headers unique next to kubectl's NAME; dates only of past times; each column reads a field of its type."""
    columns = CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    headers = ["NAME", *(column["name"].upper() for column in columns)]
    assert len(set(headers)) == len(headers), headers
    for column in columns:
        if column["type"] == "date":
            assert column["jsonPath"] in PAST_TIMES, f"{column['name']} may hold a future time: make it a string"
            continue
        field = _column_field(kind, column["jsonPath"])
        assert field["type"] in COLUMN_TYPES[column["type"]], (column, field)


def example_objects() -> list[tuple[str, dict[str, Any]]]:
    files, errors = discover([EXAMPLES_DIR])
    assert not errors
    objects = []
    for path in files:
        for origin, data in read_documents(path):
            if data and data.get("apiVersion", "").startswith("spectra.dev/"):
                objects.append((f"{path.relative_to(REPO)}#{origin.document}", data))
    return objects


EXAMPLES = example_objects()


def test_examples_cover_every_kind() -> None:
    assert {data["kind"] for _, data in EXAMPLES} == set(KINDS)


def _jsonschema(node: Any) -> Any:
    """OpenAPI v3 (Kubernetes flavour) -> JSON Schema: CEL and k8s extensions are checked separately."""
    if isinstance(node, dict):
        return {k: _jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_jsonschema(v) for v in node]
    return node


@pytest.mark.parametrize(("where", "data"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_example_fits_crd_schema(where: str, data: dict[str, Any]) -> None:
    schema = _jsonschema(schema_of(data["kind"]))
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER).validate(data)


# --- CEL rules, evaluated as the API server would ---------------------------------------------------

_ENV = celpy.Environment()


def rule_applications(schema: dict[str, Any], value: Any) -> Iterator[tuple[str, Any]]:
    """(rule, self) for every x-kubernetes-validations rule that applies to `value`."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield rule["rule"], value
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name in value:
                yield from rule_applications(child, value[name])
    if isinstance(value, list) and "items" in schema:
        for item in value:
            yield from rule_applications(schema["items"], item)


def failed_rules(kind: str, spec: dict[str, Any]) -> list[str]:
    spec_schema = schema_of(kind)["properties"]["spec"]
    failed = []
    for rule, value in rule_applications(spec_schema, spec):
        program = _ENV.program(_ENV.compile(rule))
        if not bool(program.evaluate({"self": json_to_cel(value)})):
            failed.append(rule)
    return failed


@pytest.mark.parametrize(("where", "data"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_example_passes_cel_rules(where: str, data: dict[str, Any]) -> None:
    assert failed_rules(data["kind"], data["spec"]) == []


HTTP = {"type": "http", "http": {"url": "https://example.com/"}}
CEL_REJECTS = [
    ("Monitor", {**HTTP, "interval": "10s", "timeout": "10s"}, "duration(self.timeout)"),
    ("Monitor", {**HTTP, "timeout": "2m"}, "duration(self.timeout)"),  # default interval 60s
    ("Monitor", {**HTTP, "locations": ["a", "b"], "quorum": 3}, "self.quorum"),
    ("Monitor", {**HTTP, "quorum": 2}, "self.quorum"),
    ("Monitor", {"type": "tcp"}, "has(self.tcp)"),
    ("Monitor", {**HTTP, "dns": {"name": "x"}}, "has(self.dns)"),
    (
        "Monitor",
        {"type": "browser", "browser": {"steps": [{"goto": "https://a.example/", "click": "#x"}]}},
        "filter",
    ),
    ("EscalationPolicy", {"steps": [{"targets": [{"contact": "a", "schedule": "b"}]}]}, "filter"),
    (
        "StatusPage",
        {"slug": "s", "title": "t", "groups": [{"name": "g", "components": [{"name": "c"}]}]},
        "monitorSelector",
    ),
    ("MaintenanceWindow", {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "timestamp"),
    (
        "MaintenanceWindow",
        {
            "start": "2026-01-01T00:00:00Z",
            "end": "2026-01-02T00:00:00Z",
            "recurrence": {"rrule": "FREQ=DAILY", "duration": "1h"},
        },
        "has(self.recurrence)",
    ),
    ("Schedule", {"layers": [{"name": "a", "participants": ["x"], "start": "2026-01-01"}] * 2}, "exists_one"),
]


@pytest.mark.parametrize(("kind", "spec", "rule_part"), CEL_REJECTS)
def test_cel_rule_rejects(kind: str, spec: dict[str, Any], rule_part: str) -> None:
    failed = failed_rules(kind, spec)
    assert any(rule_part in rule for rule in failed), failed


def test_crds_round_trip_through_yaml() -> None:
    for crd in all_crds():
        text = render(crd)
        assert text.startswith("# Generated by `spectra crds`")
        assert yaml.safe_load(text) == crd
