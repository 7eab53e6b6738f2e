"""Hypothesis strategies for hostile manifests: structured objects, mutated real examples, raw YAML.

Three sources, because each finds what the others miss: objects shaped like our resources reach the
validators; mutations of the shipped examples reach the YAML reader with almost-valid text; raw text
made of YAML's own punctuation reaches the tokenizer's corners.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from spectra.api.crd import all_crds

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").rglob("*.yaml"))
KINDS = ["Monitor", "Contact", "Schedule", "EscalationPolicy", "StatusPage", "MaintenanceWindow", "Organization"]

# Pieces of YAML that have tripped parsers and validators before: anchors and aliases, merge keys, tags
# (python/object must never construct), document markers, directives, odd scalars, huge numbers,
# control and invisible characters, and fragments of our own resources.
TOKENS = [
    "&a ", "*a", "<<: *a", "&a [*a]", "!!python/object/apply:os.system ['true']", "!!binary AAAA", "!!set {a}",
    "!!timestamp 2026-13-45", "!!int 0x1F", "!!float .nan", "? ", "- ", "[", "]", "{", "}", ": ", "|", "|-", ">",
    "---\n", "...\n", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "\t", "\x00", "\x07", "\x1b[31m", "\ufeff", "\u2028",
    "\u202e", "'", '"', "\\", "# ", "99999999999999999999", "1e999", "-.inf", ".nan", "0o777", "~", "null",
    "yes", "on", "é", "\U0001d54f", "9999999999999h", "-1s", "0s", "P1D", "1h1h", "kind: List\nitems:\n  - ",
    "apiVersion: v1\nkind: Secret\n", "secretKeyRef: {name: s, key: k}", "metadata: {name: x}", "spec:\n  ",
    "name: ", "namespace: ", "url: http://169.254.169.254/", "url: file:///etc/passwd", "$..*..*",
    "(a+)+$", "{{ 7*7 }}", "<script>", "\n" + " " * 40, "x" * 300,
]  # fmt: skip


def _field_names() -> list[str]:
    """Every property name the CRD schemas know, so generated objects reach real validators."""
    names: set[str] = set()

    def walk(schema: Any) -> None:
        if isinstance(schema, dict):
            for key, value in schema.get("properties", {}).items():
                names.add(key)
                walk(value)
            for value in schema.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(schema, list):
            for item in schema:
                walk(item)

    for crd in all_crds():
        walk(crd)
    return sorted(names)


FIELDS = _field_names()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["5s", "1m", "24h", "0s", "-5s", "99999999999999h", "https://example.com", "10.0.0.1:53"]),
    st.sampled_from(KINDS),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), inner, max_size=5),
    ),
    max_leaves=25,
)


@st.composite
def resource_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A mapping shaped like one of our resources, with arbitrary field values."""
    body: dict[str, Any] = {
        "apiVersion": draw(st.sampled_from(["spectra.dev/v1alpha1", "spectra.dev/v9", "v1", 7])),
        "kind": draw(st.sampled_from([*KINDS, "List", "Secret", "Nope"])),
        "metadata": draw(st.one_of(st.fixed_dictionaries({"name": scalars}, optional={"namespace": scalars}), values)),
        "spec": draw(st.dictionaries(st.sampled_from(FIELDS), values, max_size=8)),
    }
    if body["kind"] in ("Secret", "List"):
        body[draw(st.sampled_from(["data", "stringData", "items"]))] = draw(values)
    return body


def structured_documents() -> st.SearchStrategy[str]:
    return st.lists(resource_objects(), min_size=1, max_size=3).map(
        lambda objects: yaml.safe_dump_all(objects, allow_unicode=True, sort_keys=False)
    )


@st.composite
def mutated_examples(draw: st.DrawFn) -> str:
    """A shipped example with a few edits: tokens inserted, spans deleted or repeated, cut short."""
    text = draw(st.sampled_from(EXAMPLES)).read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "repeat", "truncate", "indent"]))
        if edit == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS) | st.text(max_size=8)) + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif edit == "repeat":
            span = text[at : at + draw(st.integers(1, 200))]
            text = text[:at] + span * draw(st.integers(2, 50)) + text[at:]
        elif edit == "truncate":
            text = text[:at]
        else:
            text = text[:at] + " " * draw(st.integers(1, 9)) + text[at:]
    return text


def raw_yaml() -> st.SearchStrategy[str]:
    """Text made of YAML punctuation, our tokens and a little of anything."""
    return st.lists(
        st.one_of(st.sampled_from(TOKENS), st.sampled_from(list(":-[]{}&*!|>'\"#%@`,? \n\t")), st.text(max_size=3)),
        max_size=60,
    ).map("".join)


def manifests() -> st.SearchStrategy[str]:
    return st.one_of(structured_documents(), mutated_examples(), raw_yaml())
