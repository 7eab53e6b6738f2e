"""The install walkthroughs work as written: every shell command in them is checked offline.

README.md "Run it in a cluster" (with "From zero to paging") and docs/helm.md "Install" are what a new
user pastes into a terminal, one block after another, on a fresh kind or k3d cluster. Each command is
read as the shell would read it and checked against the real parts:

- `docker build` makes the image that `kind load` / `k3d image import` (or `docker push`) hand to the
  cluster before any `helm install`, and the chart's values point every container at it;
- `spectra ...` (also through `docker run IMAGE ...`) names real sub-commands and options, and
  `spectra validate` passes on the files the text says to save;
- `helm`: every flag exists in the real helm's help, every `--set` key in the chart's values, and
  `helm template` with exactly those values (what `--reuse-values` keeps included) renders;
- `kubectl`: every flag exists in the real kubectl's help; the commands run in order against the API
  emulator with the rendered chart applied (generators with `--dry-run=client -o yaml`, applied), so a
  namespace used before it is made, a missing file or a sample output with other columns fails;
- the Secrets made are the ones the chart reads; port-forwards, `curl`, `logs -l` and the probe
  Deployment named in the text match the rendered chart.

A command of any other program fails the test until a check for it is added here.
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from spectra.api.monitor import DEFAULT_LOCATION
from spectra.operator.child_manifests import probe_name
from spectra.operator.settings import OperatorSettings
from tests.chart.rendering import KUBE_VERSION, Rendered, run_helm
from tests.support.cli import spectra_command
from tests.support.kube import ClusterEmulator, KubeTools, objects_of
from tests.support.paths import CHART, REPO
from tests.support.processes import run_spectra

# The walkthrough runs `spectra validate` for real (a process of its own): the e2e tier.
pytestmark = pytest.mark.e2e  # one worker follows each walkthrough once (ONE_WORKER_MODULES, tests/conftest.py)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Doc:
    """One walkthrough: a section of a Markdown file, and how its image reaches the cluster."""

    path: Path
    heading: str
    loaders: frozenset[str]  # every image helm uses must reach the cluster through each of these

    def text(self) -> str:
        full = self.path.read_text(encoding="utf-8")
        start = full.index(f"\n{self.heading}\n")
        end = full.find("\n## ", start + 1)
        return full[start : end if end >= 0 else len(full)]


DOCS = {
    "README": Doc(REPO / "README.md", "## Run it in a cluster", frozenset({"kind", "k3d"})),
    "helm.md": Doc(REPO / "docs" / "helm.md", "## Install", frozenset({"docker push"})),
}
# Commands that need a live cluster (pods, kubelets): checked by the names they point at, not run.
NOT_RUN = {"wait", "port-forward", "logs"}
VALUES_FLAGS = {"--set", "--set-string", "--set-json", "-f", "--values"}
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


# --- reading the text as the shell does -----------------------------------------------------------


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    written: str  # the line as written, for messages
    output: tuple[str, ...] = ()  # comment lines right below it: sample output

    @property
    def program(self) -> str:
        return self.argv[0]


def shell_blocks(text: str) -> Iterator[str]:
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        if lang in {"bash", "sh"}:
            yield body


def commands(text: str, workdir: Path) -> list[Command]:
    """Every command of the text's shell blocks in order; `a && b` is two, `$PWD` is `workdir`."""
    found: list[Command] = []
    for body in shell_blocks(text):
        previous: Command | None = None
        for line in body.replace("\\\n", " ").splitlines():
            stripped = " ".join(line.split())
            if stripped.startswith("#"):
                if previous is not None:  # output shown under the command (columns kept), not an introduction
                    output = (*previous.output, line.strip())
                    found[-1] = previous = Command(previous.argv, previous.written, output)
                continue
            tokens = [token.replace("$PWD", str(workdir)) for token in shlex.split(line, comments=True)]
            unchecked = {"|", "||", ";", "&", ">", ">>", "<"} & set(tokens)
            assert not unchecked, f"{stripped}: {unchecked} is not checked here; split the command"
            while tokens:
                cut = tokens.index("&&") if "&&" in tokens else len(tokens)
                found.append(Command(tuple(tokens[:cut]), stripped))
                tokens = tokens[cut + 1 :]
            previous = found[-1] if found else None
    return found


def saved_files(text: str) -> dict[str, str]:
    """Files the text tells the reader to make: "Save as `NAME`" followed by a code block."""
    return dict(re.findall(r"Save as `([^`]+)`[^\n]*\n\n```\w*\n(.*?)^```", text, re.MULTILINE | re.DOTALL))


# --- what the real tools accept -------------------------------------------------------------------


@dataclass(frozen=True)
class Flags:
    """Long and short names of a command's flags -> whether the flag takes the next word as its value."""

    takes_value: dict[str, bool]
    subcommands: frozenset[str] = frozenset()


def _help_subcommands(text: str) -> frozenset[str]:
    block = text.split("Available Commands:\n", 1)[1].split("\n\n", 1)[0] if "Available Commands:" in text else ""
    return frozenset(line.split()[0] for line in block.splitlines() if line.strip())


@functools.cache
def helm_flags(helm: Path, verb: str) -> Flags:
    help_text = run_helm(helm, verb, "--help").stdout
    flags: dict[str, bool] = {}
    # "  -n, --namespace string   ...", "      --create-namespace   ...", "      --wait WaitStrategy[=watcher]"
    for short, long, kind in re.findall(r"^\s+(?:-(\w), )?--([\w-]+)(?: (\S+))?\s{2,}", help_text, re.MULTILINE):
        takes = bool(kind) and "[=" not in kind
        flags[f"--{long}"] = takes
        if short:
            flags[f"-{short}"] = takes
    return Flags(flags)


@functools.cache
def kubectl_flags(kubectl: Path, path: tuple[str, ...]) -> Flags:
    """The flags of `kubectl PATH...` (its own and the global ones) and its sub-commands."""

    def parsed(*args: str) -> dict[str, bool]:
        text = subprocess.run([str(kubectl), *args], capture_output=True, text=True, timeout=60, check=True).stdout
        flags: dict[str, bool] = {}
        # "    -f, --filename=[]:", "    --all=false:" (a boolean says false or true)
        for short, long, default in re.findall(r"^\s+(?:-(\w), )?--([\w-]+)=(.*):$", text, re.MULTILINE):
            takes = default not in {"false", "true"}
            flags[f"--{long}"] = takes
            if short:
                flags[f"-{short}"] = takes
        return flags

    own = subprocess.run([str(kubectl), *path, "--help"], capture_output=True, text=True, timeout=60, check=True)
    return Flags({**parsed("options"), **(parsed(*path, "--help") if path else {})}, _help_subcommands(own.stdout))


@dataclass
class Parsed:
    """A command line split into its sub-command path, positional words and flags (name -> values)."""

    path: tuple[str, ...]
    words: list[str]
    flags: dict[str, list[str]]
    ordered: list[tuple[str, str]]  # (flag, value) as written: helm applies `--set`s in this order

    def one(self, *names: str) -> str | None:
        values = [value for name in names for value in self.flags.get(name, [])]
        assert len(values) <= 1, f"{names} given twice"
        return values[0] if values else None


def parse_kubectl(kubectl: Path, command: Command) -> Parsed:
    path: tuple[str, ...] = ()
    words: list[str] = []
    flags: dict[str, list[str]] = {}
    ordered: list[tuple[str, str]] = []
    rest = list(command.argv[1:])
    while rest:
        word = rest.pop(0)
        known = kubectl_flags(kubectl, path)
        if word.startswith("-") and word != "-":
            name, equals, value = word.partition("=")
            assert name in known.takes_value, f"{command.written}: kubectl {' '.join(path)} has no {name}"
            if not equals and known.takes_value[name]:
                value = rest.pop(0)
            flags.setdefault(name, []).append(value)
            ordered.append((name, value))
        elif not words and (not path or word in known.subcommands):
            path = (*path, word)  # `kubectl create secret generic NAME`: three levels, then NAME
        else:
            words.append(word)
    return Parsed(path, words, flags, ordered)


def parse_helm(helm: Path, command: Command) -> Parsed:
    verb, *rest = command.argv[1:]
    known = helm_flags(helm, verb)
    words: list[str] = []
    flags: dict[str, list[str]] = {}
    ordered: list[tuple[str, str]] = []
    while rest:
        word = rest.pop(0)
        if word.startswith("-"):
            name, equals, value = word.partition("=")
            assert name in known.takes_value, f"{command.written}: helm {verb} has no {name}"
            if not equals and known.takes_value[name]:
                value = rest.pop(0)
            flags.setdefault(name, []).append(value)
            ordered.append((name, value))
        else:
            words.append(word)
    return Parsed((verb,), words, flags, ordered)


def check_spectra(argv: list[str], where: str) -> list[str]:
    """The sub-command path of `spectra ARGV` after click parsed the whole line (unknown words fail)."""
    command, path, words = spectra_command(argv, where)
    try:
        command.make_context(" ".join(["spectra", *path]), list(words))
    except click.ClickException as exc:
        pytest.fail(f"{where}: {exc.format_message()}")
    return path


# --- values and renders ---------------------------------------------------------------------------


def _split_assignments(text: str) -> list[str]:
    """`a=1,b={x,y}`: helm's comma-separated assignments (commas inside braces belong to the value)."""
    parts: list[str] = []
    depth, current = 0, ""
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def assert_values_key(key: str, where: str) -> None:
    """A dotted `--set` key names a value of charts/spectra/values.yaml (below a free-form `{}` map: any)."""
    node: Any = VALUES
    for part in re.split(r"(?<!\\)\.", re.sub(r"\[\d+\]", "", key)):
        if isinstance(node, dict) and not node and part:
            return  # commonLabels, podAnnotations, ...: the user's own keys
        assert part in (node if isinstance(node, dict) else {}), (
            f"{where}: `{key}` is not in charts/spectra/values.yaml"
        )
        node = node[part]


def values_args(parsed: Parsed, resolve: Callable[[str], Path], where: str) -> list[str]:
    """The `--set`/`-f` arguments of a helm command, checked against the chart's values, in order."""
    args: list[str] = []
    for name, value in parsed.ordered:
        if name in {"-f", "--values"}:
            path = resolve(value)
            for key in _flatten(yaml.safe_load(path.read_text()) or {}):
                assert_values_key(key, where)
            args += [name, str(path)]
        elif name in VALUES_FLAGS:
            for assignment in _split_assignments(value):
                assert "=" in assignment, f"{where}: {name} {assignment} has no value"
                assert_values_key(assignment.split("=", 1)[0], where)
            args += [name, value]
    return args


def _flatten(values: Obj, prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def render(helm: Path, release: str, namespace: str, args: list[str], where: str) -> Rendered:
    done = run_helm(
        helm, "template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION, *args
    )
    assert done.returncode == 0, f"{where}: helm template {' '.join(args)} fails:\n{done.stderr}"
    return Rendered(where, [obj for obj in yaml.safe_load_all(done.stdout) if obj])


def _is_test_hook(obj: Obj) -> bool:
    return "test" in (obj["metadata"].get("annotations") or {}).get("helm.sh/hook", "").split(",")


def _pod_templates(chart: Rendered) -> Iterator[tuple[Obj, Obj, Obj]]:
    """(object, pod labels, PodSpec) of every workload and Pod the chart renders."""
    for obj in chart.objects:
        if obj["kind"] == "Pod":
            yield obj, obj["metadata"].get("labels") or {}, obj["spec"]
        elif "template" in obj.get("spec", {}):
            template = obj["spec"]["template"]
            yield obj, template["metadata"].get("labels") or {}, template["spec"]


def operator_settings(chart: Rendered) -> OperatorSettings:
    [config] = [obj for obj in chart.of_kind("ConfigMap") if "operator.yaml" in obj.get("data", {})]
    return OperatorSettings.model_validate(yaml.safe_load(config["data"]["operator.yaml"]))


def spectra_images(chart: Rendered) -> Iterator[tuple[str, str, str]]:
    """(where, image, pull policy) of every container that runs our image, and of the probes."""
    for obj, labels, spec in _pod_templates(chart):
        if labels.get("app.kubernetes.io/component") == "mariadb":
            continue
        for container in spec["containers"]:
            yield f"{obj['kind']}/{obj['metadata']['name']}", container["image"], container["imagePullPolicy"]
    probe = operator_settings(chart).probe
    yield "probe Deployments (operator.yaml)", probe.image, probe.image_pull_policy


def secret_refs(chart: Rendered) -> set[tuple[str, str]]:
    """(Secret, key) of every secretKeyRef in the render, the probes' env in operator.yaml included."""
    envs = [container.get("env") or [] for _, _, spec in _pod_templates(chart) for container in spec["containers"]]
    envs.append(operator_settings(chart).probe.env)
    return {
        (ref["name"], ref["key"])
        for env in envs
        for item in env
        if (ref := (item.get("valueFrom") or {}).get("secretKeyRef"))
    }


# --- the walk -------------------------------------------------------------------------------------


@dataclass
class Walk:
    """What following a walkthrough command by command produced."""

    doc: Doc
    commands: list[Command]
    workdir: Path
    files: dict[str, str]
    built: set[str] = field(default_factory=set)
    reached: dict[str, set[str]] = field(default_factory=dict)  # image -> how it got to the cluster
    installs: list[tuple[str, str]] = field(default_factory=list)  # (release, namespace)
    # Each `helm install` starts a branch (the text's alternatives); `--reuse-values` upgrades extend them all.
    branches: list[list[str]] = field(default_factory=list)
    renders: list[Rendered] = field(default_factory=list)
    secrets: list[tuple[str, str, str, str]] = field(default_factory=list)  # (namespace, name, key, command)
    forwarded: set[int] = field(default_factory=set)
    spectra_runs: list[tuple[list[str], str]] = field(default_factory=list)  # (argv, command)
    later: list[tuple[Command, Parsed]] = field(default_factory=list)  # kubectl commands checked by names

    def resolve(self, path: str) -> Path:
        """A path as the reader has it: a file the text says to save, else one in the checkout."""
        name = path.removeprefix(str(self.workdir) + "/")
        if name in self.files:
            return self.workdir / name
        found = REPO / path
        assert found.exists(), f"{self.doc.path.name}: {path} does not exist in the repository"
        return found


def follow(doc: Doc, tools: KubeTools, cluster: ClusterEmulator, workdir: Path) -> Walk:
    text = doc.text()
    files = saved_files(text)
    for name, content in files.items():
        (workdir / name).write_text(content)
    walk = Walk(doc, commands(text, workdir), workdir, files)
    assert walk.commands, f"{doc.path.name} {doc.heading}: no shell blocks"
    for command in walk.commands:
        step = STEPS.get(command.program)
        assert step is not None, f"{command.written}: `{command.program}` is not checked here"
        step(walk, command, tools, cluster)
    return walk


def _docker(walk: Walk, command: Command, tools: KubeTools, cluster: ClusterEmulator) -> None:
    verb, *rest = command.argv[1:]
    if verb == "build":
        words: list[str] = []
        while rest:
            word = rest.pop(0)
            if word in {"-t", "--tag"}:
                walk.built.add(rest.pop(0))
            elif word == "--target":
                assert rest.pop(0) in {"runtime", "browser"}, command.written
            else:
                words.append(word)
        assert words == ["."], f"{command.written}: build the repository's top folder"
        assert (REPO / "Dockerfile").is_file()
    elif verb == "push":
        assert rest[0] in walk.built, f"{command.written}: pushes an image no `docker build` made"
        walk.reached.setdefault(rest[0], set()).add("docker push")
    elif verb == "run":
        workdir = None
        while rest and rest[0].startswith("-"):
            option = rest.pop(0)
            if option in {"-v", "--volume"}:
                source, target = rest.pop(0).split(":")[:2]
                assert source == str(walk.workdir), f"{command.written}: mount the folder the files are saved in"
                workdir = workdir or target
            elif option in {"-w", "--workdir"}:
                workdir = rest.pop(0)
            else:
                assert option in {"--rm", "-i", "-t", "-it"}, f"{command.written}: {option} is not checked here"
        image, *argv = rest
        assert image in walk.built, f"{command.written}: runs an image no `docker build` made"
        # The files the container sees under its working folder are the reader's.
        argv = [arg.replace(f"{workdir}/", f"{walk.workdir}/") for arg in argv] if workdir else argv
        walk.spectra_runs.append((argv, command.written))
    else:
        pytest.fail(f"{command.written}: docker {verb} is not checked here")


def _kind(walk: Walk, command: Command, tools: KubeTools, cluster: ClusterEmulator) -> None:
    assert command.argv[1:3] == ("load", "docker-image"), f"{command.written}: not checked here"
    _loaded(walk, command, "kind", list(command.argv[3:]), {"-n", "--name"})


def _k3d(walk: Walk, command: Command, tools: KubeTools, cluster: ClusterEmulator) -> None:
    assert command.argv[1:3] == ("image", "import"), f"{command.written}: not checked here"
    _loaded(walk, command, "k3d", list(command.argv[3:]), {"-c", "--cluster"})


def _loaded(walk: Walk, command: Command, loader: str, rest: list[str], cluster_flags: set[str]) -> None:
    """`kind load docker-image IMAGE...` / `k3d image import IMAGE...`, with the cluster's name or not."""
    while rest:
        word = rest.pop(0)
        if word in cluster_flags:
            rest.pop(0)
            continue
        assert not word.startswith("-"), f"{command.written}: {word} is not checked here"
        assert word in walk.built, f"{command.written}: {word} is not an image a `docker build` made"
        walk.reached.setdefault(word, set()).add(loader)


def _spectra(walk: Walk, command: Command, tools: KubeTools, cluster: ClusterEmulator) -> None:
    walk.spectra_runs.append((list(command.argv[1:]), command.written))


def _curl(walk: Walk, command: Command, tools: KubeTools, cluster: ClusterEmulator) -> None:
    [url] = [word for word in command.argv[1:] if not word.startswith("-")]
    found = re.fullmatch(r"http://(?:127\.0\.0\.1|localhost):(\d+)/\S*", url)
    assert found, f"{command.written}: only a port-forwarded local URL is checked here"
    assert int(found[1]) in walk.forwarded, f"{command.written}: nothing forwards port {found[1]}"


def _helm(walk: Walk, command: Command, tools: KubeTools, cluster: ClusterEmulator) -> None:
    parsed = parse_helm(tools.helm, command)
    verb = parsed.path[0]
    namespace = parsed.one("-n", "--namespace") or "default"
    if verb == "test":
        assert (parsed.words[0], namespace) in walk.installs, f"{command.written}: no such release"
        assert any(_is_test_hook(obj) for obj in walk.renders[-1].objects), f"{command.written}: no test hook"
        return
    assert verb in {"install", "upgrade"}, f"{command.written}: helm {verb} is not checked here"
    release, chart = parsed.words
    assert walk.resolve(chart) == CHART, f"{command.written}: the chart is charts/spectra"
    values = values_args(parsed, walk.resolve, command.written)
    if verb == "install":
        walk.installs.append((release, namespace))
        walk.branches.append(values)
        branches = [walk.branches[-1]]
        if "--create-namespace" in parsed.flags:
            _apply(cluster, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}])
        _assert_namespace(cluster, namespace, command)
        _apply_files(cluster, sorted((CHART / "crds").glob("*.yaml")))  # helm installs crds/ first
    else:
        assert (release, namespace) in walk.installs, f"{command.written}: no such release"
        # Without --reuse-values an upgrade with values starts from the chart's defaults again.
        walk.branches = [
            ([*branch, *values] if "--reuse-values" in parsed.flags else values) for branch in walk.branches
        ]
        branches = walk.branches
    for branch in branches:
        chart_render = render(tools.helm, release, namespace, branch, command.written)
        walk.renders.append(chart_render)
        for where, image, policy in spectra_images(chart_render):
            assert image in walk.built, f"{command.written}: {where} runs {image}, which no `docker build` made"
            assert walk.reached.get(image), f"{command.written}: {image} is not in the cluster yet"
            if "docker push" not in walk.reached[image]:
                assert policy in {"Never", "IfNotPresent"}, f"{command.written}: {where} would pull {image}"
        # The release's objects go to the cluster, as helm would (its test Pod only on `helm test`).
        _apply(cluster, [obj for obj in chart_render.objects if not _is_test_hook(obj)], command.written)


def _assert_namespace(cluster: ClusterEmulator, namespace: str, command: Command) -> None:
    # The emulator, unlike an API server, would store objects in a namespace nobody made.
    found = cluster.get("v1/namespaces", None, namespace)
    assert found is not None, f"{command.written}: namespace {namespace} is not made before"


def _apply(cluster: ClusterEmulator, objects: list[Obj], where: str = "") -> None:
    done = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects), check=False)
    assert done.returncode == 0, f"{where}: {done.stderr}"


def _apply_files(cluster: ClusterEmulator, paths: list[Path]) -> None:
    _apply(cluster, [obj for path in paths for obj in objects_of(path.read_text())])


def _kubectl(walk: Walk, command: Command, tools: KubeTools, cluster: ClusterEmulator) -> None:
    parsed = parse_kubectl(tools.kubectl, command)
    verb = parsed.path[0]
    argv = list(command.argv[1:])
    for flag in ("-f", "--filename"):  # files as the reader has them (saved, or in the checkout)
        for value in parsed.flags.get(flag, []):
            if value not in {"", "-"}:  # `logs -f` is --follow
                argv[argv.index(value)] = str(walk.resolve(value))
    namespace = parsed.one("-n", "--namespace")
    if namespace is not None and parsed.path[:2] != ("create", "namespace"):
        _assert_namespace(cluster, namespace, command)
    if verb in NOT_RUN:
        walk.later.append((command, parsed))
        if verb == "port-forward":
            walk.forwarded.add(int(parsed.words[1].split(":")[0]))
        return
    if parsed.path[:2] == ("create", "secret"):
        for literal in parsed.flags.get("--from-literal", []):
            walk.secrets.append((namespace or "default", parsed.words[0], literal.split("=", 1)[0], command.written))
    if verb in {"create", "expose"}:
        # The emulator reads JSON only (kubectl's generators send protobuf): generate, then apply.
        generated = cluster.kubectl(*argv, "--dry-run=client", "-o", "yaml", check=False)
        assert generated.returncode == 0, f"{command.written}: {generated.stderr}"
        applied = cluster.kubectl("apply", "-f", "-", input=generated.stdout, check=False)
        assert applied.returncode == 0, f"{command.written}: {applied.stderr}"
        return
    if verb == "scale":  # the emulator has no scale subresource; the client-side run finds the object
        argv.append("--dry-run=client")
    elif verb == "get":
        argv = [arg for arg in argv if arg not in {"-w", "--watch"}]
    else:
        assert verb in {"apply", "describe"}, f"{command.written}: kubectl {verb} is not checked here"
    done = cluster.kubectl(*argv, check=False)
    assert done.returncode == 0, f"{command.written}: {done.stderr}"
    if verb == "get" and command.output and command.output[0].startswith("# NAME "):
        shown = re.split(r"\s{2,}", command.output[0].removeprefix("#").strip())
        actual = re.split(r"\s{2,}", done.stdout.splitlines()[0].strip())
        assert shown == actual, f"{command.written}: the sample output's columns are not kubectl's"


STEPS: dict[str, Callable[[Walk, Command, KubeTools, ClusterEmulator], None]] = {
    "docker": _docker,
    "kind": _kind,
    "k3d": _k3d,
    "helm": _helm,
    "kubectl": _kubectl,
    "spectra": _spectra,
    "curl": _curl,
}


# --- the tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(DOCS))
def walk(request: pytest.FixtureRequest, kube_tools: KubeTools, tmp_path_factory: pytest.TempPathFactory) -> Walk:
    """The walkthrough followed once per module: a cluster of its own, the reader's folder for saved files."""
    base = tmp_path_factory.mktemp(f"walkthrough-{request.param}")
    workdir = base / "reader"
    workdir.mkdir()
    with ClusterEmulator(kube_tools, base / "cluster") as cluster:
        return follow(DOCS[request.param], kube_tools, cluster, workdir)


def test_the_image_built_is_the_one_loaded_and_installed(walk: Walk) -> None:
    """No published image: each one helm uses is built and reaches the cluster in every way the text offers."""
    used = {image for chart in walk.renders for _, image, _ in spectra_images(chart)}
    assert used, "no helm install"
    for image in used:
        assert walk.doc.loaders <= walk.reached[image], f"{image} reaches the cluster only by {walk.reached[image]}"


def test_spectra_commands_exist_and_validate_what_the_text_saves(walk: Walk) -> None:
    for argv, written in walk.spectra_runs:
        path = check_spectra(argv, written)
        if path == ["validate"]:
            done = run_spectra(*argv, cwd=walk.workdir)
            assert done.returncode == 0, f"{written}:\n{done.stdout}{done.stderr}"


def test_the_secrets_made_are_the_ones_the_chart_reads(walk: Walk) -> None:
    read = set().union(*(secret_refs(chart) for chart in walk.renders))
    namespaces = {namespace for _, namespace in walk.installs}
    for namespace, name, key, written in walk.secrets:
        assert namespace in namespaces, f"{written}: not in the release's namespace"
        assert (name, key) in read, f"{written}: the chart never reads key {key} of Secret {name}"


def test_what_the_live_commands_point_at_exists(walk: Walk) -> None:
    """port-forward, logs and wait need pods: their Service, selector and kind must be in the chart."""
    chart = walk.renders[-1]
    for command, parsed in walk.later:
        verb = parsed.path[0]
        if verb == "port-forward":
            kind, _, name = parsed.words[0].partition("/")
            assert kind in {"svc", "service"}, command.written
            remote = int(parsed.words[1].split(":")[1])
            ports = [port["port"] for port in chart.get("Service", name)["spec"]["ports"]]
            assert remote in ports, f"{command.written}: Service {name} serves {ports}"
        elif verb == "logs":
            selector = dict(term.split("=") for term in (parsed.one("-l", "--selector") or "").split(","))
            owners = {
                obj["metadata"]["name"]
                for obj, labels, _ in _pod_templates(chart)
                if selector.items() <= labels.items() and not _is_test_hook(obj)
            }
            assert len(owners) == 1, f"{command.written}: the selector matches the pods of {owners}"
        elif verb == "wait":
            kind, _, name = parsed.words[0].partition("/")
            assert kind in {"deploy", "deployment", "deployments"}, f"{command.written}: not checked here"
            assert chart.get("Deployment", name) if name else chart.of_kind("Deployment"), command.written
        else:
            pytest.fail(f"{command.written}: kubectl {verb} is not checked here")


def test_the_probe_deployment_named_is_the_one_the_operator_makes(walk: Walk) -> None:
    expected = probe_name(operator_settings(walk.renders[-1]), DEFAULT_LOCATION)
    named = set(re.findall(r"\b[a-z0-9-]+-probe-[a-z0-9-]+\b", walk.doc.text()))
    assert named <= {expected}


def test_public_url_is_the_port_forward(walk: Walk) -> None:
    """Links in pages point at publicUrl: a local one must be the port the text forwards."""
    for chart in walk.renders:
        url = operator_settings(chart).web.public_url or ""
        local = re.fullmatch(r"http://(?:127\.0\.0\.1|localhost):(\d+)/?", url)
        if local:
            assert int(local[1]) in walk.forwarded, f"publicUrl {url} but the text forwards {walk.forwarded}"
