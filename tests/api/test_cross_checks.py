"""Checks across a set of objects: duplicates, references to missing objects or Secrets, values taken twice.

How `spectra validate` reports them (file, object, field): tests/test_manifests.py.
"""

from __future__ import annotations

import pytest
import yaml

from spectra.api import Resource, parse_object
from spectra.api.cross_checks import Reference, SecretKeys, check_set, references, secret_refs
from tests.factories.manifests import MONITOR_YAML

HEARTBEAT = """\
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: backup}
spec:
  type: heartbeat
  interval: 1h
  heartbeat:
    tokenFrom: {secretKeyRef: {name: tokens, key: backup}}
"""


def parse(text: str) -> list[Resource]:
    return [parse_object(doc) for doc in yaml.safe_load_all(text) if doc]


def problems(text: str, secrets: SecretKeys | None = None) -> list[tuple[str, str, str]]:
    """(object, field, message) of every problem of the set."""
    return [(obj.ref, problem.field, problem.message) for obj, problem in check_set(parse(text), secrets)]


CROSS = [
    (
        "duplicate",
        MONITOR_YAML.format(name="web", namespace="default") * 1
        + "---\n"
        + MONITOR_YAML.format(name="web", namespace="default"),
        "metadata.name",
        "defined twice",
    ),
    (
        "missing-policy",
        MONITOR_YAML.format(name="web", namespace="default").replace(
            "type: http", "type: http\n  escalationPolicyRef: {name: nope}"
        ),
        "spec.escalationPolicyRef.name",
        "EscalationPolicy 'nope' does not exist",
    ),
    (
        "missing-contact-and-schedule",
        "apiVersion: spectra.dev/v1alpha1\nkind: EscalationPolicy\nmetadata: {name: p}\n"
        "spec: {steps: [{targets: [{contact: ghost}, {schedule: nobody}]}]}\n",
        "spec.steps[0].targets[0].contact",
        "Contact 'ghost' does not exist",
    ),
    (
        "missing-participant",
        "apiVersion: spectra.dev/v1alpha1\nkind: Schedule\nmetadata: {name: s}\n"
        "spec: {layers: [{name: l, participants: [ghost], start: 2026-01-05}]}\n",
        "spec.layers[0].participants[0]",
        "Contact 'ghost' does not exist",
    ),
    (
        "missing-monitor-on-page",
        "apiVersion: spectra.dev/v1alpha1\nkind: StatusPage\nmetadata: {name: p}\n"
        "spec: {slug: s, title: T, groups: [{name: g, components: [{name: c, monitors: [ghost]}]}]}\n",
        "spec.groups[0].components[0].monitors[0]",
        "Monitor 'ghost' does not exist",
    ),
    (
        "missing-page-in-window",
        MONITOR_YAML.format(name="web", namespace="default")
        + "---\napiVersion: spectra.dev/v1alpha1\nkind: MaintenanceWindow\nmetadata: {name: w}\n"
        "spec: {start: '2026-01-01T00:00:00Z', end: '2026-01-01T01:00:00Z', monitors: [web], statusPages: [ghost]}\n",
        "spec.statusPages[0]",
        "StatusPage 'ghost' does not exist",
    ),
    (
        "reference-across-namespaces",
        MONITOR_YAML.format(name="web", namespace="team-a")
        + "---\napiVersion: spectra.dev/v1alpha1\nkind: MaintenanceWindow\nmetadata: {name: w, namespace: team-b}\n"
        "spec: {start: '2026-01-01T00:00:00Z', end: '2026-01-01T01:00:00Z', monitors: [web]}\n",
        "spec.monitors[0]",
        "does not exist in namespace team-b",
    ),
    (
        "slug-taken",
        "apiVersion: spectra.dev/v1alpha1\nkind: StatusPage\nmetadata: {name: p1}\n"
        "spec: {slug: s, title: T, groups: [{name: g, components: [{name: c, monitorSelector: {matchLabels: {a: b}}}]}]}\n"
        "---\napiVersion: spectra.dev/v1alpha1\nkind: StatusPage\nmetadata: {name: p2, namespace: other}\n"
        "spec: {slug: s, title: T, groups: [{name: g, components: [{name: c, monitorSelector: {matchLabels: {a: b}}}]}]}\n",
        "spec.slug",
        "already used by StatusPage/default/p1",
    ),
    (
        "namespace-in-two-orgs",
        "apiVersion: spectra.dev/v1alpha1\nkind: Organization\nmetadata: {name: a}\nspec: {displayName: A, namespaces: [shared]}\n"
        "---\napiVersion: spectra.dev/v1alpha1\nkind: Organization\nmetadata: {name: b}\nspec: {displayName: B, namespaces: [shared]}\n",
        "spec.namespaces",
        "already used by Organization/a",
    ),
]


@pytest.mark.parametrize(("text", "field", "words"), [c[1:] for c in CROSS], ids=[c[0] for c in CROSS])
def test_checks_across_the_set(text: str, field: str, words: str) -> None:
    found = problems(text)
    matching = [message for _, where, message in found if where == field]
    assert matching, found
    assert words in matching[0]


def test_problems_name_the_later_object() -> None:
    """The second definition, the referring object, the second claimant: the one to fix."""
    duplicate = MONITOR_YAML.format(name="web", namespace="default")
    assert problems(duplicate + "---\n" + duplicate) == [
        ("Monitor/default/web", "metadata.name", "Monitor/default/web is defined twice")
    ]
    orgs = CROSS[-1][1]
    assert problems(orgs) == [
        ("Organization/b", "spec.namespaces", "namespace 'shared' is already used by Organization/a")
    ]


def test_a_complete_set_has_no_problems() -> None:
    text = (
        MONITOR_YAML.format(name="web", namespace="default").replace(
            "type: http", "type: http\n  escalationPolicyRef: {name: primary}"
        )
        + "---\napiVersion: spectra.dev/v1alpha1\nkind: EscalationPolicy\nmetadata: {name: primary}\n"
        "spec: {steps: [{targets: [{contact: ann}]}]}\n"
        "---\napiVersion: spectra.dev/v1alpha1\nkind: Contact\nmetadata: {name: ann}\n"
        "spec: {displayName: Ann, email: ann@example.com}\n"
        # The same name in another namespace is another object.
         + "---\n" + MONITOR_YAML.format(name="web", namespace="other")
    )
    assert problems(text) == []


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({("default", "tokens"): frozenset({"backup", "other"})}, None),
        ({}, "Secret 'tokens' does not exist in namespace default"),
        ({("default", "tokens"): frozenset({"other"})}, "Secret 'tokens' has no key 'backup'"),
        ({("elsewhere", "tokens"): frozenset({"backup"})}, "Secret 'tokens' does not exist in namespace default"),
    ],
    ids=["present", "missing", "missing-key", "other-namespace"],
)
def test_secret_references(secrets: SecretKeys, message: str | None) -> None:
    expected = [] if message is None else [("Monitor/default/backup", "spec.heartbeat.tokenFrom.secretKeyRef", message)]
    assert problems(HEARTBEAT, secrets) == expected


def test_secrets_none_skips_secret_checks() -> None:
    assert problems(HEARTBEAT, None) == []


def test_references_of_each_kind() -> None:
    [monitor, policy, schedule, page, window] = parse(
        MONITOR_YAML.format(name="web", namespace="default").replace(
            "type: http", "type: http\n  escalationPolicyRef: {name: primary}"
        )
        + "---\napiVersion: spectra.dev/v1alpha1\nkind: EscalationPolicy\nmetadata: {name: primary}\n"
        "spec: {steps: [{targets: [{contact: ann}, {schedule: week}]}]}\n"
        "---\napiVersion: spectra.dev/v1alpha1\nkind: Schedule\nmetadata: {name: week}\n"
        "spec: {layers: [{name: l, participants: [ann, bob], start: 2026-01-05}],"
        " overrides: [{contact: cem, start: '2026-01-06T00:00:00Z', end: '2026-01-07T00:00:00Z'}]}\n"
        "---\napiVersion: spectra.dev/v1alpha1\nkind: StatusPage\nmetadata: {name: p}\n"
        "spec: {slug: s, title: T, groups: [{name: g, components: [{name: c, monitors: [web]},"
        " {name: d, monitorSelector: {matchLabels: {a: b}}}]}]}\n"
        "---\napiVersion: spectra.dev/v1alpha1\nkind: MaintenanceWindow\nmetadata: {name: w}\n"
        "spec: {start: '2026-01-01T00:00:00Z', end: '2026-01-01T01:00:00Z', monitors: [web], statusPages: [p]}\n"
    )
    assert list(references(monitor)) == [Reference("spec.escalationPolicyRef.name", "EscalationPolicy", "primary")]
    assert list(references(policy)) == [
        Reference("spec.steps[0].targets[0].contact", "Contact", "ann"),
        Reference("spec.steps[0].targets[1].schedule", "Schedule", "week"),
    ]
    assert list(references(schedule)) == [
        Reference("spec.layers[0].participants[0]", "Contact", "ann"),
        Reference("spec.layers[0].participants[1]", "Contact", "bob"),
        Reference("spec.overrides[0].contact", "Contact", "cem"),
    ]
    assert list(references(page)) == [Reference("spec.groups[0].components[0].monitors[0]", "Monitor", "web")]
    assert list(references(window)) == [
        Reference("spec.monitors[0]", "Monitor", "web"),
        Reference("spec.statusPages[0]", "StatusPage", "p"),
    ]


def test_secret_refs_are_found_anywhere_in_the_spec() -> None:
    [heartbeat, http] = parse(
        HEARTBEAT + "---\napiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {name: api}\n"
        "spec: {type: http, http: {url: 'https://api.example.com/', headers: ["
        "{name: Accept, value: text/html},"
        " {name: Authorization, valueFrom: {secretKeyRef: {name: api-auth, key: header}}}]}}\n"
    )
    assert [
        (field, source.secret_key_ref.name, source.secret_key_ref.key) for field, source in secret_refs(heartbeat)
    ] == [("spec.heartbeat.tokenFrom.secretKeyRef", "tokens", "backup")]
    assert [(field, source.secret_key_ref.name) for field, source in secret_refs(http)] == [
        ("spec.http.headers[1].valueFrom.secretKeyRef", "api-auth")
    ]
    assert list(secret_refs(parse(MONITOR_YAML.format(name="web", namespace="default"))[0])) == []
