"""Read manifests from files and folders into validated resources, with errors that name the spot.

Standalone mode, `spectra validate` and `spectra check` read manifests through `load_paths`; the
operator hands custom-resource bodies to `spectra.api.parse_object` directly. Both then go through
`spectra.reconcile`. `kind: Secret` (v1) documents answer `secretKeyRef`s in standalone mode.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spectra.api import GROUP, InvalidObject, Monitor, Resource, parse_object
from spectra.api.cross_checks import check_set
from spectra.api.plain_data import CONTROL, one_line, plain_data_problem

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Origin:
    """Where a document came from: file, 1-based document number and first line."""

    file: str
    document: int
    line: int


@dataclass(frozen=True)
class ManifestError:
    """One error, printed as `file: Kind/namespace/name: field: message` on one line: any part that holds
    a line break or an invisible character (a hostile name or value quoted in it) shows it escaped."""

    file: str
    object: str
    field: str
    message: str

    def __str__(self) -> str:
        parts = [self.file, self.object, self.field, self.message]
        return ": ".join(one_line(part) for part in parts if part)


@dataclass(frozen=True)
class SecretValues:
    """A v1 Secret from the manifests; values are decoded and never printed."""

    namespace: str
    name: str
    data: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class Loaded:
    resource: Resource
    origin: Origin


@dataclass
class ManifestSet:
    """What a set of paths declares: resources, Secrets, other objects skipped, and every error."""

    resources: list[Loaded] = field(default_factory=list)
    secrets: dict[tuple[str, str], SecretValues] = field(default_factory=dict)
    skipped: list[tuple[Origin, str]] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def source_files(self, paths: Iterable[str | Path]) -> dict[tuple[str, str, str], str]:
        """The file each resource was read from, by (kind, namespace, name) as `spectra.reconcile.key_of`
        keys it: relative to the folder of `paths` it was found in (POSIX separators), or as given."""
        roots = [Path(path) for path in paths]
        out: dict[tuple[str, str, str], str] = {}
        for item in self.resources:
            file = Path(item.origin.file)
            shown = item.origin.file
            for root in roots:
                if file != root and file.is_relative_to(root):
                    shown = file.relative_to(root).as_posix()
                    break
            resource = item.resource
            out[(resource.kind_name, resource.namespace, resource.name)] = shown
        return out

    def get(self, namespace: str, name: str, key: str) -> str | None:
        """SecretResolver: the value of a key of a Secret declared in these manifests."""
        secret = self.secrets.get((namespace, name))
        return None if secret is None else secret.data.get(key)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML would silently keep the last one) and reads
    timestamps as strings, as kubectl does, so both modes see the same values."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_timestamp_as_text(self, node: yaml.ScalarNode) -> str:
        return str(self.construct_scalar(node))

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """One mechanism for every unreadable value: PyYAML's constructors of explicit tags (!!int,
        !!float, !!binary, ...) trust their input and fail with whatever Python raises (ValueError,
        IndexError on an empty `!!int`, ...); any such failure is a YAML error at the value's place."""
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception:  # the input decides what PyYAML raises: see the docstring
            raise yaml.constructor.ConstructorError(
                None, None, f"a tagged value cannot be read ({node.tag})", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:  # a list, set or mapping used as a key: YAML allows it, no manifest means it
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain value, not a list or mapping", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# An explicit `!!timestamp` is text too (implicit ones already are, above).
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_timestamp_as_text)


def discover(paths: Iterable[str | Path]) -> tuple[list[Path], list[ManifestError]]:
    """Manifest files under `paths` in a stable order; folders are searched recursively."""
    files: list[Path] = []
    errors: list[ManifestError] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix in MANIFEST_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(ManifestError(str(path), "", "", "no such file or folder"))
    return files, errors


def read_documents(path: Path) -> Iterator[tuple[Origin, Any]]:
    """Each YAML (or JSON) document of a file with its origin; raises ValueError on bad syntax."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror}") from None
    document = 0
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader refuses control characters here, before any document
        while loader.check_node():
            node = loader.get_node()
            document += 1
            if node is None:
                continue
            data = loader.construct_document(node)
            yield Origin(str(path), document, node.start_mark.line + 1), data
    except RecursionError:  # the YAML composer recurses once per level
        raise ValueError(f"document {document + 1}: nested too deeply to read") from None
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        # PyYAML's constructors of explicit tags (!!int, !!float, !!binary...) trust their input.
        raise ValueError(f"document {document}: invalid YAML: a tagged value cannot be read ({exc})") from None
    except yaml.reader.ReaderError as exc:  # raised before any mark exists: say where from the position
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ValueError(
            f"document {document + 1}: invalid YAML: character #x{exc.character:04x} is not allowed"
            f" (line {line}, column {column})"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        # A constructor fails on a document already counted; the parser, on the next one.
        number = document if isinstance(exc, yaml.constructor.ConstructorError) else document + 1
        raise ValueError(f"document {number}: invalid YAML: {problem}{where}") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_paths(paths: Iterable[str | Path], *, check_secrets: bool = True) -> ManifestSet:
    """Read, validate and cross-check every manifest under `paths`."""
    result = ManifestSet()
    files, result.errors = discover(paths)
    for path in files:
        result.files.append(str(path))
        try:
            for origin, data in read_documents(path):
                _load_document(result, origin, data)
        except ValueError as exc:
            result.errors.append(ManifestError(str(path), "", "", str(exc)))

    by_id = {id(item.resource): item for item in result.resources}
    secrets = {key: frozenset(secret.data) for key, secret in result.secrets.items()} if check_secrets else None
    for resource, problem in check_set([item.resource for item in result.resources], secrets):
        origin = by_id[id(resource)].origin
        result.errors.append(ManifestError(origin.file, resource.ref, problem.field, problem.message))
    _check_push_tokens(result)
    return result


def _check_push_tokens(result: ManifestSet) -> None:
    """Each heartbeat monitor needs a push token of its own: a push must name one monitor (the store
    holds each token's hash once). Compared by value, since two Secrets may hold the same token."""
    owners: dict[str, str] = {}
    for item in result.resources:
        resource = item.resource
        if not isinstance(resource, Monitor) or resource.spec.heartbeat is None:
            continue
        ref = resource.spec.heartbeat.token_from.secret_key_ref
        token = result.get(resource.namespace, ref.name, ref.key)
        if not token:
            continue
        first = owners.setdefault(token, resource.ref)
        if first != resource.ref:
            result.errors.append(
                ManifestError(
                    item.origin.file,
                    resource.ref,
                    "spec.heartbeat.tokenFrom",
                    f"the same push token as {first}: each heartbeat monitor needs a token of its own",
                )
            )


def _load_document(result: ManifestSet, origin: Origin, data: Any) -> None:
    if data is None:
        return
    label = f"document {origin.document} (line {origin.line})"
    if not isinstance(data, dict):
        result.errors.append(
            ManifestError(origin.file, label, "", "a manifest must be a mapping with apiVersion and kind")
        )
        return
    refused = plain_data_problem(data)  # before anything recurses into it (a List of itself, say)
    if refused is not None:
        metadata = data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        ident = f"{data.get('kind')}/{name}" if isinstance(name, str) and not CONTROL.search(name) else label
        result.errors.append(ManifestError(origin.file, ident, *refused))
        return
    if data.get("kind") == "List" and isinstance(data.get("items"), list):
        for item in data["items"]:
            _load_document(result, origin, item)
        return
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if api_version == "v1" and kind == "Secret":
        _load_secret(result, origin, data, label)
        return
    if not isinstance(api_version, str) or not api_version.startswith(f"{GROUP}/"):
        if not api_version or not kind:
            result.errors.append(
                ManifestError(
                    origin.file,
                    label,
                    "apiVersion" if not api_version else "kind",
                    "required field is missing",
                )
            )
        else:
            result.skipped.append((origin, f"{api_version} {kind}"))
        return
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    namespace = (metadata.get("namespace") if isinstance(metadata, dict) else None) or "default"
    ident = f"{kind}/{namespace}/{name}" if name else label
    if kind == "Organization" and name:
        ident = f"{kind}/{name}"
    try:
        resource = parse_object(data)
    except InvalidObject as exc:
        for problem in exc.problems:
            result.errors.append(ManifestError(origin.file, ident, problem.field, problem.message))
        return
    result.resources.append(Loaded(resource, origin))


def _load_secret(result: ManifestSet, origin: Origin, data: dict[str, Any], label: str) -> None:
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = metadata.get("name") if isinstance(metadata, dict) else None
    namespace = (metadata.get("namespace") if isinstance(metadata, dict) else None) or "default"
    if not isinstance(name, str) or not name:
        result.errors.append(ManifestError(origin.file, label, "metadata.name", "required field is missing"))
        return
    ident = f"Secret/{namespace}/{name}"
    values: dict[str, str] = {}
    encoded = data.get("data") or {}
    plain = data.get("stringData") or {}
    if not isinstance(encoded, dict) or not isinstance(plain, dict):
        result.errors.append(ManifestError(origin.file, ident, "data", "data and stringData must be mappings"))
        return
    for key, value in encoded.items():
        try:
            values[str(key)] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            # The value itself is never echoed: it is a secret.
            result.errors.append(ManifestError(origin.file, ident, f"data.{key}", "not valid base64 of UTF-8 text"))
    values.update({str(key): str(value) for key, value in plain.items()})
    if (namespace, name) in result.secrets:
        result.errors.append(ManifestError(origin.file, ident, "metadata.name", f"{ident} is defined twice"))
    result.secrets[(namespace, name)] = SecretValues(namespace, name, values)
