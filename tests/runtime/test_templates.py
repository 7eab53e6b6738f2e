"""Jinja environments: a package's own templates first, then the shared `_base.html`; autoescaping
on for HTML and for templates made from strings, off for `.txt` (plain-text mail parts)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import jinja2
import pytest

from spectra.runtime.templates import environment

PACKAGE = "spectra_templates_testpkg"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An importable package with a templates/ folder of its own, as spectra.notify or spectra.alerting have."""
    root = tmp_path_factory.mktemp("site")
    templates = root / PACKAGE / "templates"
    templates.mkdir(parents=True)
    (root / PACKAGE / "__init__.py").write_text("")
    (templates / "page.html").write_text(
        '{% extends "_base.html" %}{% block title %}{{ title }}{% endblock %}{% block body %}<p>{{ text }}</p>{% endblock %}'
    )
    (templates / "note.txt").write_text("Note: {{ text }}\n")
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield PACKAGE
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(PACKAGE, None)


def test_own_templates_extend_the_shared_base(package: str) -> None:
    html = environment(package).get_template("page.html").render(title="Checkout", text="all good")
    assert html.startswith("<!doctype html>")
    assert "<title>Checkout</title>" in html
    assert "<body>\n<p>all good</p>\n</body>" in html


def test_the_shared_base_is_found_from_any_package(package: str) -> None:
    env = environment(package)
    base = env.get_template("_base.html")
    assert Path(str(base.filename)).parent == Path(str(resources.files("spectra.runtime"))) / "templates"
    assert Path(str(env.get_template("page.html").filename)).parent == Path(str(resources.files(package))) / "templates"
    with pytest.raises(jinja2.TemplateNotFound):
        env.get_template("missing.html")


def test_html_and_strings_are_escaped_text_is_not(package: str) -> None:
    env = environment(package)
    assert SCRIPT not in env.get_template("page.html").render(title="t", text=SCRIPT)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in env.get_template("page.html").render(title="t", text=SCRIPT)
    assert env.from_string("{{ text }}").render(text=SCRIPT) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert env.get_template("note.txt").render(text=SCRIPT) == f"Note: {SCRIPT}"


def test_options_reach_the_environment(package: str) -> None:
    env = environment(package, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    assert env.get_template("note.txt").render(text="x") == "Note: x\n"
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()
