"""The README's field reference is generated from the models and must be current."""

from __future__ import annotations

from spectra.api import KINDS
from spectra.api.reference_docs import markdown, replace_block
from tests.support.paths import REPO

README = REPO / "README.md"


def test_readme_field_reference_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert replace_block(text) == text, "README field reference is stale: python -m spectra.api.reference_docs --write"


def test_reference_has_every_kind_and_required_marks() -> None:
    table = markdown()
    for kind in KINDS:
        assert f"#### {kind}" in table
    assert "| `spec.type` |" in table
    assert "| `spec.interval` | duration | `1m` |" in table
    assert "| `spec.http.url` | string | required |" in table
