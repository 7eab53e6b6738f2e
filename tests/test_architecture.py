"""The floors of the code: the import contract, and docs/architecture.md drawing the same floors.

`lint-imports` (run by scripts/test) checks the imports against `.importlinter`; these tests check
that the contract covers every package and module of `spectra`, that the middle floor is declared
independent, and that the architecture page shows exactly the contract's layers.
"""

from __future__ import annotations

import configparser
import pkgutil
import re

import spectra
from tests.support.paths import REPO

MIDDLE = {"spectra.statuspage", "spectra.alerting", "spectra.probe", "spectra.operator"}


def contract() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(REPO / ".importlinter")
    return parser


def contract_layers() -> list[str]:
    layers = contract()["importlinter:contract:floors"]["layers"]
    return [line.strip() for line in layers.strip().splitlines()]


def documented_layers() -> list[str]:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- floors:begin.*?-->\n```\n(.*?)```\n<!-- floors:end -->", text, re.S)
    assert block is not None, "docs/architecture.md lost its floors block"
    return [line.strip() for line in block.group(1).strip().splitlines()]


def test_the_architecture_page_draws_the_contract_floors() -> None:
    assert documented_layers() == contract_layers()


def test_every_package_and_module_of_spectra_is_on_a_floor() -> None:
    on_floors = {name.strip() for layer in contract_layers() for name in re.split(r"[|:]", layer)}
    top_level = {f"spectra.{info.name}" for info in pkgutil.iter_modules(spectra.__path__)}
    assert top_level - on_floors == set(), "a new top-level module needs a floor in .importlinter"
    assert on_floors - top_level == set(), "the contract names a module that does not exist"


def test_the_middle_floor_is_independent() -> None:
    section = contract()["importlinter:contract:middle"]
    assert section["type"] == "independence"
    assert {line.strip() for line in section["modules"].strip().splitlines()} == MIDDLE
    middle_layer = next(layer for layer in contract_layers() if "spectra.probe" in layer)
    assert {name.strip() for name in middle_layer.split("|")} == MIDDLE


def test_no_contract_has_ignored_imports() -> None:
    parser = contract()
    for section in parser.sections():
        assert "ignore_imports" not in parser[section], f"{section} ignores imports"
