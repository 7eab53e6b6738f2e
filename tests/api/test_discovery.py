"""The discovery annotations: reading values, and the generated reference in docs/discovery.md."""

from __future__ import annotations

import pytest

from spectra.api.discovery import (
    ANNOTATIONS,
    DOCS,
    AnnotationError,
    annotation_of,
    component_label,
    effective,
    monitor_overrides,
    replace_block,
    wanted,
)


def test_the_reference_is_current() -> None:
    text = DOCS.read_text()
    assert replace_block(text) == text, "docs/discovery.md is stale: python -m spectra.api.discovery --write"
    assert all(f"`{annotation.key}`" in text for annotation in ANNOTATIONS)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("Web Shop", "web-shop"),
        ("API", "api"),
        ("  Public / API v2 ", "public-api-v2"),
        ("!!!", ""),
        ("x" * 80, "x" * 63),
    ],
)
def test_component_label(name: str, label: str) -> None:
    assert component_label(name) == label


@pytest.mark.parametrize(
    ("annotations", "namespace", "expected"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"spectra.dev/monitor": "true"}, False, True),
        ({"spectra.dev/monitor": " TRUE "}, False, True),
        ({"spectra.dev/monitor": "false"}, True, False),
        ({"spectra.dev/monitor": "yes"}, True, False),  # only "true" asks
    ],
)
def test_wanted(annotations: dict[str, str], namespace: bool, expected: bool) -> None:
    assert wanted(annotations, namespace) is expected


def test_effective_takes_the_objects_own_over_the_namespaces() -> None:
    defaults = {
        "spectra.dev/interval": "5m",
        "spectra.dev/monitor": "true",
        "spectra.dev/severity": "info",
        "other/x": "1",
    }
    own = {"spectra.dev/interval": "30s", "kubernetes.io/ingress.class": "nginx"}
    assert effective(defaults, own) == {"spectra.dev/interval": "30s", "spectra.dev/severity": "info"}


def test_overrides() -> None:
    spec, expect, labels = monitor_overrides(
        {"spectra.dev/expected-status": "200, 204", "spectra.dev/locations": "eu,,us", "spectra.dev/paused": "False"}
    )
    assert spec == {"locations": ["eu", "us"], "paused": False}
    assert expect == {"status": [200, 204]}
    assert labels == {}


@pytest.mark.parametrize(
    ("annotations", "key"),
    [
        ({"spectra.dev/quorum": "-1"}, "spectra.dev/quorum"),
        ({"spectra.dev/quorum": "9" * 40}, "spectra.dev/quorum"),
        ({"spectra.dev/expected-status": "2xx"}, "spectra.dev/expected-status"),
        ({"spectra.dev/paused": "1"}, "spectra.dev/paused"),
        ({"spectra.dev/component": "Web"}, "spectra.dev/status-page"),
    ],
)
def test_unreadable_values_name_the_annotation(annotations: dict[str, str], key: str) -> None:
    with pytest.raises(AnnotationError) as raised:
        monitor_overrides(annotations)
    assert raised.value.key == key
    assert str(raised.value).startswith(f"annotation {key}: ")


@pytest.mark.parametrize(
    ("field", "key"),
    [
        ("spec.interval", "spectra.dev/interval"),
        ("spec.escalationPolicyRef.name", "spectra.dev/escalation-policy"),
        ("spec.http.expect.status", "spectra.dev/expected-status"),
        ("spec.http.url", None),
        ("spec.intervalx", None),
    ],
)
def test_annotation_of(field: str, key: str | None) -> None:
    assert annotation_of(field) == key
