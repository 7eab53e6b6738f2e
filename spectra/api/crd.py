"""CustomResourceDefinitions generated from the models (never written by hand).

Pydantic's JSON Schema is turned into a Kubernetes *structural* schema: references inlined, every
node typed, `anyOf [X, null]` collapsed to X, defaults moved into descriptions (the API server must
not inject them: defaults live in the models), and CEL rules (`x-kubernetes-validations`) kept.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema

from spectra.api import KINDS
from spectra.api.base import GROUP, VERSION, Resource
from spectra.api.durations import format_duration

_KEPT = (
    "type",
    "description",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "x-kubernetes-validations",
)
_FORMATS = {"date-time", "date", "email"}
Schema = dict[str, Any]


class _JsonSchema(GenerateJsonSchema):
    """Shows duration defaults as users write them (`1m`), not ISO 8601 (`PT1M`)."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            whole_days = dft >= timedelta(days=1) and dft % timedelta(days=1) == timedelta(0)
            return format_duration(dft, calendar_units=whole_days)
        return super().encode_default(dft)


def structural(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Convert one pydantic JSON Schema node (and its children) to a structural schema."""
    description = node.get("description")
    default = node.get("default")
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        out = structural(target, defs)
    elif "anyOf" in node:
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        # Scalars of several types (e.g. jsonPath `equals`) cannot be typed for the API server.
        single = len(options) == 1
        out = structural(options[0], defs) if single else {"x-kubernetes-preserve-unknown-fields": True}
    else:
        out = {key: node[key] for key in _KEPT if key in node}
        if node.get("format") in _FORMATS:
            out["format"] = node["format"]
        if "const" in node:
            out["enum"] = [node["const"]]
            out.setdefault("type", "string")
        if node.get("type") == "object" or "properties" in node:
            out["type"] = "object"
            if "properties" in node:
                out["properties"] = {name: structural(child, defs) for name, child in node["properties"].items()}
                if node.get("required"):
                    out["required"] = list(node["required"])
            elif isinstance(node.get("additionalProperties"), dict):
                out["additionalProperties"] = structural(node["additionalProperties"], defs)
            else:
                out["x-kubernetes-preserve-unknown-fields"] = True
        if node.get("type") == "array":
            out["items"] = structural(node.get("items", {"type": "string"}), defs)
    if description:
        out["description"] = description
    if default not in (None, [], {}) and "Default:" not in (out.get("description") or ""):
        out["description"] = f"{out.get('description', '').rstrip()} Default: {_show(default)}.".strip()
    return out


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _columns(model: type[Resource]) -> list[Schema]:
    columns = []
    for column in model.info.columns:
        entry: Schema = {"name": column.name, "type": column.type, "jsonPath": column.json_path}
        if column.description:
            entry["description"] = column.description
        if column.priority:
            entry["priority"] = column.priority
        columns.append(entry)
    return columns


def crd_for(model: type[Resource]) -> Schema:
    """The CustomResourceDefinition of one kind."""
    kind = model.__name__
    info = model.info
    schema = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_JsonSchema)
    defs = schema.get("$defs", {})
    properties = schema["properties"]
    root: Schema = {
        "type": "object",
        "description": (model.__doc__ or kind).strip().splitlines()[0],
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "spectra.dev/v1alpha1"},
            "kind": {"type": "string", "description": kind},
            "metadata": {"type": "object"},
            "spec": structural(properties["spec"], defs),
            "status": structural(properties["status"], defs),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "spectramonitor",
                "app.kubernetes.io/part-of": "spectramonitor",
            },
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": info.plural,
                "singular": kind.lower(),
                "shortNames": list(info.short_names),
                "categories": list(info.categories),
            },
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _columns(model),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def all_crds() -> list[Schema]:
    return [crd_for(model) for model in KINDS.values()]


def file_name(crd: Schema) -> str:
    """`crds/<plural>.spectra.dev.yaml`."""
    return f"{crd['metadata']['name']}.yaml"


HEADER = "# Generated by `spectra crds` from spectra/api; do not edit.\n"


def render(crd: Schema) -> str:
    return HEADER + yaml.safe_dump(crd, sort_keys=False, width=120, allow_unicode=True)


def render_all() -> str:
    """Every CRD as one multi-document YAML stream, for `spectra crds | kubectl apply -f -`."""
    return "---\n".join(render(crd) for crd in all_crds())
