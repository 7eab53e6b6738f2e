"""Properties of the manifest loader over hostile input: it answers with errors, it never raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from spectra.manifests import load_paths

from .strategies import manifests, resource_objects, structured_documents

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def _load(tmp_path: Path, text: str) -> tuple[Path, list[str]]:
    path = tmp_path / "manifest.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    result = load_paths([path])
    return path, [str(error) for error in result.errors]


@FAST
@given(text=manifests())
def test_any_text_gives_errors_naming_the_file_never_an_exception(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path, errors = _load(tmp_path_factory.mktemp("loader"), text)
    for error in errors:
        assert error.startswith(f"{path}: "), error
        assert "\n" not in error.rstrip("\n"), f"an error is one line: {error!r}"


@FAST
@given(text=structured_documents())
def test_loading_is_deterministic(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    folder = tmp_path_factory.mktemp("loader")
    assert _load(folder, text) == _load(folder, text)


@FAST
@given(body=resource_objects())
def test_every_refusal_of_one_of_our_kinds_names_the_object(
    tmp_path_factory: pytest.TempPathFactory, body: dict[str, Any]
) -> None:
    path, errors = _load(tmp_path_factory.mktemp("loader"), yaml.safe_dump(body, allow_unicode=True))
    for error in errors:
        location = error.removeprefix(f"{path}: ")
        assert location, error
        assert not location.startswith(":"), f"the object is named: {error!r}"
