"""Everything the docs cite exists: repository paths, `spectra.*` names, relative links; and nothing in
the repository cites a file outside it."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO

DOCS = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md", *(REPO / "docs").glob("*.md")])
# Path-like mentions of the repository's own files: spectra/..., tests/..., bench/..., docs/... (no globs).
_PATH = re.compile(r"`((?:spectra|tests|bench|docs|charts|examples|crds|deploy|scripts)/[\w./-]*[\w/])`")
_DOTTED = re.compile(r"`(spectra(?:\.\w+)+)`")  # `spectra.dev` (the API group) is not a module
_LINK = re.compile(r"\]\(((?!https?:|mailto:|#)[^)#\s]+)(?:#[^)]*)?\)")
# Names that were removed on purpose and are mentioned as history (CHANGELOG).
_HISTORY = {"spectra/standalone.py", "store/probes.py"}


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / line for line in listed.splitlines()]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_cited_paths_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = [
        path
        for path in _PATH.findall(text)
        if path not in _HISTORY and "{" not in path and not (REPO / path.rstrip("/")).exists()
    ]
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_cited_spectra_names_resolve(doc: Path) -> None:
    unresolved = []
    names = set(_DOTTED.findall(doc.read_text(encoding="utf-8")))
    for dotted in sorted(name for name in names if not name.startswith("spectra.dev")):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                found: object = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attribute in parts[cut:]:
                    found = getattr(found, attribute)
            except AttributeError:
                unresolved.append(dotted)
            break
        else:
            unresolved.append(dotted)
    assert unresolved == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = [link for link in _LINK.findall(doc.read_text(encoding="utf-8")) if not (doc.parent / link).exists()]
    assert broken == []


def test_nothing_cites_a_file_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|DESIGN\.md|DESIGN section")
    offenders = [
        str(path.relative_to(REPO))
        for path in _tracked_files()
        if path.suffix in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".html", ".cfg"}
        and path.is_file()
        and path != Path(__file__)
        and outside.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert offenders == []
