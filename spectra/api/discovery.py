"""Discovery annotations: how an Ingress, HTTPRoute or Service asks for a Monitor, and what it may set.

This table is the single source of truth for the annotations: the operator reads them through
`monitor_overrides`, and the reference in docs/discovery.md is generated from it
(`python -m spectra.api.discovery --write`), so the two cannot drift. Values are only parsed into the
Monitor's spec here; the Monitor model validates them, and `annotation_of` maps its complaint back to
the annotation a person wrote.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

PREFIX: Final = "spectra.dev/"
MONITOR: Final = PREFIX + "monitor"

# Labels and annotations the operator puts on a discovered Monitor.
MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGER: Final = "spectra-discovery"
DISCOVERED_FROM: Final = PREFIX + "discovered-from"  # ingress | httproute | service
SOURCE_NAME: Final = PREFIX + "source-name"
SOURCE_UID: Final = PREFIX + "source-uid"
SOURCE: Final = PREFIX + "source"  # annotation: Kind/namespace/name
# A Monitor with both labels joins that component of that StatusPage (same namespace): see
# spectra.domain.components. Any Monitor may carry them; discovery sets them from annotations.
STATUS_PAGE_LABEL: Final = PREFIX + "status-page"
COMPONENT_LABEL: Final = PREFIX + "component"

_LABEL_VALUE: Final = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")


@dataclass(frozen=True)
class Annotation:
    """One annotation: its name after `spectra.dev/`, an example, the default, and what it does."""

    name: str
    example: str
    default: str
    description: str
    field: str | None = None  # the Monitor field it sets (dotted, camelCase), for mapping errors back

    @property
    def key(self) -> str:
        return PREFIX + self.name


ANNOTATIONS: Final = (
    Annotation(
        "monitor",
        '"true"',
        "off",
        '`"true"` gives this object a Monitor; `"false"` opts it out of a namespace that opts in.',
    ),
    Annotation(
        "path",
        "/healthz",
        "each rule's path (Ingress, HTTPRoute); `/` (Service)",
        "Path to request on every host, instead of the rules' paths (then one Monitor per host).",
        "spec.http.url",
    ),
    Annotation(
        "scheme",
        "http",
        "https, or http for an Ingress host without TLS and for a Service",
        "`http` or `https`.",
        "spec.http.url",
    ),
    Annotation(
        "port",
        "metrics",
        "the Service's first port; the scheme's (Ingress, HTTPRoute)",
        "Port to check: a Service's port by name or number; for an Ingress or HTTPRoute, the number in the URL.",
        "spec.http.url",
    ),
    Annotation(
        "expected-status",
        "200,204",
        "any 2xx or 3xx",
        "Status codes that count as up, comma-separated.",
        "spec.http.expect.status",
    ),
    Annotation("interval", "30s", "60s", "Time between checks.", "spec.interval"),
    Annotation("timeout", "5s", "10s, at most half the interval", "Time one check may take.", "spec.timeout"),
    Annotation(
        "locations",
        "eu-west,us-east",
        "the default location",
        "Probe locations, comma-separated.",
        "spec.locations",
    ),
    Annotation("quorum", "2", "a majority of locations", "Locations that must see a failure.", "spec.quorum"),
    Annotation(
        "escalation-policy",
        "web-team",
        "nobody is paged",
        "EscalationPolicy (same namespace) that pages people when the Monitor goes down.",
        "spec.escalationPolicyRef",
    ),
    Annotation("severity", "warning", "critical", "`critical`, `warning` or `info`.", "spec.severity"),
    Annotation(
        "status-page",
        "public",
        "none",
        "StatusPage (same namespace) to join; needs `component` too.",
        "metadata.labels",
    ),
    Annotation(
        "component",
        "Website",
        "none",
        "Component of that page to join (matched by name, case and punctuation ignored).",
        "metadata.labels",
    ),
    Annotation("paused", '"true"', "false", "Stop checking and alerting.", "spec.paused"),
)
BY_KEY: Final = {annotation.key: annotation for annotation in ANNOTATIONS}
_BY_FIELD: Final = {a.field: a for a in ANNOTATIONS if a.field and a.field != "spec.http.url"}


class AnnotationError(ValueError):
    """An annotation value that cannot be read; the message names the annotation."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"annotation {key}: {message}")
        self.key = key


def component_label(component: str) -> str:
    """A component's name as a label value: lower case, other characters as `-` ("Public API" -> public-api)."""
    return re.sub(r"[^a-z0-9]+", "-", component.lower()).strip("-")[:63].strip("-")


def wanted(source: Mapping[str, str], namespace_opted_in: bool) -> bool:
    """Whether an object wants a Monitor: its own `spectra.dev/monitor`, else its namespace's opt-in."""
    value = source.get(MONITOR)
    if value is None:
        return namespace_opted_in
    return value.strip().lower() == "true"


def effective(namespace_defaults: Mapping[str, str], source: Mapping[str, str]) -> dict[str, str]:
    """The discovery annotations in force: the namespace's as defaults, the object's own on top."""
    chosen = {key: value for key, value in namespace_defaults.items() if key in BY_KEY and key != MONITOR}
    chosen.update({key: value for key, value in source.items() if key in BY_KEY})
    return chosen


def monitor_overrides(annotations: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(spec fields, http.expect fields, extra labels) from the annotations; AnnotationError when unreadable."""
    spec: dict[str, Any] = {}
    expect: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for key, raw in annotations.items():
        value = raw.strip()
        name = key.removeprefix(PREFIX)
        if name in ("monitor", "path", "scheme", "port"):
            continue  # read by whoever builds the URL
        if name == "expected-status":
            expect["status"] = [_integer(key, part) for part in _items(value)]
        elif name in ("interval", "timeout", "severity"):
            spec[name] = value
        elif name == "locations":
            spec["locations"] = _items(value)
        elif name == "quorum":
            spec["quorum"] = _integer(key, value)
        elif name == "escalation-policy":
            spec["escalationPolicyRef"] = {"name": value}
        elif name == "paused":
            spec["paused"] = _boolean(key, value)
        elif name in ("status-page", "component"):
            continue
    page, component = annotations.get(STATUS_PAGE_LABEL), annotations.get(COMPONENT_LABEL)
    if (page is None) != (component is None):
        missing = COMPONENT_LABEL if page is not None else STATUS_PAGE_LABEL
        raise AnnotationError(missing, "status-page and component go together: give both or neither")
    if page is not None and component is not None:
        if not _LABEL_VALUE.match(page.strip()):
            raise AnnotationError(STATUS_PAGE_LABEL, f"{page!r} is not a StatusPage name")
        label = component_label(component)
        if not label:
            raise AnnotationError(COMPONENT_LABEL, f"{component!r} has no letters or digits")
        labels = {STATUS_PAGE_LABEL: page.strip(), COMPONENT_LABEL: label}
    return spec, expect, labels


def annotation_of(field: str) -> str | None:
    """The annotation that set a Monitor field named in a validation problem (`spec.interval`), if any."""
    for prefix, annotation in _BY_FIELD.items():
        if field == prefix or field.startswith(prefix + "."):
            return annotation.key
    return None


def _items(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _integer(key: str, value: str) -> int:
    if not re.fullmatch(r"\d{1,6}", value):
        raise AnnotationError(key, f"{value!r} is not a whole number")
    return int(value)


def _boolean(key: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise AnnotationError(key, f'{value!r} is not "true" or "false"')
    return value.lower() == "true"


# --- the generated reference ----------------------------------------------------------------------

BEGIN: Final = "<!-- discovery-annotations:begin (generated by `python -m spectra.api.discovery --write`) -->"
END: Final = "<!-- discovery-annotations:end -->"
DOCS: Final = Path(__file__).resolve().parents[2] / "docs" / "discovery.md"


def markdown() -> str:
    rows = ["| Annotation | Example | Default | Meaning |", "|---|---|---|---|"]
    for a in ANNOTATIONS:
        rows.append(f"| `{a.key}` | `{a.example}` | {a.default} | {a.description} |")
    return "\n".join(rows) + "\n"


def replace_block(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + markdown() + text[end:]


if __name__ == "__main__":
    current = DOCS.read_text()
    if sys.argv[1:] == ["--write"]:
        DOCS.write_text(replace_block(current))
    else:
        sys.stdout.write(markdown())
